"""The calls a replica makes: one edge's policies around real HTTP attempts.

An edge (``caller->callee``) as the caller keeps it: the callee replicas' addresses and a
balancer over the replicas (round_robin, random, or least_request over this replica's own
in-flight attempts per callee replica) that skips the replicas its
:class:`~topologies.policies.OutlierDetector` has ejected (``outlier_detection``; every
attempt's outcome is recorded for its replica). Addresses are replicas unless a live run's
membership relay says several lead to one (:meth:`Edge.set_owners`). The call's timeout
(the caller abandons the attempt; the callee keeps working), retries with
:class:`~topologies.policies.Backoff` and :class:`~topologies.policies.RetryBudget`, a
:class:`~topologies.policies.Breaker` (open: the call fails fast with ``circuit_open`` and no
attempt is made) and the ``degrade`` fallback — the same rules, in the same order, as the
simulator's (docs/simulation.md, Calls).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topologies.model import Call
from topologies.outcomes import retry_class
from topologies.policies import (
    Backoff,
    Breaker,
    OutlierDetector,
    RetryBudget,
    outlier_ok,
    retry_wait,
)

from .client import HttpClient, Refused, Reset
from .log import CsvLog

__all__ = ["Outcome", "Edge", "REQUEST_HEADER", "ERROR_HEADER",
           "DEGRADED_HEADER"]

REQUEST_HEADER = "X-Faultmesh-Request"
ERROR_HEADER = "X-Faultmesh-Error"
DEGRADED_HEADER = "X-Faultmesh-Degraded"


@dataclass
class Outcome:
    """How a call (or one attempt) ended: status (0: no answer), error word, degraded."""

    status: int
    error: str = ""
    degraded: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


class Edge:
    """One dependency edge of this replica: addresses, balancer, policies, attempt log."""

    def __init__(self, caller: str, call: Call, addresses: list[str], balancer: str,
                 client: HttpClient, log: CsvLog, epoch: float,
                 uniform: Callable[[], float], jitter: Callable[[], float]) -> None:
        if not addresses:
            raise ValueError(f"upstreams: no address for callee {call.to!r}")
        self.caller = caller
        self.call = call
        self.addresses = list(addresses)
        self.balancer = balancer
        self.client = client
        self.log = log
        self.epoch = epoch
        self.uniform = uniform
        self.in_flight = [0] * len(addresses)
        self._next = 0
        retry = call.retry
        self.retry = retry if retry is not None and retry.attempts > 1 else None
        self.budget = RetryBudget(self.retry.budget if self.retry else None,
                                  self.retry.budget_window if self.retry else 10.0)
        self.jitter = jitter
        self.breaker = Breaker(call.circuit_breaker) if call.circuit_breaker else None
        # keyed by the callee address index; this caller replica's own view
        self.outlier = OutlierDetector(call.outlier_detection) \
            if call.outlier_detection is not None else None
        self.short_circuited = 0
        # the replica behind each address, when a live run's membership relay says (several
        # addresses, its balancer slots, may lead to one replica); None: one each
        self.owners: list[int] | None = None
        self._owners_seq = -1
        self._slots_of: dict[int, list[int]] = {}  # replica -> its addresses, by owners
        self._slot_next: dict[int, int] = {}

    def set_owners(self, owners: list[int], seq: int) -> bool:
        """The replica behind each address (one entry per address), as of update ``seq``;
        an older update than the last one taken is ignored. False when ``owners`` does not
        fit the addresses."""
        if len(owners) != len(self.addresses):
            return False
        if seq > self._owners_seq:
            slots_of: dict[int, list[int]] = {}
            for i, h in enumerate(owners):
                slots_of.setdefault(h, []).append(i)
            self._owners_seq, self.owners = seq, list(owners)
            self._slots_of = dict(sorted(slots_of.items()))
        return True

    def host(self, i: int) -> int:
        """The replica behind address ``i`` (``i`` itself without owners)."""
        owners = self.owners
        return owners[i] if owners is not None else i

    def pick(self) -> int:
        """The index of the callee address the next attempt goes to: the balancer's choice
        among the replicas outlier detection has not ejected (all, when it ejected all),
        then, when several addresses lead to that replica, the one of them with the fewest
        attempts in flight (ties in turn). Balancing and ejection are per replica, as in
        the simulator, however many relay slots a replica holds."""
        if self.owners is None:
            hosts = list(range(len(self.addresses)))
            load: Any = self.in_flight
        else:
            hosts = list(self._slots_of)
            load = {h: sum(self.in_flight[i] for i in slots)
                    for h, slots in self._slots_of.items()}
        if self.outlier is not None:
            hosts = self.outlier.keep(hosts, _same, time.monotonic())
        host = self._choose(hosts, load)
        if self.owners is None:
            return host
        slots = self._slots_of[host]
        turn = self._slot_next.get(host, 0)
        self._slot_next[host] = turn + 1
        best = slots[turn % len(slots)]
        for k in range(1, len(slots)):
            i = slots[(turn + k) % len(slots)]
            if self.in_flight[i] < self.in_flight[best]:
                best = i
        return best

    def _choose(self, cands: list[int], load: Any) -> int:
        """The balancer's choice among ``cands`` (``load[c]``: attempts in flight)."""
        m = len(cands)
        if self.balancer == "random":
            return cands[min(m - 1, int(self.uniform() * m))]
        start = self._next % m
        self._next += 1
        if self.balancer == "least_request":  # ties broken round robin
            best = cands[start]
            for k in range(1, m):
                c = cands[(start + k) % m]
                if load[c] < load[best]:
                    best = c
            return best
        return cands[start]

    async def run(self, request_id: str, index: int, body: bytes) -> Outcome:
        """The call: attempts under breaker, timeout, retries, budget; then the fallback."""
        breaker, retry, budget = self.breaker, self.retry, self.budget
        backoff = Backoff(retry, self.jitter) if retry is not None else None  # this call's own
        n = 1
        while True:
            if breaker is not None and not breaker.allow(time.monotonic()):
                self.short_circuited += 1
                out = Outcome(0, "circuit_open")
                break
            if n == 1:
                budget.record_call(time.monotonic())
            out = await self.attempt(request_id, index, n, body)
            if breaker is not None:
                breaker.record(time.monotonic(), out.ok)
            if out.ok:
                return out
            wait = retry_wait(retry, backoff, budget, n, retry_class(out.status, out.error),
                              time.monotonic())
            if wait is None:
                break
            if wait > 0:
                await asyncio.sleep(wait)
            n += 1
        if self.call.fallback == "degrade":
            return Outcome(200, "", degraded=True)
        return out

    async def attempt(self, request_id: str, index: int, n: int, body: bytes) -> Outcome:
        """One attempt to one callee replica, logged as a calls.csv row."""
        i = self.pick()
        host = self.host(i)  # the replica it went to, for outlier detection
        start = time.time() - self.epoch
        self.in_flight[i] += 1
        headers: dict[str, str] = {}
        try:
            coro = self.client.request(self.addresses[i], "POST", "/",
                                       {REQUEST_HEADER: request_id}, body)
            if self.call.timeout is None:
                answer = await coro
            else:
                answer = await asyncio.wait_for(coro, self.call.timeout)
            headers = answer.headers
            status = answer.status
            error = "" if status == 200 else headers.get(ERROR_HEADER.lower(), "error")
            out = Outcome(status, error, headers.get(DEGRADED_HEADER.lower()) == "1")
        except TimeoutError:
            out = Outcome(504, "timeout")
        except Refused:
            out = Outcome(0, "refused")
        except Reset:
            out = Outcome(0, "reset")
        finally:
            self.in_flight[i] -= 1
        if self.outlier is not None:
            self.outlier.record(host, time.monotonic(), outlier_ok(out.status))
        end = time.time() - self.epoch
        # ttft from this attempt's start: the callee says how long before its answer the
        # first token came out (older callees send only their own ttft)
        age = _num(headers.get("x-faultmesh-first-token-age"))
        ttft = max(0.0, end - start - age) if age is not None \
            else _num(headers.get("x-faultmesh-ttft"))
        self.log.add((request_id, self.caller, self.call.to, host, n, start, end, out.status,
                      int(out.ok), out.error, ttft,
                      _num(headers.get("x-faultmesh-tpot")),
                      headers.get("x-faultmesh-output-tokens", ""), index))
        return out


def _same(i: int) -> int:
    return i


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
