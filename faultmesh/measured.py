"""A run that measured no request is no SLO verdict.

Availability, latency and cost per answer are undefined over zero requests; judging SLOs on
them would print "violated" (exit 1) for what is really a run that did not happen: the load
stopped before the warmup ended (STOP in Locust's web UI), no client could connect, or the
workload offers too little traffic for the measured window. ``sim``, ``live`` and ``gate``
say so and exit 3 instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from topologies.errors import RunError
from topologies.units import format_duration

__all__ = ["unmeasured_reason", "require_measured"]


def unmeasured_reason(summary: Mapping[str, Any]) -> str | None:
    """Why a run's summary.json counts no request in its measured window; None if it does."""
    if summary.get("requests"):
        return None
    warmup = float(summary.get("warmup") or 0.0)
    end = float(summary.get("end") or 0.0)
    planned = float(summary.get("planned_duration") or summary.get("duration") or 0.0)
    window = f"between the warmup ({format_duration(warmup)}) and the end " \
             f"({format_duration(min(end, planned) if end else planned)})"
    if summary.get("engine") == "live":
        # the load generator's own doing (stopped, or too slow to send): a STOP pressed in
        # Locust's web UI ends the users while the run goes on to its end
        return (f"the load sent no request {window} (was it stopped in Locust's web UI?): "
                "nothing to judge the SLOs on")
    return f"no request arrived {window}: nothing to judge the SLOs on"


def require_measured(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Raise :class:`RunError` (exit 3) naming the first run (label, summary) that measured
    no request; partial (interrupted) runs are judged elsewhere."""
    for label, summary in runs:
        if summary.get("partial"):
            continue
        reason = unmeasured_reason(summary)
        if reason:
            raise RunError(f"{label}: not an SLO verdict: {reason}")
