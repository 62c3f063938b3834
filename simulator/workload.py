"""The client load: open workloads (Poisson arrivals at a rate, or a piecewise-linear rate
profile sampled by thinning) and closed workloads (users who send a request, wait for the
answer, think, and send the next). No request arrives at or after ``duration``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import simpy

from topologies.errors import UsageError
from topologies.model import Workload

from .streams import Streams

__all__ = ["start_workload"]

Client = Callable[[int], Generator]


def start_workload(env: simpy.Environment, workload: Workload, streams: Streams,
                   new_request: Callable[[], int], client: Client,
                   until: float = math.inf) -> None:
    """Start the processes that send client requests until time ``until`` (none after it).

    ``new_request()`` registers a request arriving now and returns its id; ``client(rid)``
    is the generator that carries it through the topology.
    """
    if workload.model == "closed":
        users = int(workload.users or 0)
        if users <= 0:
            raise UsageError("workload.users: a closed workload needs at least one user")
        think = streams.sampler(workload.think, "think") if workload.think else (lambda: 0.0)
        for _ in range(users):
            env.process(_user(env, think, new_request, client, until))
        return
    if workload.profile:
        peak = max(p.rate for p in workload.profile)
        if peak <= 0:
            return
        env.process(_thinned(env, workload, peak, streams, new_request, client, until))
        return
    rate = float(workload.rate or 0.0)
    if rate < 0:
        raise UsageError(f"workload.rate: must not be negative, not {rate}")
    if rate > 0:
        env.process(_poisson(env, rate, streams, new_request, client, until))


def _poisson(env, rate, streams, new_request, client, until):
    """Poisson arrivals: exponential gaps of mean 1/rate."""
    gen = streams.generator("arrivals")
    buf: list[float] = []
    mean = 1.0 / rate
    process = env.process
    timeout = env.timeout
    while True:
        if not buf:
            buf = gen.exponential(mean, 4096)[::-1].tolist()
        yield timeout(buf.pop())
        if env.now >= until:
            return
        process(client(new_request()))


def _thinned(env, workload, peak, streams, new_request, client, until):
    """A time-varying Poisson process by thinning: candidates at the peak rate, each kept
    with probability rate(t) / peak (Lewis and Shedler)."""
    gen = streams.generator("arrivals")
    keep = streams.uniform("arrivals:thinning")
    mean = 1.0 / peak
    while True:
        yield env.timeout(float(gen.exponential(mean)))
        if env.now >= until:
            return
        if keep() * peak < workload.rate_at(env.now):
            env.process(client(new_request()))


def _user(env, think, new_request, client, until):
    """One user of a closed workload: think, request, wait for the answer (or the client
    timeout), repeat."""
    while True:
        t = think()
        if t > 0:
            yield env.timeout(t)
        if env.now >= until:
            return
        yield from client(new_request())
