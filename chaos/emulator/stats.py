"""A replica's running counts and its per-second timeseries row.

``busy`` workers are integrated over time so ``utilization`` is busy worker-seconds over
worker-seconds in the interval, as in the simulator's timeseries.csv; ``throughput`` and
``errors`` are answers (200 / other) per second in the interval.
"""

from __future__ import annotations

import time

__all__ = ["Stats"]


class Stats:
    """What one replica is doing now, and has done since the last interval."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be >= 1, not {workers!r}")
        self.workers = workers
        self.busy = 0
        self.waiting_workers = 0
        self.in_flight = 0
        self.arrived = 0
        self.ok = 0
        self.failed = 0
        self._area = 0.0
        self._last = time.monotonic()
        self._since = self._last
        self._ok0 = 0
        self._failed0 = 0

    def set_busy(self, delta: int) -> None:
        now = time.monotonic()
        self._area += self.busy * (now - self._last)
        self._last = now
        self.busy += delta

    def answered(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1

    def interval(self, t: float, service: str, queued: int, batch: int | None
                 ) -> tuple[object, ...]:
        """The timeseries row of the interval starting at ``t``; starts the next one."""
        self.set_busy(0)
        now = self._last
        span = max(1e-9, now - self._since)
        util = self._area / (self.workers * span)
        row = (t, service, 1, 1, self.busy, queued, round(util, 4),
               round((self.ok - self._ok0) / span, 3),
               round((self.failed - self._failed0) / span, 3),
               "" if batch is None else batch)
        self._area, self._since = 0.0, now
        self._ok0, self._failed0 = self.ok, self.failed
        return row

    def snapshot(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "busy": self.busy,
                "waiting_workers": self.waiting_workers, "workers": self.workers,
                "arrived": self.arrived, "ok": self.ok, "failed": self.failed}
