"""The client load: open workloads (Poisson arrivals at a rate, or a piecewise-linear rate
profile sampled by thinning, on the schedule ``topologies.arrivals`` gives the live load
generator too) and closed workloads (users who send a request, wait for the
answer, think, and send the next). No request arrives at or after ``duration``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import simpy

from topologies.arrivals import open_arrivals, think_times
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
        for i in range(users):   # user i thinks as in the live load (topologies.arrivals)
            think = think_times(workload, streams.seed, i)
            env.process(_user(env, think, new_request, client, until))
        return
    env.process(_open(env, open_arrivals(workload, streams.seed, until), new_request, client))


def _open(env, arrivals, new_request, client):
    """Open arrivals on the schedule both engines share (``topologies.arrivals``)."""
    process = env.process
    timeout = env.timeout
    for t in arrivals:
        yield timeout(t - env.now)
        process(client(new_request()))


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
