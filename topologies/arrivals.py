"""When requests arrive: one schedule per seed, the same in both engines.

The simulator and the live load generator draw the arrival times of an open workload from
this one function, so a simulated run and a live run with the same seed offer exactly the
same requests at the same moments; what differs between them is behaviour, never the luck
of the draw (with a few hundred requests, Poisson noise alone moves availability by several
points).

A constant ``rate`` is a Poisson process: exponential gaps of mean 1/rate. A ``profile`` is
a time-varying Poisson process by thinning (Lewis and Shedler): candidates at the peak rate,
each kept with probability rate(t) / peak. A closed workload's user ``i`` draws its think
times from its own stream (:func:`think_times`), so user ``i`` thinks alike in both engines.
The numbers come from numpy generators seeded with (seed, purpose), drawn in blocks.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import numpy as np

from .model import Workload
from .sampling import block_sampler

__all__ = ["open_arrivals", "think_times", "BLOCK"]

BLOCK = 4096


def _generator(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode("utf-8"))])


def _blocks(draw) -> Iterator[float]:
    while True:
        yield from draw(BLOCK).tolist()


def open_arrivals(workload: Workload, seed: int, until: float) -> Iterator[float]:
    """The arrival times (seconds from the start, increasing) of an open workload before
    ``until``."""
    if workload.model != "open":
        raise ValueError(f"workload: arrivals are scheduled for an open workload, not "
                         f"{workload.model!r}")
    gen = _generator(seed, "arrivals")
    t = 0.0
    if workload.profile:
        peak = max(p.rate for p in workload.profile)
        if peak <= 0:
            return
        mean = 1.0 / peak
        keep = _blocks(_generator(seed, "arrivals:thinning").random)
        rate_at = workload.rate_at
        while True:
            t += float(gen.exponential(mean))
            if t >= until:
                return
            if next(keep) * peak < rate_at(t):
                yield t
    rate = float(workload.rate or 0.0)
    if rate <= 0:
        return
    for gap in _blocks(lambda n: gen.exponential(1.0 / rate, n)):
        t += gap
        if t >= until:
            return
        yield t


def think_times(workload: Workload, seed: int, user: int) -> Callable[[], float]:
    """The think times of closed-workload user ``user``: a function giving the next one."""
    if workload.think is None:
        return lambda: 0.0
    draws = _blocks(block_sampler(workload.think, _generator(seed, f"think:{user}")))
    return lambda: next(draws)
