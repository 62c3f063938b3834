"""Random streams: one seeded generator per purpose, so adding a feature does not shift
every other random draw (the Ciw lesson).

A stream is named by its purpose (``"arrivals"``, ``"latency:llm"``, ``"retry:gateway->llm"``)
and derived from the run's seed and that name only. Draws are taken from numpy in blocks and
handed out one at a time, which is both reproducible and fast.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np

from topologies.errors import UsageError
from topologies.model import Distribution
from topologies.sampling import block_sampler

__all__ = ["Streams", "BLOCK"]

BLOCK = 4096


class _Block:
    """Hands out numbers drawn ``BLOCK`` at a time by ``draw(n)``."""

    __slots__ = ("_draw", "_buf")

    def __init__(self, draw: Callable[[int], np.ndarray]):
        self._draw = draw
        self._buf: list[float] = []

    def __call__(self) -> float:
        buf = self._buf
        if not buf:
            buf.extend(self._draw(BLOCK)[::-1].tolist())
        return buf.pop()


class Streams:
    """The random streams of one run, all derived from ``seed``."""

    def __init__(self, seed: int):
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise UsageError(f"seed: must be a non-negative integer, not {seed!r}")
        self.seed = int(seed)

    def generator(self, purpose: str) -> np.random.Generator:
        """A numpy Generator for ``purpose``, independent of every other purpose."""
        return np.random.default_rng([self.seed, zlib.crc32(purpose.encode("utf-8"))])

    def uniform(self, purpose: str) -> Callable[[], float]:
        """A function returning uniform [0, 1) draws."""
        gen = self.generator(purpose)
        return _Block(gen.random)

    def sampler(self, dist: Distribution, purpose: str) -> Callable[[], float]:
        """A function returning draws of ``dist`` (seconds or token counts)."""
        if dist.kind == "constant" or (dist.kind == "gamma" and not dist.cv):
            value = float((dist.value if dist.kind == "constant" else dist.mean) or 0.0)
            return lambda: value  # no stream: nothing random to draw
        return _Block(block_sampler(dist, self.generator(purpose)))

    def tokens(self, dist: Distribution, purpose: str) -> Callable[[], int]:
        """A function returning whole token counts (at least 1) drawn from ``dist``."""
        draw = self.sampler(dist, purpose)
        return lambda: max(1, int(math.floor(draw() + 0.5)))
