"""The live engine's autoscaler: the simulator's rule (:class:`topologies.scaling.ScalingRule`)
on real replica processes.

One thread serves every autoscaled service. It reads each replica's
``/_faultmesh/stats`` several times per second and integrates the busy units it reports
(workers doing their own work, or an LLM's batch places held) over time — or takes the
differences of the replica's own integral, ``busy_seconds``, when the emulator reports one.
A paused replica that cannot answer keeps its last level (it holds its work); a killed one
counts nothing. The ready replica-seconds of each interval come from the run's
:class:`~chaos.live.book.ReplicaBook`. Every ``interval`` (counted from the load's first
request, as the faults are) the rule gives the replica count the service should have; the
run then starts replicas (they cost from now and join the balancer after ``cold_start``)
or stops them (the starting ones first; a stopped replica leaves the balancer at once and
its process ends when its last connection has).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from topologies.model import Autoscale
from topologies.scaling import ScalingRule, stop_order

from .book import READY
from .util import http

if TYPE_CHECKING:
    from .book import Replica
    from .run import LiveRun

__all__ = ["LiveAutoscaler", "POLL"]

#: Seconds between two readings of the replicas' busy units (at most; a tenth of the
#: shortest interval when that is shorter).
POLL = 0.2
#: Seconds a replica gets to answer a stats reading.
STATS_TIMEOUT = 0.25


@dataclass
class _Service:
    """One autoscaled service's meter and rule."""

    name: str
    spec: Autoscale
    rule: ScalingRule
    origin: float
    next_decision: float
    busy_total: float = 0.0
    last: float = 0.0
    level: dict[int, float] = field(default_factory=dict)      # id(replica) -> busy units
    integral: dict[int, float] = field(default_factory=dict)   # id(replica) -> busy_seconds
    queued: dict[int, float] = field(default_factory=dict)     # id(replica) -> waiting


class LiveAutoscaler:
    """The autoscaler thread of a live run (:meth:`start` once the load has begun)."""

    def __init__(self, run: LiveRun) -> None:
        self.run = run
        self.specs = {name: spec.autoscale for name, spec in run.topology.services.items()
                      if spec.autoscale is not None}
        shortest = min((s.interval for s in self.specs.values()), default=POLL * 10)
        self.poll = max(0.02, min(POLL, shortest / 10))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: every decision: (time, service, metric, ready, existing, target)
        self.decisions: list[tuple[float, str, float | None, int, int, int]] = []

    def start(self) -> None:
        if not self.specs or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="faultmesh-autoscaler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)

    def _loop(self) -> None:
        run = self.run
        now = time.time()
        services = []
        for name, spec in self.specs.items():
            svc = run.topology.services[name]
            capacity = svc.llm.max_batch if svc.llm is not None else svc.workers
            rule = ScalingRule(spec, capacity, now, len(run.book.existing(name)))
            services.append(_Service(name, spec, rule, now, now + spec.interval, last=now))
        while not self._stop.wait(self.poll):
            for s in services:
                now = time.time()
                self._read(s, now)
                if now >= s.next_decision:
                    s.next_decision += s.spec.interval
                    self._decide(s, now)

    def _read(self, s: _Service, now: float) -> None:
        """One reading of the service's replicas: busy unit-seconds since the last one."""
        dt = now - s.last
        s.last = now
        seen = set()
        for rep in self.run.book.existing(s.name):
            key = id(rep)
            seen.add(key)
            if rep.down or rep.port is None:
                s.level[key] = 0.0
                s.queued[key] = 0.0
                continue
            before = s.level.get(key, 0.0)
            try:
                stats = http("GET", rep.port, "/_faultmesh/stats", timeout=STATS_TIMEOUT)
            except (OSError, ValueError):
                s.busy_total += before * dt   # paused (or slow to answer): as it was
                continue
            level = float(stats.get("busy") or 0.0)
            if stats.get("busy_seconds") is not None:  # the replica's own integral
                total = float(stats["busy_seconds"])
                if key in s.integral:
                    s.busy_total += max(0.0, total - s.integral[key])
                s.integral[key] = total
            else:
                s.busy_total += (before + level) / 2 * dt
            s.level[key] = level
            s.queued[key] = float(stats.get("queued") or 0.0)
        for table in (s.level, s.integral, s.queued):
            for key in [k for k in table if k not in seen]:
                del table[key]

    def _decide(self, s: _Service, now: float) -> None:
        run = self.run
        book = run.book
        # a surge rollout's extra replicas are the rollout's, as in the simulator
        existing = [r for r in book.existing(s.name) if not r.surge]
        serving = [r for r in book.serving(s.name) if not r.surge]
        target = s.rule.decide(now, ready=len(serving), running=len(existing),
                               busy_total=s.busy_total,
                               ready_total=book.integral(s.name, s.origin, now, READY),
                               queued=sum(s.queued.get(id(r), 0.0) for r in serving))
        self.decisions.append((now, s.name, s.rule.metric, len(serving), len(existing),
                               target))
        for _ in range(target - len(existing)):
            run.grow(s.name, now)
        surplus = max(0, len(existing) - target)
        for rep in stop_order(existing, _serving)[:surplus]:
            run.shrink(rep, now)


def _serving(rep: Replica) -> bool:
    return rep.ready_at is not None
