"""``rollout`` in a live run: every replica of the target replaced, ``batch`` at a time, as
the simulator does it (a Kubernetes rolling update).

With ``surge`` (the default) each batch's new replicas start first (they cost from then and
are on top of the count: the autoscaler neither counts nor stops them), join their callers'
balancers ``startup`` seconds later (or once their process answers, if that is later), and
only then do as many old ones leave the balancer and drain. Without surge the old ones leave
first, so the service runs short by a batch until the new ones serve. The fault's window in
faults.csv is the actual rollout, from its start until the last batch serves.

Callers reach a rolled-out service through a membership relay (:class:`~chaos.live.relay.
MemberRelay`), as an autoscaled one, so replicas can come and go behind their fixed address
lists. Its slot count is chosen so that every replica count the rollout passes through
holds the same share of slots (:func:`rollout_slots`).
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from topologies.model import Fault, Topology

    from .faults import Applied
    from .run import LiveRun

__all__ = ["Rollout", "rollout_slots", "MAX_SLOTS", "READY_GRACE"]

#: At most this many relay slots per caller for a rollout (a proxy each).
MAX_SLOTS = 24
#: Seconds past ``startup`` a new replica's process may take to answer before the rollout
#: goes on without it (a problem is reported).
READY_GRACE = 60.0


def _batches(n: int, batch: int) -> list[int]:
    return [min(batch, n - i) for i in range(0, n, batch)]


def rollout_slots(topology: Topology, service: str, faults: tuple[Fault, ...]) -> int | None:
    """The relay slots a service with rollouts needs: a common multiple of every replica
    count its rollouts pass through (so each serving replica holds an equal share), at most
    :data:`MAX_SLOTS` (then the largest count: shares differ by one slot); None without a
    rollout on it."""
    spec = topology.services[service]
    rollouts = [f for f in faults if f.type == "rollout" and f.target == service]
    if spec.autoscale is not None or not rollouts:
        return None  # an autoscaled service's relay has autoscale.max slots already
    n = spec.replicas
    counts = {n}
    for f in rollouts:
        surge = True if f.surge is None else bool(f.surge)
        for b in _batches(n, max(1, int(f.batch or 1))):
            counts.add(n + b if surge else n - b)
    counts.discard(0)
    slots = math.lcm(*counts)
    return slots if slots <= MAX_SLOTS else max(counts)


class Rollout(threading.Thread):
    """One rollout of a live run, in a thread of its own (it takes ``startup`` per batch)."""

    def __init__(self, run: LiveRun, a: Applied, service: str) -> None:
        super().__init__(name=f"faultmesh-rollout-{service}", daemon=True)
        self.run_, self.a, self.service = run, a, service
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _wait(self, seconds: float) -> bool:
        """Sleep; True when the run or this rollout ended meanwhile."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self._cancel.is_set() or self.run_._closed.is_set():
                return True
            time.sleep(min(0.05, max(0.0, deadline - time.time())))
        return self._cancel.is_set() or self.run_._closed.is_set()

    def run(self) -> None:
        run, f = self.run_, self.a.fault
        batch = max(1, int(f.batch or 1))
        startup = float(f.startup or 0.0)
        surge = True if f.surge is None else bool(f.surge)
        old = [r for r in run.book.existing(self.service) if not r.surge]
        while old:
            group, old = old[:batch], old[batch:]
            group = [r for r in group if r.stopped is None]  # the autoscaler may have stopped some
            now = time.time()
            if not surge:
                for rep in group:
                    run.shrink(rep, now)
            new = [rep for rep in (run.grow(self.service, now, ready_after=startup,
                                            surge=surge) for _ in group) if rep is not None]
            if self._wait(max(0.0, now + startup - time.time())):
                return
            give_up = time.time() + READY_GRACE
            while any(r.ready_at is None and r.stopped is None for r in new):
                if time.time() > give_up:
                    run.problem(f"rollout of {self.service}: a new replica did not serve "
                                f"{READY_GRACE:g} s after its startup")
                    break
                if self._wait(0.05):
                    return
            if surge:
                now = time.time()
                for rep in group:
                    if rep.stopped is None:
                        run.shrink(rep, now)
                for rep in new:
                    rep.surge = False  # they replace the old ones now
        self.a.end = time.time()
