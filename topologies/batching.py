"""The iteration scheduler of one LLM server replica, shared by the simulator and the emulator.

What it models is continuous batching with chunked prefill, as vLLM and Sarathi-Serve schedule
it. The replica works in iterations (one forward pass each). An iteration may process at most
``max_batched_tokens`` tokens:

* every decoding sequence gets one output token, which costs one token of the budget (decodes
  are served first);
* what is left of the budget goes to prompt chunks: first to the sequences whose prefill is
  under way, in admission order, then to sequences taking a free place, in arrival order;
* at most ``max_batch`` sequences hold a place (prefilling or decoding); the others wait, in
  arrival order, and take a place only in an iteration that gives them prompt tokens.

An iteration lasts ``step.base + step.per_sequence x decoding sequences + prefill_per_token x
prompt tokens in it`` (before the ``slow`` fault, which the engine applies when the iteration
starts). The iteration that finishes a sequence's prompt emits its first token (the time to
first token ends with it); a sequence of one output token is then done. Every later iteration
gives it one more token, and it leaves, freeing its place, at the end of the iteration that
produced its last one.

The scheduler keeps no clock: the engine passes the time in and sleeps each iteration's
duration on its own clock (simpy's in the simulator, the real one in the emulator)::

    it = scheduler.plan(now)                       # None: nothing to do, wait for add()
    ... sleep it.duration x slow ...
    first, finished = scheduler.complete(it, now)
"""

from __future__ import annotations

from collections import deque

from topologies.model import LLMConfig

__all__ = ["WAITING", "PREFILL", "DECODE", "DONE", "DROPPED", "Sequence", "Iteration",
           "IterationScheduler"]

# states of a Sequence
WAITING, PREFILL, DECODE, DONE, DROPPED = range(5)


class Sequence:
    """One request's generation: ``prompt`` tokens to prefill, then ``output`` tokens.

    Engines subclass it to carry their own handle (a call id, a future). Times are the
    engine's clock values: ``admitted`` when it took a place, ``first`` when its first token
    came out, ``finished`` when its last did (NaN until then).
    """

    __slots__ = ("prompt", "output", "prefilled", "generated", "state", "admitted", "first",
                 "finished")

    def __init__(self, prompt: int, output: int) -> None:
        self.prompt = max(1, int(prompt))
        self.output = max(1, int(output))
        self.prefilled = 0       # prompt tokens processed
        self.generated = 0       # output tokens produced
        self.state = WAITING
        self.admitted = float("nan")
        self.first = float("nan")
        self.finished = float("nan")


class Iteration:
    """One planned iteration: who decodes, which prompt chunks run, and for how long."""

    __slots__ = ("decode", "prefill", "admitted", "prefill_tokens", "duration")

    def __init__(self, decode: list[Sequence], prefill: list[tuple[Sequence, int]],
                 admitted: list[Sequence], prefill_tokens: int, duration: float) -> None:
        self.decode = decode                   # each gets one token
        self.prefill = prefill                 # (sequence, prompt tokens in this iteration)
        self.admitted = admitted               # took a place in this iteration
        self.prefill_tokens = prefill_tokens
        self.duration = duration               # seconds, before the slow factor

    @property
    def tokens(self) -> int:
        """Tokens this iteration processes (at most ``max_batched_tokens``)."""
        return len(self.decode) + self.prefill_tokens


