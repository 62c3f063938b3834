"""Busy time as both engines measure it: a level (busy workers, or sequences in an LLM
batch) integrated over time, so an interval's utilization is the busy unit-seconds that fell
inside it, not the work that happened to finish in it.
"""

from __future__ import annotations

__all__ = ["BusyMeter"]


class BusyMeter:
    """The time integral of a level that changes by steps (clock values are passed in)."""

    __slots__ = ("level", "_area", "_last")

    def __init__(self, now: float = 0.0) -> None:
        self.level = 0
        self._area = 0.0
        self._last = now

    def change(self, now: float, delta: int) -> None:
        """The level moves by ``delta`` at ``now``."""
        self._area += self.level * (now - self._last)
        self._last = now
        self.level += delta

    def take(self, now: float) -> float:
        """Unit-seconds busy since the last take (or the start), up to ``now``."""
        area = self._area + self.level * (now - self._last)
        self._area = 0.0
        self._last = now
        return area
