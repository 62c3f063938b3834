"""A replica's running counts and its per-second timeseries row.

Busy units are what the simulator counts (``topologies.metering.BusyMeter``, the same class):
workers doing their own processing, plus for an LLM the sequences holding a batch place.
They are integrated over time, so a row's ``utilization`` is the busy unit-seconds inside the
interval over ``capacity`` x the interval's length (``capacity``: ``workers``, or
``max_batch`` for an LLM), and ``busy`` is the busy units at the row's end — both as in the
simulator's timeseries.csv. ``throughput`` and ``errors`` are answers (200 / other) per second
in the interval.
"""

from __future__ import annotations

import time

from topologies.metering import BusyMeter

__all__ = ["Stats"]


class Stats:
    """What one replica is doing now, and has done since the last interval."""

    def __init__(self, workers: int, capacity: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be >= 1, not {workers!r}")
        self.workers = workers
        self.capacity = max(1, capacity) if capacity is not None else workers
        self.busy = 0            # workers busy with own processing
        self.llm_busy = 0        # LLM batch places held (as last seen)
        self.waiting_workers = 0
        self.in_flight = 0
        self.arrived = 0
        self.ok = 0
        self.failed = 0
        now = time.monotonic()
        self.meter = BusyMeter(now)
        self._since = now
        self._area0 = 0.0
        self._ok0 = 0
        self._failed0 = 0

    def set_busy(self, delta: int) -> None:
        """A worker starts (+1) or ends (-1) its own processing."""
        self.busy += delta
        self.meter.change(time.monotonic(), delta)

    def set_llm(self, places: int) -> None:
        """The LLM's batch places held now."""
        if places != self.llm_busy:
            self.meter.change(time.monotonic(), places - self.llm_busy)
            self.llm_busy = places

    def answered(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1

    def interval(self, t: float, service: str, queued: int, batch: int | None
                 ) -> tuple[object, ...]:
        """The timeseries row of the interval starting at ``t``; starts the next one."""
        now = time.monotonic()
        area = self.meter.total(now)
        span = max(1e-9, now - self._since)
        util = (area - self._area0) / (self.capacity * span)
        row = (t, service, 1, 1, self.meter.level, queued, round(util, 4),
               round((self.ok - self._ok0) / span, 3),
               round((self.failed - self._failed0) / span, 3),
               "" if batch is None else batch)
        self._area0, self._since = area, now
        self._ok0, self._failed0 = self.ok, self.failed
        return row

    def snapshot(self) -> dict[str, float]:
        """Counts now, and ``busy_seconds``: the busy units integrated since the start (the
        live autoscaler takes differences of it over its interval)."""
        return {"in_flight": self.in_flight, "busy": self.meter.level,
                "busy_seconds": round(self.meter.total(time.monotonic()), 6),
                "capacity": self.capacity,
                "waiting_workers": self.waiting_workers, "workers": self.workers,
                "arrived": self.arrived, "ok": self.ok, "failed": self.failed}