class IterationScheduler:
    """The places, the waiting line and the token budget of one LLM replica (no clock)."""

    def __init__(self, config: LLMConfig) -> None:
        if config.max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, not {config.max_batch}")
        if config.max_batched_tokens < config.max_batch:
            raise ValueError(f"max_batched_tokens: must be at least max_batch "
                             f"({config.max_batch}), not {config.max_batched_tokens}")
        self.max_batch = config.max_batch
        self.budget = config.max_batched_tokens
        self.base = config.step.base
        self.per_sequence = config.step.per_sequence
        self.per_token = config.prefill_per_token
        self.waiting: deque[Sequence] = deque()
        self.prefilling: list[Sequence] = []   # holding a place, prompt not done; admission order
        self.decoding: list[Sequence] = []     # holding a place, producing tokens
        self._planned: Iteration | None = None

    # -- what is there ----------------------------------------------------------------------

    @property
    def batch(self) -> int:
        """Sequences holding a place now (prefilling or decoding)."""
        return len(self.prefilling) + len(self.decoding)

    def members(self) -> list[Sequence]:
        """The sequences holding a place."""
        return self.prefilling + self.decoding

    # -- changes from outside ----------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        """A new request: it waits for a place (it may take one at the next plan)."""
        seq.state = WAITING
        self.waiting.append(seq)

    def remove(self, seq: Sequence) -> bool:
        """Forget ``seq`` (its caller went away); True if it held a place. A planned
        iteration that includes it still runs, but gives it nothing."""
        state = seq.state
        seq.state = DROPPED
        if state == WAITING:
            self.waiting.remove(seq)
        elif state == PREFILL:
            self.prefilling.remove(seq)
        elif state == DECODE:
            self.decoding.remove(seq)
        return state in (PREFILL, DECODE)

    def drop_all(self) -> list[Sequence]:
        """The replica crashed: every sequence, waiting or holding a place, is lost.
        Returns them (holders first), so the engine can fail their requests."""
        lost = self.prefilling + self.decoding + list(self.waiting)
        for seq in lost:
            seq.state = DROPPED
        self.prefilling, self.decoding = [], []
        self.waiting.clear()
        self._planned = None
        return lost

    # -- one iteration -----------------------------------------------------------------------

    def plan(self, now: float) -> Iteration | None:
        """The next iteration, starting at ``now``; None when there is nothing to do.
        Sequences taking a place in it are stamped ``admitted = now``."""
        if self._planned is not None:
            raise RuntimeError("plan: the previous iteration was not completed")
        decode = list(self.decoding)
        left = self.budget - len(decode)
        prefill: list[tuple[Sequence, int]] = []
        tokens = 0
        for seq in self.prefilling:
            if left <= 0:
                break
            chunk = min(seq.prompt - seq.prefilled, left)
            prefill.append((seq, chunk))
            tokens += chunk
            left -= chunk
        admitted: list[Sequence] = []
        waiting = self.waiting
        while left > 0 and waiting and self.batch < self.max_batch:
            seq = waiting.popleft()
            seq.state = PREFILL
            seq.admitted = now
            self.prefilling.append(seq)
            admitted.append(seq)
            chunk = min(seq.prompt, left)
            prefill.append((seq, chunk))
            tokens += chunk
            left -= chunk
        if not decode and not prefill:
            return None
        duration = self.base + self.per_sequence * len(decode) + self.per_token * tokens
        it = Iteration(decode, prefill, admitted, tokens, duration)
        self._planned = it
        return it

    def complete(self, it: Iteration, now: float) -> tuple[list[Sequence], list[Sequence]]:
        """The iteration ``it`` ended at ``now``: returns (sequences whose first token came
        out in it, sequences done in it). Done sequences have left their places."""
        if it is not self._planned:
            raise RuntimeError("complete: not the planned iteration")
        self._planned = None
        first: list[Sequence] = []
        finished: list[Sequence] = []
        for seq in it.decode:
            if seq.state != DECODE:
                continue  # removed meanwhile
            seq.generated += 1
            if seq.generated >= seq.output:
                seq.state = DONE
                seq.finished = now
                finished.append(seq)
        started: list[Sequence] = []
        for seq, chunk in it.prefill:
            if seq.state != PREFILL:
                continue
            seq.prefilled += chunk
            if seq.prefilled >= seq.prompt:
                seq.generated = 1
                seq.first = now
                first.append(seq)
                if seq.output <= 1:
                    seq.state = DONE
                    seq.finished = now
                    finished.append(seq)
                else:
                    seq.state = DECODE
                    started.append(seq)
        if finished:
            self.decoding = [s for s in self.decoding if s.state == DECODE]
        if first:
            self.prefilling = [s for s in self.prefilling if s.state == PREFILL]
        self.decoding.extend(started)
        return first, finished
