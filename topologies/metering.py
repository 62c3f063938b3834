"""Busy time as both engines measure it: a level (busy workers, sequences in an LLM batch,
ready replicas) integrated over time, so an interval's utilization is the busy unit-seconds
that fell inside it, not the work that happened to finish in it. Readers (the timeseries
monitor, the autoscaler) each keep the last total they saw and take differences.
"""

from __future__ import annotations

__all__ = ["BusyMeter"]


class BusyMeter:
    """The running time integral of a level that changes by steps (clock values passed in)."""

    __slots__ = ("level", "_area", "_last")

    def __init__(self, now: float = 0.0, level: int = 0) -> None:
        self.level = level
        self._area = 0.0
        self._last = now

    def change(self, now: float, delta: int) -> None:
        """The level moves by ``delta`` at ``now``."""
        self._area += self.level * (now - self._last)
        self._last = now
        self.level += delta

    def set(self, now: float, level: int) -> None:
        """The level is ``level`` from ``now`` on."""
        self.change(now, level - self.level)

    def total(self, now: float) -> float:
        """Unit-seconds accumulated from the start up to ``now``."""
        return self._area + self.level * (now - self._last)
