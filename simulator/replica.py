"""Services and their replicas as the simulation runs them.

A :class:`Replica` is one running copy of a service: it has ``concurrency`` slots (held by a
request from arrival to answer, with a waiting queue), ``workers`` (held only during the
request's own processing) and, for an LLM server, a continuous-batching engine. A
:class:`ServiceRuntime` is the set of a service's replicas plus what callers see of it: the
balancer that picks a replica, the token-bucket rate limit, and the faults acting on it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from topologies.metering import BusyMeter
from topologies.model import Service
from topologies.policies import TokenBucket

if TYPE_CHECKING:
    from .llm import BatchEngine

__all__ = ["Replica", "ServiceRuntime", "Workers", "frozen_overlap", "thaw"]

INF = math.inf


def frozen_overlap(pauses: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Seconds of [t0, t1] during which a replica was paused (its windows may overlap)."""
    total = 0.0
    for a, b in pauses:
        lo, hi = max(a, t0), min(b, t1)
        if hi > lo:
            total += hi - lo
    return total


def thaw(env: simpy.Environment, rep: Replica, t0: float):
    """Work that ran on ``rep`` from ``t0`` until now across a pause ends later by the time
    the replica was frozen (and by any pause that falls into that extra time)."""
    extra = frozen_overlap(rep.pauses, t0, env.now)
    while extra > 0:
        if math.isinf(extra):
            yield env.event()  # frozen to the end of the run: never finishes
        t1 = env.now
        yield env.timeout(extra)
        extra = frozen_overlap(rep.pauses, t1, env.now)


class Workers:
    """The workers of one replica: ``capacity`` requests do their own processing at once,
    the others wait in arrival order. (A lean stand-in for ``simpy.Resource``: taking a free
    worker costs no event, and a released worker is handed straight to the next waiter.)"""

    __slots__ = ("env", "capacity", "count", "queue", "meter")

    def __init__(self, env: simpy.Environment, capacity: int, meter: BusyMeter | None = None):
        if capacity < 1:
            raise ValueError(f"capacity: must be at least 1, not {capacity}")
        self.env = env
        self.capacity = capacity
        self.count = 0
        self.queue: deque[simpy.Event] = deque()
        self.meter = meter if meter is not None else BusyMeter(env.now)

    def acquire(self) -> simpy.Event | None:
        """Take a worker: None if one was free, else an event that fires when one is."""
        if self.count < self.capacity:
            self.count += 1
            self.meter.change(self.env.now, +1)
            return None
        ev = simpy.Event(self.env)
        self.queue.append(ev)
        return ev

    def cancel(self, ev: simpy.Event) -> None:
        """A waiter gives up (its queue timeout): it leaves the queue, or gives back the
        worker handed to it at that very moment."""
        if ev.triggered:
            self.release()
        else:
            self.queue.remove(ev)

    def release(self) -> None:
        """Give the worker back (to the first waiter, if any)."""
        if self.queue:
            self.queue.popleft().succeed()
        else:
            self.count -= 1
            self.meter.change(self.env.now, -1)


class Replica:
    """One running copy of a service, with its slots, workers and (LLM) batch engine."""

    __slots__ = ("service", "index", "env", "slots", "workers", "engine", "active", "serving",
                 "alive", "stopped", "paused_until", "pauses", "partitioned_until", "inflight",
                 "span")

    def __init__(self, env: simpy.Environment, service: ServiceRuntime, index: int):
        self.env = env
        self.service = service
        self.index = index
        self.active = 0          # requests holding or waiting for a slot (least_request)
        self.serving = False     # the balancer may send it requests
        self.alive = True
        self.stopped = False
        self.paused_until = -INF
        self.pauses: list[tuple[float, float]] = []
        self.partitioned_until = -INF
        # insertion-ordered (a dict, not a set): a kill interrupts in arrival order, so the
        # same seed gives the same run whatever the memory addresses
        self.inflight: dict[simpy.Process, None] = {}
        self.engine: BatchEngine | None = None
        self.span: list | None = None     # this replica's row of Recorder.replica_spans
        self.slots: simpy.Resource | None = None
        self.workers: Workers | None = None
        self.reset()

    def reset(self) -> None:
        """Fresh slots, workers and engine: a replica (re)started with nothing in flight."""
        spec = self.service.spec
        env = self.env
        self.slots = simpy.Resource(env, spec.concurrency) if spec.concurrency else None
        self.workers = Workers(env, spec.workers, self.service.busy_meter)
        self.active = 0
        self.inflight = {}
        if spec.llm is not None and self.service.engine_factory is not None:
            self.engine = self.service.engine_factory(self)

    def busy(self) -> int:
        """Workers (or, for an LLM server, sequences in the batch) busy now."""
        if self.engine is not None:
            return len(self.engine.members)
        return self.workers.count if self.workers is not None else 0

    def queued(self) -> int:
        """Requests waiting for a slot, a worker or a batch place now."""
        n = len(self.workers.queue) if self.workers is not None else 0
        if self.slots is not None:
            n += len(self.slots.queue)
        if self.engine is not None:
            n += len(self.engine.waiting)
        return n


