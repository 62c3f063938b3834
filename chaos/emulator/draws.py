"""Draws of a topology distribution (a processing time or a token count) from one seeded
numpy Generator: the emulator's counterpart of the simulator's streams, through the same
``topologies.sampling`` mapping, so a distribution means the same in both engines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from topologies.model import Distribution
from topologies.sampling import block_sampler

__all__ = ["sampler"]


def sampler(dist: Distribution, gen: np.random.Generator) -> Callable[[], float]:
    """A function returning draws of ``dist`` from ``gen``, one at a time."""
    draw = block_sampler(dist, gen)
    return lambda: float(draw(1)[0])
