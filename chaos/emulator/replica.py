"""One replica of one service, as a real HTTP server: what a request goes through.

A request (any method and path outside ``/_faultmesh/``, but ``GET /metrics``: the
Prometheus page of :mod:`.metrics`) meets, in the simulator's order
(docs/simulation.md): the token-bucket ``rate_limit`` (429 ``rate_limited``; the service's
rate split evenly over its replicas, since each replica process keeps its own bucket); an
injected ``errors`` fault (answered at once, ``injected``); a concurrency slot; a worker for
its own processing time (``latency`` x the ``slow`` factor / the ``cpu`` fraction, slept as
work time: a pause of the process extends it, :mod:`.clock`). ``queue`` and ``queue_timeout``
bound the wait for the first of these limited resources: the slot when ``concurrency`` is set,
else the worker (503 ``rejected`` when ``queue`` requests already wait, 503
``queue_timeout`` after ``queue_timeout``). Then for an LLM its generation (:mod:`.llm`);
``error_rate`` (500 ``error``); then its calls in order while holding the slot (parallel
groups together, ``p`` deciding whether a call is made). A failed call fails the request
with the callee's status (502 when no answer came) and the root-cause error word;
``fallback: degrade`` answers 200 marked degraded.

With a ``memory: {base, per_request}`` spec the replica really holds that memory
(:class:`HeldMemory`), so a container memory limit below it gets the process OOM-killed as
the simulator's ``memory`` fault kills the replica.
"""

from __future__ import annotations

import asyncio
import itertools
import mmap
import time
import zlib
from collections import deque
from collections.abc import Callable

import numpy as np

from chaos.proxy.http import HttpServer, Request, Response
from topologies.model import Call, Distribution, Memory, ParallelGroup, Step, Topology
from topologies.policies import TokenBucket

from . import admin
from .calls import DEGRADED_HEADER, ERROR_HEADER, REQUEST_HEADER, Edge, Outcome
from .client import HttpClient
from .clock import clock, work_sleep
from .draws import sampler
from .llm import BatchEngine
from .log import CALL_COLUMNS, TS_COLUMNS, CsvLog
from .metrics import ReplicaMetrics, call_outcome
from .stats import Stats

__all__ = ["ReplicaServer", "HeldMemory", "touched"]

LLM_POLL = 0.01
"""Seconds between looks at an LLM's batch places, for the busy meter."""