class ServiceRuntime:
    """A service while the simulation runs: replicas, balancer, rate limit, fault state."""

    def __init__(self, env: simpy.Environment, spec: Service, index: int,
                 uniform: Callable[[], float],
                 engine_factory: Callable[[Replica], BatchEngine] | None = None):
        self.env = env
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.engine_factory = engine_factory
        self.replicas: list[Replica] = []
        self.serving: list[Replica] = []      # ready: serving and alive
        self.candidates: list[Replica] = []   # what balancers pick from: crashed ones too
        # replicas a surge rollout started on top of the count (Kubernetes' maxSurge): the
        # autoscaler neither counts nor stops them, as an HPA sets the Deployment's replicas
        # and leaves the surge pods to the rollout
        self.surge: set[Replica] = set()
        self._rr = 0
        self._uniform = uniform
        self.bucket = TokenBucket(spec.rate_limit) if spec.rate_limit else None
        self.queue_limit = spec.queue
        self.queue_timeout = spec.queue_timeout
        self.slow = 1.0          # slow faults: own processing and LLM iterations
        self.own_slow = 1.0      # slow and cpu faults: own processing only
        # a memory fault in force: called with a replica whose requests in progress grew
        self.oom: Callable[[Replica], None] | None = None
        self.fault_error = 0.0
        self.fault_status = 500
        self.killable = False
        self.work_done = 0.0     # worker-seconds (or sequence-seconds) of finished own work
        # integrated over time (topologies.metering): busy units (workers doing own work, or
        # LLM sequences holding a batch place) and serving replicas, for utilization and the
        # autoscaler; a killed replica's busy units leave the meter at the kill
        self.busy_meter = BusyMeter(env.now)
        self.ready_meter = BusyMeter(env.now)
        self.answered_ok = 0
        self.answered_error = 0
        capacity = spec.llm.max_batch if spec.llm is not None else spec.workers
        self.capacity = capacity                     # busy units per replica
        self.price_per_busy_second = spec.cost.per_replica_hour / 3600.0 / max(1, capacity)
        picks = {"round_robin": self._round_robin, "random": self._random,
                 "least_request": self._least_request}
        self._pick: Callable[[list[Replica]], Replica | None] = picks[spec.balancer]

    def pick(self, reps: list[Replica] | None = None) -> Replica | None:
        """The replica the balancer sends the next attempt to, among ``reps`` (default: every
        candidate), or None when there is none."""
        return self._pick(self.candidates if reps is None else reps)

    # -- replica set -----------------------------------------------------------------

    def new_replica(self) -> Replica:
        rep = Replica(self.env, self, len(self.replicas))
        self.replicas.append(rep)
        return rep

    def refresh(self) -> None:
        """Rebuild the lists of ready replicas and of those the balancer picks from (a crashed
        replica stays a candidate: callers do not know it died, and it refuses them)."""
        self.candidates = [r for r in self.replicas if r.serving and not r.stopped]
        self.serving = [r for r in self.candidates if r.alive]
        self.ready_meter.set(self.env.now, len(self.serving))

    def running(self) -> list[Replica]:
        """Replicas that exist (starting, serving or restarting) and cost money."""
        return [r for r in self.replicas if not r.stopped]

    # -- balancers -------------------------------------------------------------------

    def _round_robin(self, reps: list[Replica]) -> Replica | None:
        if not reps:
            return None
        self._rr += 1
        return reps[self._rr % len(reps)]

    def _random(self, reps: list[Replica]) -> Replica | None:
        if not reps:
            return None
        return reps[int(self._uniform() * len(reps))]

    def _least_request(self, reps: list[Replica]) -> Replica | None:
        n = len(reps)
        if n == 0:
            return None
        self._rr += 1
        start = self._rr % n
        best = reps[start]
        for i in range(1, n):
            r = reps[(start + i) % n]
            if r.active < best.active:
                best = r
        return best
