"""What a distribution of the model draws, for engines that draw with numpy.

``block_sampler(dist, gen)`` maps a :class:`~topologies.model.Distribution` onto its numpy
draw, ``n`` values at a time; the simulator and the live emulator both sample through it,
so a distribution means the same in both engines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import UsageError
from .model import Distribution

__all__ = ["block_sampler"]


def block_sampler(dist: Distribution, gen: np.random.Generator
                  ) -> Callable[[int], np.ndarray]:
    """A function ``draw(n)`` returning ``n`` draws of ``dist`` from ``gen``."""
    k = dist.kind
    if k == "constant":
        value = float(dist.value or 0.0)
        return lambda n: np.full(n, value)
    if k == "exponential":
        mean = float(dist.mean or 0.0)
        return lambda n: gen.exponential(mean, n)
    if k == "lognormal":
        mu, sigma = dist.lognormal_params()
        return lambda n: gen.lognormal(mu, sigma, n)
    if k == "gamma":
        mean, cv = float(dist.mean or 0.0), float(dist.cv or 0.0)
        if cv == 0:
            return lambda n: np.full(n, mean)
        shape = 1.0 / cv**2
        return lambda n: gen.gamma(shape, mean / shape, n)
    if k == "uniform":
        low, high = float(dist.low or 0.0), float(dist.high or 0.0)
        return lambda n: gen.uniform(low, high, n)
    if k == "empirical":
        samples = np.asarray(dist.samples or (), dtype=float)
        if samples.size == 0:
            raise UsageError(f"empirical distribution without samples ({dist.file or 'inline'})")
        return lambda n: gen.choice(samples, n)
    raise UsageError(f"unknown distribution kind {k!r}")