class ReplicaServer:
    """One replica process's server: ``start()``, serve, ``stop()`` (flushes the logs)."""

    def __init__(self, topology: Topology, service: str, replica: int, host: str, port: int,
                 upstreams: dict[str, list[str]], log_path: str, epoch: float,
                 seed: int, hold_memory: bool = False) -> None:
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
        # real memory only when asked (a memory fault under a container limit is coming): a
        # model of 6 GiB per replica must not take 6 GiB of the machine on every live run
        self.memory = HeldMemory(spec.memory, hold=hold_memory)
        # busy units as the simulator counts them: workers, or an LLM's batch places
        self.stats = Stats(spec.workers,
                           spec.llm.max_batch if spec.llm is not None else spec.workers)
        self.metrics = ReplicaMetrics(self)  # GET /metrics
        self.calls_log = CsvLog(log_path, CALL_COLUMNS)
        self.ts_log = CsvLog(log_path + ".ts.csv", TS_COLUMNS, flush_every=1.0)
        self.client = HttpClient()
        self._latency = self._sampler("latency", spec.latency)
        self._uniform = self._uniforms("uniform")
        self._fault_uniform = self._uniforms("fault")
        self.bucket = TokenBucket(spec.rate_limit / max(1, spec.replicas)) \
            if spec.rate_limit else None
        # the first limited resource a request meets carries queue / queue_timeout
        self.slots = _Pool(spec.concurrency, spec.queue, spec.queue_timeout) \
            if spec.concurrency is not None else None
        self.workers = _Pool(spec.workers, *((spec.queue, spec.queue_timeout)
                                             if spec.concurrency is None else (None, None)))
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
        self.memory.start()  # base memory held before it serves (a limit below it kills it)
        _, self.port = await self._http.start(self.host, self.port)
        self.calls_log.start()
        self.ts_log.start()
        if self.engine is not None:
            self.engine.start()
        self._ts_task = asyncio.get_running_loop().create_task(self._sample())
        clock()  # the freeze detector runs from the start (a pause may come any time)
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
        self.memory.close()

    async def _sample(self) -> None:
        t = int(time.time() - self.epoch)
        engine = self.engine
        while True:
            if engine is None:
                await asyncio.sleep(max(0.0, self.epoch + t + 1 - time.time()))
            else:  # batch places change inside the engine: integrate them every LLM_POLL
                while (left := self.epoch + t + 1 - time.time()) > 0:
                    self.stats.set_llm(engine.batch)
                    await asyncio.sleep(min(left, LLM_POLL))
                self.stats.set_llm(engine.batch)
            row = self.stats.interval(float(t), self.spec.name, self.queued,
                                      self.engine.batch if self.engine else None)
            self.ts_log.add(row)
            t += 1

    @property
    def queued(self) -> int:
        """Requests waiting now for a slot, a worker or an LLM batch place."""
        n = self.workers.waiting + (self.slots.waiting if self.slots is not None else 0)
        return n + (self.engine.waiting if self.engine is not None else 0)

    # -- a request ------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        if request.path.startswith(admin.PREFIX):
            return admin.route(self, request)
        if request.path == "/metrics" and request.method == "GET":
            page, content_type = self.metrics.expose()
            return Response(200, page, content_type)
        began = time.perf_counter()
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
        status = out.status if out.status else 502
        self.metrics.answered(status, time.perf_counter() - began)
        return Response(status, body, "application/octet-stream", headers)

    async def _serve(self, rid: str
                     ) -> tuple[Outcome, tuple[float, float, int, float] | None]:
        if self.bucket is not None and not self.bucket.take(time.monotonic()):
            return Outcome(429, "rate_limited"), None
        # in progress from here to the answer, as the simulator's ``active``: its rate limit
        # is the service's, before a replica is picked, so a limited request never counts
        block = self.memory.take()
        try:
            return await self._admitted(rid)
        finally:
            self.memory.give(block)

    async def _admitted(self, rid: str
                        ) -> tuple[Outcome, tuple[float, float, int, float] | None]:
        fault = self.faults.errors
        if fault is not None and self._fault_uniform() < fault[0]:
            return Outcome(fault[1], "injected"), None
        if self.slots is not None:
            refused = await self.slots.take()
            if refused is not None:
                return refused, None
        self.stats.in_flight += 1
        try:
            d = self._latency() * self.faults.own_slow  # drawn as the work is asked for
            if d > 0:
                refused = await self._work(d)
                if refused is not None:
                    return refused, None
            llm = None
            if self.engine is not None:
                gen = await self.engine.generate(self._prompt(), self._output())
                llm = (gen.ttft, gen.tpot, gen.output, gen.first)
            if self.spec.error_rate and self._uniform() < self.spec.error_rate:
                return Outcome(500, "error"), llm
            return await self._calls(rid), llm
        finally:
            self.stats.in_flight -= 1
            if self.slots is not None:
                self.slots.give()

    async def _work(self, d: float) -> Outcome | None:
        """Own processing for ``d`` seconds of work time on a worker (None), or the 503 of
        a worker queue that is full or waited on too long (without ``concurrency``)."""
        stats = self.stats
        stats.waiting_workers += 1
        try:
            refused = await self.workers.take()
        finally:
            stats.waiting_workers -= 1
        if refused is not None:
            return refused
        stats.set_busy(+1)
        try:
            await work_sleep(d)
        finally:
            stats.set_busy(-1)
            self.workers.give()
        return None

    async def _calls(self, rid: str) -> Outcome:
        degraded = False
        for step in self._steps:
            made = [(i, c) for i, c in step if c.p >= 1.0 or self._uniform() < c.p]
            if not made:
                continue
            outs = await asyncio.gather(*(self.edges[i].run(rid, i, b"x" * int(c.request_size))
                                          for i, c in made))
            for (_, c), out in zip(made, outs, strict=True):
                self.metrics.call(c.to, call_outcome(out.ok, out.degraded, out.error))
            for out in outs:
                if not out.ok:
                    return out
                degraded = degraded or out.degraded
        return Outcome(200, "", degraded)


