"""Autoscaling: every ``interval`` the autoscaler of a service compares its metric with the
target and sets the replica count between ``min`` and ``max``, like a Kubernetes HPA.

``utilization`` is the busy share of the ready replicas' workers (for an LLM server, of their
batch places) over the last interval; ``queue`` is the number of waiting requests per ready
replica now. The wanted count is ``ceil(ready x metric / target)``. New replicas cost money
from their start but serve only after ``cold_start``; scaling down waits until ``cooldown``
has passed since the last change, and stops replicas that are still starting first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from topologies.model import Autoscale

if TYPE_CHECKING:
    from .engine import Simulation
    from .replica import ServiceRuntime

__all__ = ["autoscaler"]


def autoscaler(sim: Simulation, svc: ServiceRuntime, spec: Autoscale):
    """The autoscaler process of one service."""
    env = sim.env
    last_work = svc.work_done
    last_change = -math.inf
    while True:
        yield env.timeout(spec.interval)
        ready = len(svc.serving)
        running = svc.running()
        if spec.metric == "queue":
            metric = sum(r.queued() for r in svc.serving) / max(1, ready)
        else:
            metric = (svc.work_done - last_work) / (svc.capacity * max(1, ready) * spec.interval)
        last_work = svc.work_done
        if ready == 0:
            wanted = len(running)
        else:
            wanted = math.ceil(ready * metric / spec.target - 1e-9)
        wanted = min(spec.max, max(spec.min, wanted))
        if wanted > len(running):
            for _ in range(wanted - len(running)):
                sim.start_replica(svc, ready_after=spec.cold_start)
            last_change = env.now
        elif wanted < len(running) and env.now - last_change >= spec.cooldown:
            starting = [r for r in running if not r.serving]
            order = starting[::-1] + [r for r in running if r.serving][::-1]
            for rep in order[: len(running) - wanted]:
                sim.stop_replica(rep)
            last_change = env.now
