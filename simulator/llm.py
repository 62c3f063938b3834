"""Continuous batching: how an LLM server replica generates tokens for many requests.

A replica holds at most ``max_batch`` sequences (one per request being generated); others
wait in arrival order and join as soon as a place frees. A joining sequence is prefilled
for ``prompt_tokens x prefill_per_token`` seconds, which emits its first token (time to first
token, ttft, is measured from the start of the call attempt). Every later token is one decode
step of the replica: at each step, every decoding sequence gets one token and the step takes
``step.base + step.per_sequence x batch size`` seconds, the batch size being the number of
sequences decoding in that step. A prefilled sequence joins the decoding batch at the next
step boundary; finished sequences leave at once and free their place. Prefill runs beside
decoding (as with chunked prefill) rather than stalling it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import simpy

from topologies.model import LLMConfig

from .recorder import Recorder
from .replica import Replica, thaw

__all__ = ["BatchEngine"]


class _Sequence:
    __slots__ = ("cid", "prompt", "output", "left", "admitted", "first", "done")

    def __init__(self, cid: int, prompt: int, output: int, done: simpy.Event):
        self.cid = cid
        self.prompt = prompt
        self.output = output
        self.left = output
        self.admitted = 0.0
        self.first = math.nan
        self.done = done


class BatchEngine:
    """The continuous-batching scheduler of one LLM server replica."""

    def __init__(self, env: simpy.Environment, replica: Replica, config: LLMConfig,
                 rec: Recorder, prompt_tokens: Callable[[], int],
                 output_tokens: Callable[[], int]):
        self.env = env
        self.replica = replica
        self.config = config
        self.rec = rec
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.waiting: deque[_Sequence] = deque()
        self.members: list[_Sequence] = []     # holding a batch place (prefill or decode)
        self.running: list[_Sequence] = []     # decoding
        self.joining: list[_Sequence] = []     # prefilled, joining at the next step
        self.dead = False
        self._wake: simpy.Event | None = None
        self.process = env.process(self._loop())

    def generate(self, cid: int):
        """Generate the answer of attempt ``cid``; returns 200, or 0 if the replica died."""
        seq = _Sequence(cid, self.prompt_tokens(), self.output_tokens(), self.env.event())
        if len(self.members) < self.config.max_batch:
            self._admit(seq)
        else:
            self.waiting.append(seq)
        return (yield seq.done)

    def stop(self) -> None:
        """The replica crashed: the engine stops and its sequences are lost."""
        self.dead = True
        for s in list(self.waiting) + self.members:
            if not s.done.triggered:
                s.done.succeed(0)
        self.waiting.clear()
        self.members, self.running, self.joining = [], [], []
        if self.process.is_alive:
            self.process.interrupt("killed")

    def _admit(self, seq: _Sequence) -> None:
        seq.admitted = self.env.now
        self.members.append(seq)
        self.env.process(self._prefill(seq))

    def _prefill(self, seq: _Sequence):
        env = self.env
        t0 = env.now
        yield env.timeout(seq.prompt * self.config.prefill_per_token * self.replica.service.slow)
        yield from self._thaw(t0)
        if self.dead:
            return
        seq.first = env.now
        seq.left = seq.output - 1
        if seq.left <= 0:
            self._finish(seq, env.now)
            return
        self.joining.append(seq)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _loop(self):
        env = self.env
        step = self.config.step
        rep = self.replica
        svc = rep.service
        try:
            while True:
                if self.joining:
                    self.running.extend(self.joining)
                    self.joining = []
                if not self.running:
                    self._wake = env.event()
                    yield self._wake
                    self._wake = None
                    continue
                t0 = env.now
                batch = len(self.running)
                yield env.timeout((step.base + step.per_sequence * batch) * svc.slow)
                yield from self._thaw(t0)
                now = env.now
                still = []
                for s in self.running:
                    s.left -= 1
                    if s.left <= 0:
                        self._finish(s, now)
                    else:
                        still.append(s)
                self.running = still
        except simpy.Interrupt:
            return

    def _thaw(self, t0: float):
        """Work that ran across a pause of the replica ends later by the frozen time."""
        if self.replica.pauses:
            yield from thaw(self.env, self.replica, t0)

    def _finish(self, s: _Sequence, now: float) -> None:
        rec = self.rec
        svc = self.replica.service
        ttft = s.first - rec.c_start[s.cid]
        tpot = (now - s.first) / (s.output - 1) if s.output > 1 else math.nan
        rec.llm[s.cid] = (ttft, tpot, s.output)
        seconds = now - s.admitted
        svc.work_done += seconds
        rec.c_cost[s.cid] += seconds * svc.price_per_busy_second
        self.members.remove(s)
        s.done.succeed(200)
        if self.waiting and len(self.members) < self.config.max_batch:
            self._admit(self.waiting.popleft())
