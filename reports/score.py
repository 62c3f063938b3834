"""The resilience score: one number from 0 to 100 for "how well did it take the fault".

    score = 40 x SLOs met + 30 x availability under fault + 15 x recovery + 15 x containment

each part a fraction from 0 to 1:

* **SLOs met** — the share of the topology's SLOs that hold (1 when it defines none);
* **availability under fault** — availability of requests arriving during faults (the
  whole run without faults), mapped linearly from 90 % (0) to 100 % (1);
* **recovery** — 1 for a recovery_time of 0 s, falling linearly to 0 at 120 s; 0 when the
  run never recovered or the recovery is unknown;
* **containment** — 1 minus the share of services *not directly faulted* that entered the
  blast radius (1 without faults).

The HTML report prints this formula next to the score with each part's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ScorePart", "resilience_score", "WEIGHTS", "RECOVERY_HORIZON"]

WEIGHTS = {"slos": 40.0, "availability": 30.0, "recovery": 15.0, "containment": 15.0}
RECOVERY_HORIZON = 120.0
AVAILABILITY_FLOOR = 0.90


@dataclass(frozen=True)
class ScorePart:
    """One term of the score: its fraction (0-1), weight, points and what it measured."""

    key: str
    label: str
    fraction: float
    weight: float
    detail: str

    @property
    def points(self) -> float:
        return self.fraction * self.weight


def _clamp(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


def resilience_score(*, slos_passed: int, slos_total: int, fault_availability: float,
                     recovery_time: float, spread: int, others: int
                     ) -> tuple[float, list[ScorePart]]:
    """The score (0-100, one decimal) and its parts.

    ``spread`` is the number of services outside the directly faulted ones that entered the
    blast radius, ``others`` the number of services that were not directly faulted.
    """
    slo_f = slos_passed / slos_total if slos_total else 1.0
    avail_f = _clamp((fault_availability - AVAILABILITY_FLOOR) / (1 - AVAILABILITY_FLOOR))
    if math.isnan(recovery_time) or math.isinf(recovery_time):
        rec_f = 0.0
    else:
        rec_f = _clamp(1 - recovery_time / RECOVERY_HORIZON)
    cont_f = 1.0 - (spread / others if others else 0.0)
    avail_text = "n/a" if math.isnan(fault_availability) else f"{fault_availability:.2%}"
    rec_text = ("never" if math.isinf(recovery_time) else "unknown"
                if math.isnan(recovery_time) else f"{recovery_time:g} s")
    parts = [
        ScorePart("slos", "SLOs met", slo_f, WEIGHTS["slos"],
                  f"{slos_passed} of {slos_total} hold" if slos_total else "no SLOs defined"),
        ScorePart("availability", "Availability under fault", avail_f, WEIGHTS["availability"],
                  f"{avail_text} (90 % scores 0, 100 % full)"),
        ScorePart("recovery", "Recovery", rec_f, WEIGHTS["recovery"],
                  f"{rec_text} (0 s full, {RECOVERY_HORIZON:g} s or never scores 0)"),
        ScorePart("containment", "Containment", _clamp(cont_f), WEIGHTS["containment"],
                  f"{spread} of {others} other services hit"),
    ]
    return round(sum(p.points for p in parts), 1), parts
