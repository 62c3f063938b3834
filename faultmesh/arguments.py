"""Command-line values that several commands take, parsed and checked one way.

``--duration`` is the one so far: ``10`` is ten seconds on the command line (a shell has no
YAML number type to tell ``10`` from ``'10'``), ``90s``, ``2m`` and the rest carry a unit as in
a topology file, and a run must last longer than its workload's warmup, or it measures
nothing at all.
"""

from __future__ import annotations

import math

from topologies.errors import UsageError
from topologies.units import format_duration, parse_duration

__all__ = ["duration_option"]


def duration_option(text: str, option: str = "--duration", warmup: float | None = None
                    ) -> float:
    """Seconds from a command-line duration (``10``, ``10s``, ``2m``): positive, finite and,
    given the workload's ``warmup``, longer than it. Raises :class:`UsageError`."""
    try:
        seconds = float(text)  # a bare number is seconds
    except ValueError:
        try:
            seconds = parse_duration(text)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{option} {text}: {exc}") from None
    if not math.isfinite(seconds):
        raise UsageError(f"{option} {text}: must be a finite duration, e.g. 60s")
    if not seconds > 0:
        raise UsageError(f"{option} {text}: must be positive")
    if warmup is not None and seconds <= warmup:
        raise UsageError(f"{option} {text}: must be longer than the workload's warmup "
                         f"({format_duration(warmup)}), or nothing is measured")
    return seconds
