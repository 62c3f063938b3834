"""The autoscaler's decision, once for both engines: what replica count a service wants.

Every ``interval`` the autoscaler of a service reads its metric and sets the replica count
between ``min`` and ``max``, as a Kubernetes HPA does:

* ``utilization`` is the busy unit-seconds of the interval (workers doing their own work, or
  an LLM server's batch places held) over the capacity of the replica-seconds that were
  ready in that same interval. Both are integrals over the interval (the engines keep them
  with :class:`topologies.metering.BusyMeter` or an equivalent counter), so work is charged
  to the interval it happened in and a replica that became ready late in the interval
  counts only for the time it served;
* ``queue`` is the number of requests waiting on the ready replicas now, per ready replica.

The wanted count is ``ceil(ready x metric / target)`` with ``ready`` the replicas serving
now, kept within ``[min, max]``; with no replica serving the count stays as it is. Scaling
up happens at once. Scaling down follows Kubernetes' scale-down stabilization window: the
count only drops to the highest count wanted over the last ``cooldown`` seconds (the
starting count counts as wanted when the autoscaler starts), so a fresh deployment is not
shrunk before ``cooldown`` has passed and a dip does not cause flapping. The replicas to
stop are chosen by :func:`stop_order`: those still starting first, newest first.

The engines own the clock and the replicas; :class:`ScalingRule` owns the arithmetic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from topologies.model import Autoscale

__all__ = ["ScalingRule", "utilization", "queue_per_replica", "stop_order"]

T = TypeVar("T")


def utilization(busy_seconds: float, capacity: int, ready_seconds: float) -> float:
    """Busy unit-seconds over the capacity of the ready replica-seconds of one interval
    (0 when no replica was ready in it)."""
    if capacity < 1:
        raise ValueError(f"capacity: must be at least 1, not {capacity!r}")
    if ready_seconds <= 0:
        return 0.0
    return max(0.0, busy_seconds) / (capacity * ready_seconds)


def queue_per_replica(queued: float, ready: int) -> float:
    """Requests waiting on the ready replicas, per ready replica (0 with none ready)."""
    return max(0.0, queued) / ready if ready > 0 else 0.0


def stop_order(replicas: Sequence[T], serving: Callable[[T], bool]) -> list[T]:
    """The order in which to stop ``replicas`` (oldest first in the input): the ones still
    starting (not serving yet) first, newest first, then the serving ones, newest first."""
    starting = [r for r in replicas if not serving(r)]
    ready = [r for r in replicas if serving(r)]
    return starting[::-1] + ready[::-1]


class ScalingRule:
    """The autoscaler of one service: fed the meters' running totals at each decision, it
    returns the replica count the service should have.

    ``capacity`` is a replica's busy units (its workers, or an LLM server's ``max_batch``);
    ``now`` the engine's clock at the start, ``replicas`` the count started with, and
    ``busy_total``/``ready_total`` the meters' totals at that moment (busy unit-seconds
    and ready replica-seconds since the engine's time zero).
    """

    def __init__(self, spec: Autoscale, capacity: int, now: float, replicas: int,
                 busy_total: float = 0.0, ready_total: float = 0.0) -> None:
        if not isinstance(spec, Autoscale):
            raise TypeError(f"spec: expected an Autoscale, not {type(spec).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity: must be at least 1, not {capacity!r}")
        if replicas < 0:
            raise ValueError(f"replicas: must be >= 0, not {replicas!r}")
        self.spec = spec
        self.capacity = capacity
        self.metric: float | None = None          # the last metric read
        self._busy = busy_total
        self._ready = ready_total
        self._wanted: deque[tuple[float, int]] = deque([(now, replicas)])

    def read_metric(self, *, ready: int, busy_total: float, ready_total: float,
                    queued: float) -> float:
        """The metric of the interval since the last reading (and start the next one)."""
        busy, self._busy = busy_total - self._busy, busy_total
        ready_seconds, self._ready = ready_total - self._ready, ready_total
        if self.spec.metric == "queue":
            return queue_per_replica(queued, ready)
        return utilization(busy, self.capacity, ready_seconds)

    def wanted(self, ready: int, running: int, metric: float) -> int:
        """``ceil(ready x metric / target)`` within ``[min, max]`` (``running`` when no
        replica is ready)."""
        spec = self.spec
        want = running if ready == 0 else math.ceil(ready * metric / spec.target - 1e-9)
        return min(spec.max, max(spec.min, want))

    def decide(self, now: float, *, ready: int, running: int, busy_total: float = 0.0,
               ready_total: float = 0.0, queued: float = 0.0) -> int:
        """The replica count the service should have from ``now`` on.

        ``ready`` replicas serve now and ``running`` exist (starting, serving or
        restarting: what costs money); ``busy_total`` and ``ready_total`` are the meters'
        totals now; ``queued`` the requests waiting on the ready replicas now. More than
        ``running``: start the difference; fewer: stop the difference (:func:`stop_order`).
        """
        self.metric = self.read_metric(ready=ready, busy_total=busy_total,
                                       ready_total=ready_total, queued=queued)
        want = self.wanted(ready, running, self.metric)
        history = self._wanted
        history.append((now, want))
        while len(history) > 1 and history[0][0] <= now - self.spec.cooldown:
            history.popleft()
        if want > running:
            return want
        stable = max(w for _, w in history)
        return stable if stable < running else running
