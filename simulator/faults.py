"""Faults: what each fault type of a scenario does to the simulated system, in its window.

Network faults (``latency``, ``bandwidth``, ``down``, ``timeout``, ``reset_peer``, ``loss``)
act on edges: every edge into the target service, or the one edge ``caller->callee``. The
other types act on the target service (the callee of an edge target):

* ``loss`` loses each attempt's request and its answer each with ``probability`` p, as a TCP
  segment lost and sent again: a lost segment costs one retransmission timeout, ``RTO_MIN``
  (200 ms, Linux's minimum) the first time, doubled for every further loss of the same
  segment (at most ``RTO_MAX``, Linux's 120 s); the attempt's timeout, when it has one, ends
  the wait as for any slow answer (:func:`retransmission_delay`);
* ``cpu`` divides own processing time by ``fraction`` for what starts in the window (a CPU
  quota cut); an LLM's iterations run on its GPU and are not slowed;
* ``memory`` OOM-kills a replica whose ``memory.base + memory.per_request x requests in
  progress`` exceeds ``limit`` during the window: as a ``kill`` of that replica (its requests
  fail, it serves again after ``restart``), one faults.csv row per OOM kill;

* ``errors`` answers a share ``rate`` of requests with ``status`` (default 500) at once;
* ``slow`` multiplies own processing time (and LLM prefill/decode time) by ``factor``;
* ``kill`` crashes ``replicas`` replicas (default 1): their in-flight requests fail (status
  0, reset) and they serve again after the service's ``restart``;
* ``pause`` freezes ``replicas`` replicas (default all) for the window: they hold their
  requests, which resume afterwards (the frozen time is added to whatever they were doing);
* ``partition`` cuts ``replicas`` replicas (default all) off for the window: attempts sent to
  them hang (the caller's timeout ends them) and are reset when the window ends;
* ``rollout`` replaces every replica, ``batch`` at a time: with ``surge`` (default) new ones
  start, serve after ``startup``, then as many old ones stop; without surge the old ones
  stop first. Its window is the actual rollout, from start until the last batch serves.

A fault whose duration is None lasts to the end of the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from topologies.errors import UsageError
from topologies.model import NETWORK_FAULTS, Fault

if TYPE_CHECKING:
    from .calls import Edge
    from .engine import Simulation
    from .replica import Replica, ServiceRuntime

__all__ = ["NetState", "FaultInjector", "CUTTING", "RTO_MIN", "RTO_MAX",
           "retransmission_delay"]

INF = math.inf
#: Network faults that also hit the connections open when they start.
CUTTING = ("down", "reset_peer", "timeout")
#: Linux's bounds on TCP's retransmission timeout (TCP_RTO_MIN, TCP_RTO_MAX).
RTO_MIN = 0.2
RTO_MAX = 120.0


def retransmission_delay(p: float, uniform: Callable[[], float]) -> float:
    """Seconds one segment is late under loss ``p``: each try is lost with probability p
    (a draw below p); the k-th loss in a row costs ``min(RTO_MIN x 2^(k-1), RTO_MAX)``."""
    delay, rto = 0.0, RTO_MIN
    while uniform() < p:
        delay += rto
        rto = min(2.0 * rto, RTO_MAX)
    return delay


class NetState:
    """The combined network faults active on one edge right now.

    ``hang`` is None (no hanging connections), a number of seconds after which a hanging
    connection is closed, or 0 (it hangs until ``hang_until``, the end of the fault window).
    """

    __slots__ = ("down", "reset", "hang", "hang_until", "latency", "jitter", "bandwidth", "loss")

    def __init__(self, faults: list[tuple[Fault, float]]):
        self.down = any(f.type == "down" for f, _ in faults)
        self.reset = any(f.type == "reset_peer" for f, _ in faults)
        hangs = [(float(f.timeout or 0.0), end) for f, end in faults if f.type == "timeout"]
        self.hang: float | None = min(h for h, _ in hangs) if hangs else None
        self.hang_until = max((end for _, end in hangs), default=INF)
        self.latency = sum(float(f.latency or 0.0) for f, _ in faults if f.type == "latency")
        self.jitter = sum(float(f.jitter or 0.0) for f, _ in faults if f.type == "latency")
        rates = [float(f.rate) for f, _ in faults if f.type == "bandwidth" and f.rate]
        self.bandwidth = min(rates) if rates else 0.0
        keep = 1.0
        for f, _ in faults:
            if f.type == "loss":
                keep *= 1.0 - float(f.probability or 0.0)   # independent losses compound
        self.loss = 1.0 - keep


class FaultInjector:
    """Applies a scenario's faults to a running simulation at their times."""

    def __init__(self, sim: Simulation, faults: tuple[Fault, ...]):
        self.sim = sim
        self.env: simpy.Environment = sim.env
        self.active: dict[int, list[tuple[Fault, float]]] = {}   # id(edge) -> faults
        self.service_faults: dict[str, list[Fault]] = {}
        self.memory_faults: dict[str, list[Fault]] = {}
        self.oom_pending: set[Replica] = set()
        for f in faults:
            self._check(f)
        for i, f in enumerate(faults):
            if f.type in ("kill", "memory"):
                sim.services[f.service].killable = True
            if f.type == "loss":
                for e in self._edges(f):
                    if e.loss_draw is None:   # one stream per edge: its own loss draws
                        e.loss_draw = sim.streams.uniform(f"loss:{e.name}:{e.site}")
            if f.type in CUTTING:
                for e in self._edges(f):
                    if e.cut is None:
                        e.cut = self.env.event()
            self.env.process(self._run(i, f))

    def _check(self, f: Fault) -> None:
        services = self.sim.services
        if f.service not in services:
            raise UsageError(f"fault {f.type} targets unknown service {f.service!r}")
        if f.edge is not None and not self._edges(f):
            raise UsageError(f"fault {f.type} targets {f.target!r}, which is not an edge")
        if f.type == "loss" and not 0.0 < float(f.probability or 0.0) < 1.0:
            raise UsageError(f"fault loss on {f.target!r}: probability must lie between 0 "
                             f"and 1, not {f.probability!r}")
        if f.type == "memory" and services[f.service].spec.memory is None:
            raise UsageError(f"fault memory on {f.target!r}: services.{f.service}.memory is "
                             "not given")

    def _edges(self, f: Fault) -> list[Edge]:
        edges = self.sim.edges_into[f.service]
        if f.edge is not None:
            caller = f.edge[0]
            edges = [e for e in edges if e.caller == caller]
        return edges

    # -- the fault timeline -------------------------------------------------------------

    def _run(self, i: int, f: Fault):
        env = self.env
        if f.start > env.now:
            yield env.timeout(f.start)
        end = INF if f.end is None else f.end
        row = [f.type, f.target, env.now, None if f.end is None else end, f.parameters()]
        self.sim.rec.faults.append(row)
        svc = self.sim.services[f.service]
        if f.type in NETWORK_FAULTS:
            self._network(f, end, +1)
            if f.type in CUTTING:
                self._cut(f, end)
            if f.end is not None:
                yield env.timeout(end - env.now)
                self._network(f, end, -1)
        elif f.type in ("errors", "slow", "cpu"):
            self.service_faults.setdefault(svc.name, []).append(f)
            self._service_state(svc)
            if f.end is not None:
                yield env.timeout(end - env.now)
                self.service_faults[svc.name].remove(f)
                self._service_state(svc)
        elif f.type == "kill":
            victims = svc.serving[: f.replicas if f.replicas is not None else 1]
            for rep in victims:
                self.kill(rep)
            row[3] = env.now + svc.spec.restart
            yield env.timeout(svc.spec.restart)
            for rep in victims:
                self.restart(rep)
        elif f.type == "pause":
            for rep in self._chosen(svc, f):
                rep.paused_until = max(rep.paused_until, end)
                rep.pauses.append((env.now, end))
        elif f.type == "partition":
            for rep in self._chosen(svc, f):
                rep.partitioned_until = max(rep.partitioned_until, end)
        elif f.type == "rollout":
            yield from self._rollout(svc, f)
            row[3] = env.now
        elif f.type == "memory":
            self.memory_faults.setdefault(svc.name, []).append(f)
            self._memory_state(svc)
            if f.end is not None:
                yield env.timeout(end - env.now)
                self.memory_faults[svc.name].remove(f)
                self._memory_state(svc)

    def _chosen(self, svc: ServiceRuntime, f: Fault) -> list[Replica]:
        reps = [r for r in svc.replicas if not r.stopped]
        return reps if f.replicas is None else reps[: f.replicas]

    def _cut(self, f: Fault, end: float) -> None:
        """A fault that also hits connections already open, as Toxiproxy does: attempts in
        flight on the edge are reset (``down``, ``reset_peer``) or hang (``timeout``: for
        its timeout, or to the fault's end when that is 0)."""
        how = None
        if f.type == "timeout":
            how = float(f.timeout) if f.timeout else end - self.env.now
        for e in self._edges(f):
            fired, e.cut = e.cut, self.env.event()
            if fired is not None:
                fired.succeed(how)

    def _network(self, f: Fault, end: float, sign: int) -> None:
        for e in self._edges(f):
            faults = self.active.setdefault(id(e), [])
            if sign > 0:
                faults.append((f, end))
            else:
                faults.remove((f, end))
            e.net = NetState(faults) if faults else None

    def _service_state(self, svc: ServiceRuntime) -> None:
        faults = self.service_faults.get(svc.name, [])
        slow = 1.0
        cpu = 1.0
        keep = 1.0
        status = 500
        for f in faults:
            if f.type == "slow":
                slow *= float(f.factor if f.factor is not None else 1.0)
            elif f.type == "cpu":
                cpu *= float(f.fraction or 1.0)
            else:
                keep *= 1.0 - float(f.rate if f.rate is not None else 1.0)
                status = int(f.status or 500)
        svc.slow = slow
        svc.own_slow = slow / cpu     # the CPU cut slows own processing, not GPU iterations
        svc.fault_error = 1.0 - keep
        svc.fault_status = status

    def _memory_state(self, svc: ServiceRuntime) -> None:
        """Arm (or disarm) the OOM check of ``svc`` with the lowest limit in force, and check
        every replica at once: one may already hold more."""
        limits = [float(f.limit) for f in self.memory_faults.get(svc.name, []) if f.limit]
        memory = svc.spec.memory
        if not limits or memory is None:
            svc.oom = None
            return
        limit = min(limits)

        def check(rep: Replica) -> None:
            if memory.held(rep.active) > limit and rep.alive and rep not in self.oom_pending:
                self.oom_pending.add(rep)
                self.env.process(self._oom_kill(svc, rep, limit))

        svc.oom = check
        for rep in svc.serving:
            check(rep)

    def _oom_kill(self, svc: ServiceRuntime, rep: Replica, limit: float):
        """The kernel's OOM killer ends ``rep`` as a ``kill`` does; it serves again after the
        service's ``restart``. (A process of its own: the request that crossed the limit must
        not interrupt itself.)"""
        env = self.env
        yield env.timeout(0)
        self.oom_pending.discard(rep)
        if not rep.alive or rep.stopped:
            return
        self.kill(rep)
        back = env.now + svc.spec.restart
        self.sim.rec.faults.append(["memory", svc.name, env.now, back,
                                    {"limit": limit, "oom_kill": rep.index}])
        yield env.timeout(svc.spec.restart)
        if not rep.stopped:
            self.restart(rep)

    # -- replica events -------------------------------------------------------------------

    def kill(self, rep: Replica) -> None:
        """Crash ``rep``: its in-flight requests and the calls they were making fail now; it
        refuses connections until it restarts (callers' balancers still pick it)."""
        rep.alive = False
        rep.service.refresh()
        if rep.workers is not None:
            rep.workers.queue.clear()   # the waiters die with it; holders give theirs back
        for proc in list(rep.inflight):
            if proc.is_alive:
                proc.interrupt("killed")
        rep.inflight.clear()
        if rep.engine is not None:
            rep.engine.stop()

    def restart(self, rep: Replica) -> None:
        """A crashed replica comes back with nothing in flight."""
        rep.reset()
        rep.alive = True
        rep.service.refresh()

    def _rollout(self, svc: ServiceRuntime, f: Fault):
        env = self.env
        sim = self.sim
        batch = max(1, int(f.batch or 1))
        startup = float(f.startup or 0.0)
        surge = True if f.surge is None else bool(f.surge)
        old = [r for r in svc.replicas if not r.stopped]
        while old:
            group, old = old[:batch], old[batch:]
            group = [r for r in group if not r.stopped]   # the autoscaler may have stopped some
            if not surge:
                for rep in group:
                    sim.stop_replica(rep)
            new = [sim.start_replica(svc, ready_after=None) for _ in group]
            if surge:
                svc.surge.update(new)
            if startup > 0:
                yield env.timeout(startup)
            for rep in new:
                sim.make_ready(rep)
            if surge:
                for rep in group:
                    if not rep.stopped:
                        sim.stop_replica(rep)
                svc.surge.difference_update(new)   # they replace the old ones now
