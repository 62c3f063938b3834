"""Continuous batching of one LLM server replica, on the real clock.

The same model as the simulator's (docs/simulation.md, LLM): at most ``max_batch`` sequences
hold a place, others wait in arrival order. A sequence admitted to a place is prefilled for
``prompt_tokens x prefill_per_token`` seconds, which emits its first token; it then joins the
decoding batch at the next step boundary. One batch loop task runs the decode steps: each
step gives every decoding sequence one token and lasts ``step.base + step.per_sequence x
batch size``. A finished sequence leaves at once and frees its place. Prefill runs beside
decoding (chunked-prefill style). ``slow`` multiplies prefill and step times (the ``slow``
fault).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from topologies.model import LLMConfig

__all__ = ["Generation", "BatchEngine"]


class Generation:
    """What one request's generation took: time to first token, time per output token."""

    __slots__ = ("output", "left", "first", "ttft", "tpot", "done")

    def __init__(self, output: int, done: asyncio.Future[None]) -> None:
        self.output = output
        self.left = output - 1
        self.first = 0.0
        self.ttft = 0.0
        self.tpot = 0.0
        self.done = done


class BatchEngine:
    """The continuous-batching scheduler of one LLM replica (a decode-step loop task)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.slow = 1.0
        self.members = 0                       # holding a place (prefill or decode)
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.running: list[Generation] = []
        self.joining: list[Generation] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def batch(self) -> int:
        """Sequences decoding now."""
        return len(self.running)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def generate(self, prompt: int, output: int) -> Generation:
        """Generate ``output`` tokens after a ``prompt``; ttft is from this call's start."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        if self.members >= self.config.max_batch:
            place = loop.create_future()
            self.waiting.append(place)
            try:
                await place
            except asyncio.CancelledError:
                if place in self.waiting:
                    self.waiting.remove(place)
                elif place.done() and not place.cancelled():
                    self._free()  # the place was handed over just before the cancel
                raise
        else:
            self.members += 1
        gen = Generation(max(1, output), loop.create_future())
        try:
            await asyncio.sleep(prompt * self.config.prefill_per_token * self.slow)
            gen.first = loop.time()
            gen.ttft = gen.first - t0
            if gen.left > 0:
                self.joining.append(gen)
                self._wake.set()
                await gen.done
                gen.tpot = (loop.time() - gen.first) / (gen.output - 1)
        finally:
            if gen in self.joining:
                self.joining.remove(gen)
            if gen in self.running:
                self.running.remove(gen)
            self._free()
        return gen

    def _free(self) -> None:
        while self.waiting:
            place = self.waiting.popleft()
            if not place.done():
                place.set_result(None)  # the place passes to the next waiter
                return
        self.members -= 1

    async def _loop(self) -> None:
        step = self.config.step
        while True:
            if not self.running and not self.joining:
                self._wake.clear()
                await self._wake.wait()
            self.running.extend(self.joining)
            self.joining.clear()
            await asyncio.sleep((step.base + step.per_sequence * len(self.running)) * self.slow)
            still = []
            for gen in self.running:
                gen.left -= 1
                if gen.left <= 0:
                    if not gen.done.done():
                        gen.done.set_result(None)
                else:
                    still.append(gen)
            self.running = still
