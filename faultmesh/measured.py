"""A run that measured no request is no SLO verdict.

Availability, latency and cost per answer are undefined over zero requests; judging SLOs on
them would print "violated" (exit 1) for what is really a run that did not happen: the load
stopped before the warmup ended (STOP in Locust's web UI), no client could connect, or the
workload offers too little traffic for the measured window. ``sim`` and ``live`` say so and
exit 3 instead (``gate`` counts such a run as no verdict: :mod:`reports.gate`). The reason's
words are :func:`reports.partial.unmeasured_reason`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports.partial import unmeasured_reason
from topologies.errors import RunError

__all__ = ["unmeasured_reason", "require_measured"]


def require_measured(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Raise :class:`RunError` (exit 3) naming the first run (label, summary) that measured
    no request; partial (interrupted) runs are judged elsewhere."""
    for label, summary in runs:
        if summary.get("partial"):
            continue
        reason = unmeasured_reason(summary)
        if reason:
            raise RunError(f"{label}: not an SLO verdict: {reason}")