class _Pool:
    """``capacity`` units taken in FIFO order; ``queue`` bounds how many may wait (None:
    unlimited; a full queue answers 503 ``rejected``) and ``timeout`` how long (503
    ``queue_timeout``). A unit freed goes straight to the longest waiter."""

    def __init__(self, capacity: int, queue: int | None, timeout: float | None) -> None:
        self.free = capacity
        self.queue = queue
        self.timeout = timeout
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self.waiters)

    async def take(self) -> Outcome | None:
        """Take a unit (None), or the refusal."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return None
        if self.queue is not None and len(self.waiters) >= self.queue:
            return Outcome(503, "rejected")
        place = asyncio.get_running_loop().create_future()
        self.waiters.append(place)
        try:
            await asyncio.wait_for(asyncio.shield(place), self.timeout)
        except TimeoutError:
            if place.done():  # handed over at the last moment: pass it on
                self.give()
            else:
                place.cancel()
                self.waiters.remove(place)
            return Outcome(503, "queue_timeout")
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.give()
            elif place in self.waiters:
                place.cancel()
                self.waiters.remove(place)
            raise
        return None

    def give(self) -> None:
        """Free a unit: to the first waiter still waiting, else back to the pool."""
        while self.waiters:
            place = self.waiters.popleft()
            if not place.done():
                place.set_result(None)
                return
        self.free += 1


PAGE = mmap.PAGESIZE
# anonymous private memory, unmapped (back to the kernel) when closed; MAP_POPULATE faults
# every page in with one system call, much cheaper than one page fault per page
_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)


def touched(size: int) -> mmap.mmap | None:
    """``size`` bytes of fresh memory with every page written, so all of it is resident (counts
    in RSS and in a cgroup's memory); None for 0 bytes. Close it to give the memory back."""
    if size <= 0:
        return None
    block = mmap.mmap(-1, size, flags=_MAP_FLAGS)
    # one byte per page, written even when MAP_POPULATE did it: populate failures are silent
    # (under a memory limit the write is what meets the OOM killer), and it is a few µs
    block[::PAGE] = b"\x01" * ((size + PAGE - 1) // PAGE)
    return block


class HeldMemory:
    """The memory one replica really holds, as the simulator models it with
    ``Memory.held(requests in progress)``: ``base`` bytes from :meth:`start` to :meth:`close`
    and ``per_request`` bytes for each request in progress (:meth:`take` at its arrival,
    :meth:`give` at its answer). ``held`` is the model's figure (None without a spec).

    A request's memory is mapped and written on the replica's loop before the request goes
    on, so the process holds exactly the model's figure whenever a request runs. That costs
    the kernel's page zeroing, about 0.15-0.4 ms per MiB (docs/emulator.md); an allocator
    thread was measured to cost the request path more (it contends for the CPU and the GIL)
    and let the real memory lag the model."""

    def __init__(self, memory: Memory | None, hold: bool = True) -> None:
        self.memory = memory
        self.hold = hold  # False: the figure is counted, no memory is taken
        self.base = int(memory.base) if memory is not None else 0
        self.per_request = int(memory.per_request) if memory is not None else 0
        self.in_progress = 0
        self._base: mmap.mmap | None = None

    @property
    def held(self) -> float | None:
        """Bytes held by the model now: ``base + per_request x in_progress``."""
        return None if self.memory is None else self.memory.held(self.in_progress)

    def start(self) -> None:
        """Allocate and write the base memory."""
        if self._base is None and self.hold:
            self._base = touched(self.base)

    def take(self) -> mmap.mmap | None:
        """A request arrives: count it and hold its memory (the block to give back)."""
        # first: should it fail, nothing is counted
        block = touched(self.per_request) if self.hold else None
        self.in_progress += 1
        return block

    def give(self, block: mmap.mmap | None) -> None:
        """The request is answered (or gone): free its memory."""
        self.in_progress -= 1
        if block is not None:
            block.close()

    def close(self) -> None:
        """Free the base memory (requests still in progress free theirs as they end)."""
        base, self._base = self._base, None
        if base is not None:
            base.close()
