"""Runs that are not whole: an interrupted run and the notes an engine left about a run.

An interrupted run (Ctrl-C, SIGTERM) still writes its result directory, with
``"partial": true`` in summary.json: its figures describe only the part that ran, so every
place that shows a run (the report's header, the gate's table and JUnit, a comparison) says
so with the words of :func:`partial_text`. A run that measured no request at all (the load
stopped in Locust's web UI before the warmup ended, a workload too thin for its window) is
no verdict either: :func:`unmeasured_reason` says why. ``notes`` are what an engine wants
the reader to know about a run (the load generator fell behind, an interruption): :func:`run_notes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from topologies.units import format_duration

from .formatting import format_seconds

if TYPE_CHECKING:
    from .result import Result

__all__ = ["is_partial", "planned_duration", "reached", "interruption", "partial_text",
           "unmeasured_reason", "run_notes"]


def is_partial(result: Result) -> bool:
    """Whether the run was interrupted before its end (summary.json's ``partial``)."""
    return bool(result.summary.get("partial"))


def _number(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def planned_duration(result: Result) -> float | None:
    """Seconds of arrivals the run was meant to have: summary.json's ``planned_duration``,
    else (result directories written before that key) the topology's ``workload.duration``;
    None when neither says."""
    value = _number(result.summary.get("planned_duration"))
    if value is None and result.topology_text:
        topo = result.topology
        value = None if topo is None else _number(topo.workload.duration)
    return value


def reached(result: Result) -> float | None:
    """The run time (s) reached when the run stopped (summary.json's ``end``)."""
    value = _number(result.summary.get("end"))
    return value if value is not None else _number(result.summary.get("duration"))


def interruption(result: Result) -> str | None:
    """``interrupted at 45 s of 120 s`` for an interrupted run, else None.

    A run interrupted while draining (after its arrivals stopped) says so: its window of
    arrivals is whole, but requests still in flight then have no outcome.
    """
    if not is_partial(result):
        return None
    at, of = reached(result), planned_duration(result)
    if at is None:
        return "interrupted"
    if of is None:
        return f"interrupted at {format_seconds(at)}"
    if at >= of:
        return (f"interrupted at {format_seconds(at)}, while draining after "
                f"{format_seconds(of)} of arrivals")
    return f"interrupted at {format_seconds(at)} of {format_seconds(of)}"


def partial_text(result: Result) -> str | None:
    """``partial run: interrupted at 45 s of 120 s`` for an interrupted run, else None."""
    what = interruption(result)
    return None if what is None else f"partial run: {what}"


def unmeasured_reason(summary: Mapping[str, Any]) -> str | None:
    """Why a run's summary.json counts no request in its measured window; None if it does.

    Availability, latency and cost per answer are undefined over zero requests: judging
    SLOs on them would call "violated" what is really a run that did not happen.
    """
    if summary.get("requests"):
        return None
    warmup = _number(summary.get("warmup")) or 0.0
    end = _number(summary.get("end")) or 0.0
    planned = _number(summary.get("planned_duration")) or _number(summary.get("duration")) \
        or 0.0
    window = f"between the warmup ({format_duration(warmup)}) and the end " \
             f"({format_duration(min(end, planned) if end else planned)})"
    if summary.get("engine") == "live":
        # the load generator's own doing: a STOP pressed in Locust's web UI ends the run
        # (and its note says when), or it was too slow to send
        notes = summary.get("notes") or []
        stopped = [n for n in notes if str(n).startswith("stopped from Locust's web UI")]
        why = f": it was {stopped[0]}" if stopped else " (was it stopped in Locust's web UI?)"
        return f"the load sent no request {window}{why}: nothing to judge the SLOs on"
    return f"no request arrived {window}: nothing to judge the SLOs on"


def run_notes(result: Result) -> list[str]:
    """summary.json's ``notes`` as a list of strings (empty without any)."""
    notes = result.summary.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    return [str(n) for n in notes if str(n).strip()]
