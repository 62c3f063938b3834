"""When the load generator falls behind its schedule, and the note that says so.

An open workload's load sends at scheduled times (``loadtests.plan``). A generator that
cannot keep up — too few users for slow answers, a saturated CPU, a busy machine — sends
fewer requests than the schedule asks, or sends them late, and its figures then describe a
gentler load than the workload's. The run still has figures, so this is no error: the load
result carries a note (:func:`behind_note`), which a live run copies into summary.json's
``notes``; the report lists it and ``faultmesh live`` prints it as a warning.

Behind means either of:

* sent less than :data:`MIN_SENT_SHARE` of the requests the schedule asked for by the time
  the load stopped (achieved / target rate, the target being the run's own arrival
  schedule, so a short run's Poisson luck is no shortfall);
* more than :data:`MAX_LATE_SHARE` of the sends were late (more than ``runner.LATE``,
  10 ms, behind their scheduled time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import LoadPlan

__all__ = ["MIN_SENT_SHARE", "MAX_LATE_SHARE", "behind_note", "load_note"]

#: Below this share of the scheduled requests sent, the load fell behind. 5 % short is
#: more than scheduling jitter costs (a late send is still sent, so jitter costs nothing
#: here) and enough to move throughput and queueing figures.
MIN_SENT_SHARE = 0.95
#: Above this share of late sends, the load fell behind: the system was offered its load
#: later than the workload asks, which understates latency under load (coordinated
#: omission). A run on an idle machine has well under 1 % late sends, and a busy machine's
#: scheduling lag stays below this.
MAX_LATE_SHARE = 0.05


def behind_note(achieved_rate: float, target_rate: float | None, sent_share: float | None,
                late_share: float | None, lag_p99: float | None) -> str | None:
    """The note of a load that fell behind its schedule, or None when it kept up.

    ``achieved_rate`` and ``target_rate`` (requests/s) are shown; ``sent_share`` is the
    requests sent over those the schedule asked for (None: nothing was asked);
    ``late_share`` the share of sends more than 10 ms behind schedule and ``lag_p99`` the
    99th percentile of their lag (s), None when unknown.
    """
    short = sent_share is not None and sent_share < MIN_SENT_SHARE
    late = late_share is not None and late_share > MAX_LATE_SHARE
    if not (short or late):
        return None
    target = "" if target_rate is None else f" of {_rate(target_rate)}/s target"
    parts = [f"achieved {_rate(achieved_rate)}/s{target}"]
    if short:
        parts[0] += f" ({sent_share:.0%} of the requests scheduled)"
    if late_share is not None:
        parts.append(f"{late_share:.0%} of sends late")
    if lag_p99 is not None:
        parts.append(f"lag p99 {_span(lag_p99)}")
    why = ("the figures describe fewer requests than the workload asks" if short else
           "the requests reached the system later than the workload's schedule, so the "
           "figures may understate latency under load")
    return "the load generator fell behind: " + ", ".join(parts) + " — " + why


def load_note(plan: LoadPlan, sent: int, run_time: float, achieved_rate: float,
              late_share: float | None, lag_p99: float | None) -> str | None:
    """:func:`behind_note` of an open plan's run: ``sent`` requests in the ``run_time``
    seconds it ran (a closed workload has no schedule to fall behind: None)."""
    if plan.model != "open" or run_time <= 0:
        return None
    from .plan import schedule

    cut = min(run_time, plan.duration)
    asked = sum(1 for t in schedule(plan) if t < cut)
    return behind_note(achieved_rate, plan.mean_rate(), sent / asked if asked else None,
                       late_share, lag_p99)


def _rate(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x < 1000 else f"{x:,.0f}"


def _span(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"
