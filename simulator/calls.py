"""Call execution: how a request travels an edge, is handled by a replica, and makes its
own calls.

One attempt on an edge ``caller->callee`` crosses the network (where network faults act),
passes the callee's rate limit, is given a replica by the callee's balancer, and is handled
there: a concurrency slot (or the queue, or 503), a worker for the own processing time, the
LLM generation, the service's own errors, then its calls in order while the slot is held.
A call wraps its attempts in the edge's policies: circuit breaker, timeout, retries with
backoff and budget, and the fallback.

The common case (no timeout, retry or breaker, no replica that can be killed) runs inline in
the caller's process with ``yield from``: no extra process, no extra event. A call with a
timeout runs its attempt in its own process so that the caller can abandon it while the
callee keeps working (that work is then counted as wasted).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import simpy

from topologies.model import Call, RetryPolicy
from topologies.policies import (
    Backoff,
    Breaker,
    OutlierDetector,
    RetryBudget,
    outlier_ok,
    retry_wait,
)

from .errors import (
    E_CIRCUIT_OPEN,
    E_DEGRADED,
    E_ERROR,
    E_INJECTED,
    E_QUEUE_TIMEOUT,
    E_RATE_LIMITED,
    E_REFUSED,
    E_REJECTED,
    E_RESET,
    E_TIMEOUT,
    retry_class,
)
from .faults import retransmission_delay
from .recorder import Recorder
from .replica import Replica, ServiceRuntime, thaw

if TYPE_CHECKING:
    from .faults import NetState

__all__ = ["Edge", "CallExecutor"]

Outcome = tuple[int, int]   # (status, error code)


def _replica_index(rep: Replica) -> int:
    return rep.index


class Policies:
    """The policy state of one edge as ONE caller replica keeps it (as each process of a
    live run does): its retry budget, circuit breaker and outlier detection."""

    __slots__ = ("budget", "breaker", "outlier")

    def __init__(self, call: Call, retry: RetryPolicy | None):
        self.budget = RetryBudget(retry.budget if retry else None,
                                  retry.budget_window if retry else 10.0)
        self.breaker = Breaker(call.circuit_breaker) if call.circuit_breaker else None
        self.outlier = OutlierDetector(call.outlier_detection) if call.outlier_detection \
            else None


class Edge:
    """One dependency edge ``caller->callee`` as it runs: the call spec, and the policy state
    of each caller replica (:class:`Policies`, keyed by the replica's index; -1: the
    client)."""

    __slots__ = ("caller", "caller_index", "site", "callee", "call", "timeout", "p",
                 "request_size",
                 "degrade", "retry", "uniform", "net", "plain", "proc", "has_policies",
                 "by_caller", "cut", "short_circuited", "loss_draw")

    def __init__(self, caller: str, caller_index: int, callee: ServiceRuntime, call: Call,
                 uniform: Callable[[], float], site: int = 0):
        self.caller = caller
        self.caller_index = caller_index
        self.site = site  # which of the caller's calls this is (calls.csv column `call`)
        self.callee = callee
        self.call = call
        self.timeout = call.timeout
        self.p = call.p
        self.request_size = call.request_size
        self.degrade = call.fallback == "degrade"
        self.retry = call.retry if call.retry is not None and call.retry.attempts > 1 else None
        self.uniform = uniform    # the edge's jitter draws; each call has its own Backoff
        self.has_policies = self.retry is not None or call.circuit_breaker is not None \
            or call.outlier_detection is not None
        self.by_caller: dict[int, Policies] = {}
        # fired by a down / reset_peer / timeout fault at its start, to reach the attempts
        # already open on the edge (None: no such fault targets it)
        self.cut: simpy.Event | None = None
        self.net: NetState | None = None
        self.proc = False
        self.plain = False
        self.short_circuited = 0
        self.loss_draw: Callable[[], float] | None = None   # set when a loss fault targets it

    @property
    def name(self) -> str:
        return f"{self.caller}->{self.callee.name}"

    def policies(self, who: int) -> Policies:
        """The policy state caller replica ``who`` keeps for this edge."""
        pol = self.by_caller.get(who)
        if pol is None:
            pol = self.by_caller[who] = Policies(self.call, self.retry)
        return pol

    def finalise(self, caller_killable: bool) -> None:
        """Decide how attempts run: own process (timeout, killable ends) or inline."""
        self.proc = self.timeout is not None or caller_killable or self.callee.killable \
            or self.cut is not None
        self.plain = not self.proc and not self.has_policies and not self.degrade


class CallExecutor:
    """Runs calls, attempts and request handling for one simulation."""

    def __init__(self, env: simpy.Environment, rec: Recorder,
                 steps: dict[str, list[Any]], uniforms: dict[str, Callable[[], float]],
                 latency: dict[str, Callable[[], float]],
                 network_uniform: Callable[[], float]):
        self.env = env
        self.rec = rec
        self.steps = steps            # service name -> [Edge | tuple[Edge, ...]]
        self.uniforms = uniforms      # service name -> uniform draws (p, error_rate, faults)
        self.latency = latency        # service name -> own processing time draws
        self.network_uniform = network_uniform

    # -- a call: policies around attempts ------------------------------------------------

    def _ended(self, e: Edge, cid: int, status: int, error: int) -> None:
        """Record the end of attempt ``cid`` and count the callee's answer."""
        self.rec.call_end(cid, self.env.now, status, error if status != 200 else 0)
        if status == 200:
            e.callee.answered_ok += 1
        else:
            e.callee.answered_error += 1

    def call(self, e: Edge, rid: int, parent: int, who: int = -1):
        """Make the call on edge ``e`` for request ``rid`` from caller replica ``who``;
        returns (status, error)."""
        if e.plain:
            env = self.env
            rec = self.rec
            cid = rec.call_start(rid, parent, e.caller_index, e.callee.index, 1, env.now, e.site)
            st, er = yield from self.deliver(e, rid, cid)
            self._ended(e, cid, st, er)
            return st, er
        return (yield from self._call_with_policies(e, rid, parent, e.policies(who)))

    def _call_with_policies(self, e: Edge, rid: int, parent: int, pol: Policies):
        env = self.env
        breaker = pol.breaker
        retry = e.retry
        budget = pol.budget
        backoff = Backoff(retry, e.uniform) if retry is not None else None
        n = 1
        while True:
            if breaker is not None and not breaker.allow(env.now):
                e.short_circuited += 1
                st, er = 0, E_CIRCUIT_OPEN
                break
            if n == 1:
                budget.record_call(env.now)
            st, er = yield from self.attempt(e, rid, parent, n, pol)
            if breaker is not None:
                breaker.record(env.now, st == 200)
            if st == 200:
                return st, er
            wait = retry_wait(retry, backoff, budget, n, retry_class(st, er), env.now)
            if wait is None:
                break
            if wait > 0:
                yield env.timeout(wait)
            n += 1
        if e.degrade:
            return 200, E_DEGRADED   # the caller's answer carries it up (if it is used)
        return st, er

    def attempt(self, e: Edge, rid: int, parent: int, n: int, pol: Policies | None = None):
        """One attempt on ``e``; with a timeout the caller abandons it after ``e.timeout``."""
        env = self.env
        rec = self.rec
        cid = rec.call_start(rid, parent, e.caller_index, e.callee.index, n, env.now, e.site)
        try:
            if e.proc:
                p = env.process(self.deliver(e, rid, cid, pol))
                tmo = env.timeout(e.timeout) if e.timeout is not None else None
                cut = e.cut
                waiting: simpy.Event = p
                if tmo is not None:
                    waiting = waiting | tmo
                if cut is not None:
                    waiting = waiting | cut
                yield waiting
                if p.triggered:
                    st, er = p.value
                elif tmo is not None and tmo.processed:   # (a Timeout is "triggered" at once)
                    st, er = 504, E_TIMEOUT
                else:
                    assert cut is not None
                    st, er = yield from self._cut_off(cut.value, tmo)
            else:
                st, er = yield from self.deliver(e, rid, cid, pol)
        except simpy.Interrupt:
            rec.call_end(cid, env.now, 0, E_RESET)   # the calling replica was killed
            raise
        self._ended(e, cid, st, er)
        outlier = pol.outlier if pol is not None else None
        if outlier is not None and rec.c_replica[cid] >= 0:
            outlier.record(rec.c_replica[cid], env.now, outlier_ok(st))
        return st, er

    def _cut_off(self, how: float | None, tmo: simpy.Event | None):
        """An open attempt whose connection a network fault just cut: reset at once
        (``how`` None: down, reset_peer), or hanging (``how`` seconds; infinite until the
        fault's end) until the caller's timeout or the connection's close (reset)."""
        if how is None:
            return 0, E_RESET
        hang = self._wait(how)
        yield hang if tmo is None else hang | tmo
        if tmo is not None and tmo.processed and not hang.processed:
            return 504, E_TIMEOUT
        return 0, E_RESET

    # -- an attempt: network, rate limit, balancer, replica ------------------------------

    def deliver(self, e: Edge, rid: int, cid: int, pol: Policies | None = None):
        """Carry attempt ``cid`` over the network to a replica of the callee and back."""
        env = self.env
        svc = e.callee
        net = e.net
        if net is not None:
            if net.down:
                return 0, E_REFUSED
            if net.reset:
                return 0, E_RESET
            if net.hang is not None:
                yield self._wait(net.hang if net.hang > 0 else net.hang_until - env.now)
                return 0, E_RESET
            delay = net.latency
            if net.jitter:
                delay += (2.0 * self.network_uniform() - 1.0) * net.jitter
            if net.bandwidth:
                delay += e.request_size / net.bandwidth
            if net.loss and e.loss_draw is not None:
                delay += retransmission_delay(net.loss, e.loss_draw)   # the request's segment
            if delay > 0:
                yield env.timeout(delay)
        if svc.bucket is not None and not svc.bucket.take(env.now):
            return 429, E_RATE_LIMITED
        outlier = pol.outlier if pol is not None else None
        if outlier is not None:
            rep = svc.pick(outlier.keep(svc.candidates, _replica_index, env.now))
        else:
            rep = svc.pick()
        if rep is None:
            return 0, E_REFUSED
        self.rec.c_replica[cid] = rep.index
        if not rep.alive:
            return 0, E_REFUSED     # a crashed replica refuses until it serves again
        if rep.partitioned_until > env.now:
            return (yield from self._swallowed(rep, e.timeout, cid))
        if svc.killable:
            proc = env.active_process
            rep.inflight[proc] = None
            try:
                st, er = yield from self.handle(svc, rep, rid, cid)
            except simpy.Interrupt:
                st, er = 0, E_RESET
            finally:
                rep.inflight.pop(proc, None)
        else:
            st, er = yield from self.handle(svc, rep, rid, cid)
        if rep.partitioned_until > env.now:   # cut off while working: the answer is lost
            return (yield from self._swallowed(rep, e.timeout, cid))
        net = e.net
        if net is not None:
            back = 0.0
            if net.bandwidth:
                size = svc.spec.response_bytes(self.rec.llm.get(cid, (0.0, 0.0, 0))[2])
                back = size / net.bandwidth
            if net.loss and e.loss_draw is not None:
                back += retransmission_delay(net.loss, e.loss_draw)   # the answer's segment
            if back > 0:
                yield env.timeout(back)
        return st, er

    # -- handling at a replica ---------------------------------------------------------

    def handle(self, svc: ServiceRuntime, rep: Replica, rid: int, cid: int):
        """Handle attempt ``cid`` at replica ``rep``: slot, work, generation, calls, answer."""
        env = self.env
        rec = self.rec
        spec = svc.spec
        rep.active += 1
        if svc.oom is not None:
            svc.oom(rep)    # a memory fault: one more request in progress may cross the limit
        try:
            if rep.paused_until > env.now:
                yield from self._frozen(rep)
            if svc.fault_error and self.uniforms[svc.name]() < svc.fault_error:
                return svc.fault_status, E_INJECTED
            slots = rep.slots
            slot = None
            if slots is not None:
                if slots.count >= slots.capacity and svc.queue_limit is not None \
                        and len(slots.queue) >= svc.queue_limit:
                    return 503, E_REJECTED
                slot = slots.request()
                if not slot.triggered:
                    if svc.queue_timeout is None:
                        yield slot
                    else:
                        yield slot | env.timeout(svc.queue_timeout)
                        if not slot.triggered:
                            slot.cancel()
                            return 503, E_QUEUE_TIMEOUT
            try:
                draw = self.latency.get(svc.name)
                if draw is not None:
                    d = draw() * svc.own_slow
                    workers = rep.workers
                    if slots is None and svc.queue_limit is not None \
                            and workers.count >= workers.capacity \
                            and len(workers.queue) >= svc.queue_limit:
                        return 503, E_REJECTED    # no concurrency: queue bounds the workers'
                    w = workers.acquire()
                    if w is not None:
                        if slots is None and svc.queue_timeout is not None:
                            yield w | env.timeout(svc.queue_timeout)
                            if not w.triggered:
                                workers.cancel(w)
                                return 503, E_QUEUE_TIMEOUT
                        else:
                            yield w   # interrupted only by a kill, which empties the queue
                    try:
                        t0 = env.now
                        yield env.timeout(d)
                        if rep.pauses:
                            yield from thaw(env, rep, t0)
                    finally:
                        workers.release()
                    svc.work_done += d
                    rec.c_cost[cid] += d * svc.price_per_busy_second
                if rep.engine is not None:
                    st = yield from rep.engine.generate(cid)
                    if st != 200:
                        return 0, E_RESET
                if spec.error_rate and self.uniforms[svc.name]() < spec.error_rate:
                    return 500, E_ERROR
                degraded = False
                for step in self.steps[svc.name]:
                    if step.__class__ is tuple:
                        st, er = yield from self._parallel(svc, step, rid, cid, rep.index)
                    elif step.p < 1.0 and self.uniforms[svc.name]() >= step.p:
                        continue
                    elif step.plain and step.net is None and step.callee.bucket is None:
                        # the common case, inline: no extra generator level per hop
                        callee = step.callee
                        ccid = rec.call_start(rid, cid, step.caller_index, callee.index, 1,
                                              env.now, step.site)
                        crep = callee.pick()
                        if crep is None:
                            st, er = 0, E_REFUSED
                        elif not crep.alive:
                            rec.c_replica[ccid] = crep.index
                            st, er = 0, E_REFUSED
                        elif crep.partitioned_until > env.now:
                            rec.c_replica[ccid] = crep.index
                            st, er = yield from self._swallowed(crep, None, ccid)
                        else:
                            rec.c_replica[ccid] = crep.index
                            st, er = yield from self.handle(callee, crep, rid, ccid)
                            if crep.partitioned_until > env.now:
                                st, er = yield from self._swallowed(crep, None, ccid)
                        rec.call_end(ccid, env.now, st, er if st != 200 else 0)
                        if st == 200:
                            callee.answered_ok += 1
                        else:
                            callee.answered_error += 1
                    else:
                        st, er = yield from self.call(step, rid, cid, rep.index)
                    if st != 200:
                        return (st if st else 502), er
                    if er == E_DEGRADED:
                        degraded = True
                if rep.paused_until > env.now:
                    yield from self._frozen(rep)
                return (200, E_DEGRADED) if degraded else (200, 0)
            finally:
                if slot is not None:
                    slots.release(slot)
        finally:
            rep.active -= 1

    def _parallel(self, svc: ServiceRuntime, group: tuple[Edge, ...], rid: int, cid: int,
                  who: int):
        """A parallel group: its calls (each made with probability p) run at once; the step
        ends when all have ended and fails with the first failed call in group order."""
        env = self.env
        uniform = self.uniforms[svc.name]
        procs = [env.process(self._branch(e, rid, cid, who)) for e in group
                 if e.p >= 1.0 or uniform() < e.p]
        degraded = False
        if procs:
            try:
                yield env.all_of(procs)
            except simpy.Interrupt:
                for p in procs:     # the calling replica was killed: so are its calls
                    if p.is_alive:
                        p.interrupt("killed")
                raise
            for p in procs:
                st, er = p.value
                if st != 200:
                    return st, er
                degraded = degraded or er == E_DEGRADED
        return (200, E_DEGRADED) if degraded else (200, 0)

    def _branch(self, e: Edge, rid: int, cid: int, who: int):
        """One call of a parallel group, in its own process."""
        try:
            return (yield from self.call(e, rid, cid, who))
        except simpy.Interrupt:
            return 0, E_RESET

    def _swallowed(self, rep: Replica, timeout: float | None, cid: int):
        """Attempt ``cid`` is lost in a partition of ``rep``: the caller hears nothing until
        its timeout (it ends the attempt) or the window's end (the connection is reset).
        While the caller still waits, the attempt counts as in progress at ``rep``, as a
        least_request balancer counts its outstanding requests."""
        env = self.env
        until = rep.partitioned_until
        waited = until if timeout is None else min(until, self.rec.c_start[cid] + timeout)
        rep.active += 1
        try:
            if waited > env.now:
                yield self._wait(waited - env.now)
        finally:
            rep.active -= 1
        if until > env.now:
            yield self._wait(until - env.now)
        return 0, E_RESET

    def _wait(self, delay: float) -> simpy.Event:
        """A timeout, or an event that never comes when the delay is infinite."""
        return self.env.event() if math.isinf(delay) else self.env.timeout(delay)

    # -- pauses ------------------------------------------------------------------------

    def _frozen(self, rep: Replica):
        """Wait while the replica is paused."""
        env = self.env
        while rep.paused_until > env.now:
            if math.isinf(rep.paused_until):
                yield env.event()   # frozen to the end of the run
            yield env.timeout(rep.paused_until - env.now)
