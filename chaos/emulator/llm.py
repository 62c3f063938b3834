"""Continuous batching with chunked prefill of one LLM server replica, on the real clock.

The same model as the simulator's (docs/simulation.md, LLM), from the same scheduler,
:mod:`topologies.batching`: one loop task runs the replica's iterations. In each iteration
every decoding sequence gets one token and the rest of the ``max_batched_tokens`` budget goes
to prompt chunks, in admission order; at most ``max_batch`` sequences hold a place
(prefilling or decoding), the others wait in arrival order. An iteration sleeps ``step.base +
step.per_sequence x decoding sequences + prefill_per_token x prompt tokens in it``, times the
``slow`` factor read when the iteration starts (so a ``slow`` fault also stretches requests
already generating), as work time (:func:`.clock.work_sleep`: a pause of the process extends
it). The iteration that finishes a prompt emits the request's first token; the sequence leaves
its place at the end of the iteration that produced its last token.

A :class:`Generation` records when its first token came out, so the replica can tell the
caller how long before the answer that was, and the caller measures ttft from its own attempt
start, as the simulator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

from topologies.batching import IterationScheduler, Sequence
from topologies.model import LLMConfig

from .clock import work_sleep

__all__ = ["Generation", "BatchEngine"]


class Generation(Sequence):
    """One request's generation. After it is done: ``ttft`` (from the ``generate`` call, as
    this replica sees it), ``tpot`` (mean gap between later tokens; NaN for one token),
    ``output`` tokens, and ``first`` (the loop time of the first token)."""

    __slots__ = ("done", "started", "ttft", "tpot")

    def __init__(self, prompt: int, output: int, done: asyncio.Future[None],
                 started: float) -> None:
        super().__init__(prompt, output)
        self.done = done
        self.started = started
        self.ttft = math.nan
        self.tpot = math.nan


class BatchEngine:
    """The iteration loop of one LLM replica; ``slow()`` gives the current slow factor."""

    def __init__(self, config: LLMConfig, slow: Callable[[], float] = lambda: 1.0) -> None:
        self.config = config
        self.slow = slow
        self.scheduler = IterationScheduler(config)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def batch(self) -> int:
        """Sequences holding a place now (prefilling or decoding), as the simulator counts."""
        return self.scheduler.batch

    @property
    def waiting(self) -> int:
        """Requests waiting for a place."""
        return len(self.scheduler.waiting)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; generations still in progress are cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for gen in self.scheduler.drop_all():
            assert isinstance(gen, Generation)
            gen.done.cancel()

    async def generate(self, prompt: int, output: int) -> Generation:
        """Generate ``output`` tokens after a ``prompt``."""
        loop = asyncio.get_running_loop()
        gen = Generation(prompt, output, loop.create_future(), loop.time())
        self.scheduler.add(gen)
        self._wake.set()
        try:
            await gen.done
        except asyncio.CancelledError:
            self.scheduler.remove(gen)  # the caller went away: its place frees
            raise
        return gen

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        sched = self.scheduler
        while True:
            it = sched.plan(loop.time())
            if it is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await work_sleep(it.duration * self.slow())
            now = loop.time()
            first, finished = sched.complete(it, now)
            for gen in first:
                assert isinstance(gen, Generation)
                gen.ttft = now - gen.started
            for gen in finished:
                assert isinstance(gen, Generation)
                if gen.output > 1:
                    gen.tpot = (now - gen.first) / (gen.output - 1)
                if not gen.done.done():
                    gen.done.set_result(None)
