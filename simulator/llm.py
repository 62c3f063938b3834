"""Continuous batching with chunked prefill: how an LLM server replica serves many requests.

One process per replica runs the iterations that :mod:`topologies.batching` plans (the same
scheduler the emulator drives on the real clock). In each iteration every decoding sequence
gets one token and the rest of the ``max_batched_tokens`` budget goes to prompt chunks, in
admission order; at most ``max_batch`` sequences hold a place (prefilling or decoding), the
others wait in arrival order. An iteration lasts ``step.base + step.per_sequence x decoding
sequences + prefill_per_token x prompt tokens in it``, times the service's ``slow`` factor as
it stands when the iteration starts, plus any time the replica spends paused during it.

The iteration that finishes a prompt emits that request's first token: ttft is measured from
the start of the caller's attempt (queueing for a place and for the budget included); tpot is
the mean gap between later tokens. A sequence leaves, freeing its place, at the end of the
iteration that produced its last token. Its cost is the sequence-seconds it held a place, at
the service's price per busy second; the service's busy meter counts the places held.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from topologies.batching import IterationScheduler, Sequence
from topologies.model import LLMConfig

from .recorder import Recorder
from .replica import Replica, thaw

__all__ = ["BatchEngine"]


class _Seq(Sequence):
    __slots__ = ("cid", "done")

    def __init__(self, cid: int, prompt: int, output: int, done: simpy.Event):
        super().__init__(prompt, output)
        self.cid = cid
        self.done = done


class BatchEngine:
    """The iteration loop of one LLM server replica."""

    def __init__(self, env: simpy.Environment, replica: Replica, config: LLMConfig,
                 rec: Recorder, prompt_tokens: Callable[[], int],
                 output_tokens: Callable[[], int]):
        self.env = env
        self.replica = replica
        self.config = config
        self.rec = rec
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.scheduler = IterationScheduler(config)
        self.dead = False
        self._wake: simpy.Event | None = None
        self.process = env.process(self._loop())

    @property
    def waiting(self):
        """Requests waiting for a place, in arrival order."""
        return self.scheduler.waiting

    @property
    def members(self) -> list[Sequence]:
        """Sequences holding a place (prefilling or decoding)."""
        return self.scheduler.members()

    @property
    def batch(self) -> int:
        """How many sequences hold a place now (the timeseries ``batch``)."""
        return self.scheduler.batch

    def generate(self, cid: int):
        """Generate the answer of attempt ``cid``; returns 200, or 0 if the replica died."""
        if self.dead:
            return 0
        seq = _Seq(cid, self.prompt_tokens(), self.output_tokens(), self.env.event())
        self.scheduler.add(seq)
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()
        return (yield seq.done)

    def stop(self) -> None:
        """The replica crashed: the engine stops and its sequences are lost."""
        self.dead = True
        held = self.scheduler.batch
        if held:
            self.replica.service.busy_meter.change(self.env.now, -held)
        for s in self.scheduler.drop_all():
            if not s.done.triggered:
                s.done.succeed(0)
        if self.process.is_alive:
            self.process.interrupt("killed")

    def _loop(self):
        env = self.env
        sched = self.scheduler
        svc = self.replica.service
        meter = svc.busy_meter
        try:
            while True:
                it = sched.plan(env.now)
                if it is None:
                    self._wake = env.event()
                    yield self._wake
                    self._wake = None
                    continue
                t0 = env.now
                if it.admitted:
                    meter.change(t0, len(it.admitted))
                yield env.timeout(it.duration * svc.slow)
                if self.replica.pauses:
                    yield from thaw(env, self.replica, t0)
                now = env.now
                _, finished = sched.complete(it, now)
                if finished:
                    meter.change(now, -len(finished))
                    for s in finished:
                        self._finish(s, now)
        except simpy.Interrupt:
            return

    def _finish(self, s: _Seq, now: float) -> None:
        rec = self.rec
        svc = self.replica.service
        rec.llm[s.cid] = (s.first - rec.c_start[s.cid],
                          (now - s.first) / (s.output - 1) if s.output > 1 else math.nan,
                          s.output)
        seconds = now - s.admitted
        svc.work_done += seconds
        rec.c_cost[s.cid] += seconds * svc.price_per_busy_second
        s.done.succeed(200)
