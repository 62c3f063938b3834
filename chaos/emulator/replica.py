"""One replica of one service, as a real HTTP server: what a request goes through.

A request (any method and path outside ``/_faultmesh/``) meets, in the simulator's order
(docs/simulation.md): an injected ``errors`` fault (answered at once, ``injected``); the
token-bucket ``rate_limit`` (429 ``rate_limited``; the service's rate split evenly over its
replicas, since each replica process keeps its own bucket); a concurrency slot (waiting in a
queue of ``queue`` places: 503 ``rejected`` when full, 503 ``queue_timeout`` after
``queue_timeout``); a worker for its own processing time (``latency`` x the ``slow`` factor,
slept); for an LLM its generation (:mod:`.llm`); ``error_rate`` (500 ``error``); then its
calls in order while holding the slot (parallel groups together, ``p`` deciding whether a call
is made). A failed call fails the request with the callee's status (502 when no answer came)
and the root-cause error word; ``fallback: degrade`` answers 200 marked degraded.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections import deque
from collections.abc import Callable

import numpy as np

from chaos.proxy.http import HttpServer, Request, Response
from topologies.model import Call, Distribution, ParallelGroup, Step, Topology
from topologies.policies import TokenBucket

from . import admin
from .calls import DEGRADED_HEADER, ERROR_HEADER, REQUEST_HEADER, Edge, Outcome
from .client import HttpClient
from .draws import sampler
from .llm import BatchEngine
from .log import CALL_COLUMNS, TS_COLUMNS, CsvLog
from .stats import Stats

__all__ = ["ReplicaServer"]


class ReplicaServer:
    """One replica process's server: ``start()``, serve, ``stop()`` (flushes the logs)."""

    def __init__(self, topology: Topology, service: str, replica: int, host: str, port: int,
                 upstreams: dict[str, list[str]], log_path: str, epoch: float,
                 seed: int) -> None:
        if service not in topology.services:
            raise ValueError(f"service: {service!r} is not a service of {topology.name!r}")
        if replica < 0:
            raise ValueError(f"replica: must be >= 0, not {replica!r}")
        self.topology = topology
        self.spec = spec = topology.services[service]
        self.replica = replica
        self.host, self.port = host, port
        self.epoch = epoch
        self.seed = seed
        self.faults = admin.Faults()
        self.stats = Stats(spec.workers)
        self.calls_log = CsvLog(log_path, CALL_COLUMNS)
        self.ts_log = CsvLog(log_path + ".ts.csv", TS_COLUMNS, flush_every=1.0)
        self.client = HttpClient()
        self._latency = self._sampler("latency", spec.latency)
        self._uniform = self._uniforms("uniform")
        self._fault_uniform = self._uniforms("fault")
        self.bucket = TokenBucket(spec.rate_limit / max(1, spec.replicas)) \
            if spec.rate_limit else None
        self.workers = asyncio.Semaphore(spec.workers)
        self.slots_free = spec.concurrency
        self.slot_waiters: deque[asyncio.Future[None]] = deque()
        self.engine = BatchEngine(spec.llm, lambda: self.faults.slow) \
            if spec.llm is not None else None
        if spec.llm is not None:
            self._prompt = self._tokens("prompt", spec.llm.prompt_tokens)
            self._output = self._tokens("output", spec.llm.output_tokens)
        missing = [c.to for c in spec.edges() if c.to not in upstreams]
        if missing:
            raise ValueError(f"upstreams: no address for callee(s) {', '.join(missing)}")
        self.edges: list[Edge] = []  # one per call site, parallel groups flattened
        for index, call in enumerate(spec.edges()):
            callee = topology.services[call.to]
            self.edges.append(Edge(
                service, call, upstreams[call.to], callee.balancer, self.client,
                self.calls_log, epoch, self._uniforms(f"balancer:{index}:{call.to}"),
                self._uniforms(f"retry:{index}:{call.to}")))
        self._steps = self._plan(spec.calls)
        self._ids = itertools.count()
        self._http = HttpServer(self.handle)
        self._ts_task: asyncio.Task[None] | None = None

    # -- randomness: one seeded generator per (seed, service, replica, purpose) -----------
    def _generator(self, purpose: str) -> np.random.Generator:
        key = f"{self.spec.name}/{self.replica}/{purpose}".encode()
        return np.random.default_rng([self.seed, zlib.crc32(key)])

    def _uniforms(self, purpose: str) -> Callable[[], float]:
        gen = self._generator(purpose)
        return lambda: float(gen.random())

    def _sampler(self, purpose: str, dist: Distribution) -> Callable[[], float]:
        return sampler(dist, self._generator(purpose))

    def _tokens(self, purpose: str, dist: Distribution) -> Callable[[], int]:
        draw = self._sampler(purpose, dist)
        return lambda: max(1, int(draw() + 0.5))

    def _plan(self, steps: tuple[Step, ...]) -> list[list[tuple[int, Call]]]:
        """The call steps, each a list of (flattened call index, call)."""
        plan, index = [], 0
        for step in steps:
            group = step.parallel if isinstance(step, ParallelGroup) else (step,)
            plan.append([(index + k, c) for k, c in enumerate(group)])
            index += len(group)
        return plan

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> int:
        """Listen and start the loops; returns the real port."""
        _, self.port = await self._http.start(self.host, self.port)
        self.calls_log.start()
        self.ts_log.start()
        if self.engine is not None:
            self.engine.start()
        self._ts_task = asyncio.get_running_loop().create_task(self._sample())
        return self.port

    async def stop(self) -> None:
        """Stop accepting, end connections, flush the logs."""
        await self._http.close()
        if self._ts_task is not None:
            self._ts_task.cancel()
        if self.engine is not None:
            await self.engine.stop()
        await self.client.close()
        await self.calls_log.stop()
        await self.ts_log.stop()

    async def _sample(self) -> None:
        t = int(time.time() - self.epoch)
        while True:
            await asyncio.sleep(max(0.0, self.epoch + t + 1 - time.time()))
            row = self.stats.interval(float(t), self.spec.name, self.queued,
                                      self.engine.batch if self.engine else None)
            self.ts_log.add(row)
            t += 1

    @property
    def queued(self) -> int:
        return len(self.slot_waiters) + self.stats.waiting_workers

    # -- a request ------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        if request.path.startswith(admin.PREFIX):
            return admin.route(self, request)
        rid = request.headers.get(REQUEST_HEADER.lower()) or \
            f"{self.spec.name}.{self.replica}.{next(self._ids)}"
        self.stats.arrived += 1
        out, llm = await self._serve(rid)
        self.stats.answered(out.ok)
        headers = {REQUEST_HEADER: rid}
        if not out.ok:
            headers[ERROR_HEADER] = out.error
        elif out.degraded:
            headers[DEGRADED_HEADER] = "1"
        size = self.spec.response_size
        if llm is not None:
            headers["X-Faultmesh-Ttft"] = f"{llm[0]:.6f}"
            # the caller measures ttft from its attempt start: answer time minus this age
            age = asyncio.get_running_loop().time() - llm[3]
            headers["X-Faultmesh-First-Token-Age"] = f"{age:.6f}"
            headers["X-Faultmesh-Tpot"] = f"{llm[1]:.6f}"
            headers["X-Faultmesh-Output-Tokens"] = str(llm[2])
            if size is None:
                size = 4.0 * llm[2]
        body = b"x" * int(size if size is not None else 1024) if out.ok else b""
        return Response(out.status if out.status else 502, body,
                        "application/octet-stream", headers)

    async def _serve(self, rid: str
                     ) -> tuple[Outcome, tuple[float, float, int, float] | None]:
        fault = self.faults.errors
        if fault is not None and self._fault_uniform() < fault[0]:
            return Outcome(fault[1], "injected"), None
        if self.bucket is not None and not self.bucket.take(time.monotonic()):
            return Outcome(429, "rate_limited"), None
        refused = await self._take_slot()
        if refused is not None:
            return refused, None
        self.stats.in_flight += 1
        try:
            d = self._latency() * self.faults.slow
            if d > 0:
                await self._work(d)
            llm = None
            if self.engine is not None:
                gen = await self.engine.generate(self._prompt(), self._output())
                llm = (gen.ttft, gen.tpot, gen.output, gen.first)
            if self.spec.error_rate and self._uniform() < self.spec.error_rate:
                return Outcome(500, "error"), llm
            return await self._calls(rid), llm
        finally:
            self.stats.in_flight -= 1
            self._give_slot()

    async def _work(self, d: float) -> None:
        stats = self.stats
        stats.waiting_workers += 1
        try:
            await self.workers.acquire()
        finally:
            stats.waiting_workers -= 1
        stats.set_busy(+1)
        try:
            await asyncio.sleep(d)
        finally:
            stats.set_busy(-1)
            self.workers.release()

    async def _take_slot(self) -> Outcome | None:
        spec = self.spec
        if self.slots_free is None:
            return None
        if self.slots_free > 0 and not self.slot_waiters:
            self.slots_free -= 1
            return None
        if spec.queue is not None and len(self.slot_waiters) >= spec.queue:
            return Outcome(503, "rejected")
        place = asyncio.get_running_loop().create_future()
        self.slot_waiters.append(place)
        try:
            await asyncio.wait_for(asyncio.shield(place), spec.queue_timeout)
        except TimeoutError:
            if place.done():  # handed over at the last moment: pass it on
                self._give_slot()
            else:
                place.cancel()
                self.slot_waiters.remove(place)
            return Outcome(503, "queue_timeout")
        return None

    def _give_slot(self) -> None:
        if self.slots_free is None:
            return
        while self.slot_waiters:
            place = self.slot_waiters.popleft()
            if not place.done():
                place.set_result(None)
                return
        self.slots_free += 1

    async def _calls(self, rid: str) -> Outcome:
        degraded = False
        for step in self._steps:
            made = [(i, c) for i, c in step if c.p >= 1.0 or self._uniform() < c.p]
            if not made:
                continue
            outs = await asyncio.gather(*(self.edges[i].run(rid, i, b"x" * int(c.request_size))
                                          for i, c in made))
            for out in outs:
                if not out.ok:
                    return out
                degraded = degraded or out.degraded
        return Outcome(200, "", degraded)
