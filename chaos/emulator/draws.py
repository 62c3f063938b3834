"""Draws of a topology distribution (a processing time or a token count) from one seeded
numpy Generator: the emulator's counterpart of the simulator's streams, same parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from topologies.model import Distribution

__all__ = ["sampler"]


def sampler(dist: Distribution, gen: np.random.Generator) -> Callable[[], float]:
    """A function returning draws of ``dist`` from ``gen``."""
    k = dist.kind
    if k == "constant":
        value = float(dist.value or 0.0)
        return lambda: value
    if k == "exponential":
        mean = float(dist.mean or 0.0)
        return lambda: float(gen.exponential(mean))
    if k == "lognormal":
        mu, sigma = dist.lognormal_params()
        return lambda: float(gen.lognormal(mu, sigma))
    if k == "gamma":
        mean, cv = float(dist.mean or 0.0), float(dist.cv or 0.0)
        if cv == 0:
            return lambda: mean
        shape = 1.0 / cv**2
        return lambda: float(gen.gamma(shape, mean / shape))
    if k == "uniform":
        low, high = float(dist.low or 0.0), float(dist.high or 0.0)
        return lambda: float(gen.uniform(low, high))
    if k == "empirical":
        samples = np.asarray(dist.samples or (), dtype=float)
        if samples.size == 0:
            raise ValueError(f"empirical distribution without samples ({dist.file or 'inline'})")
        return lambda: float(gen.choice(samples))
    raise ValueError(f"unknown distribution kind {k!r}")
