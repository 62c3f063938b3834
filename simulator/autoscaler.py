"""Autoscaling: every ``interval`` the autoscaler of a service compares its metric with the
target and sets the replica count between ``min`` and ``max``, like a Kubernetes HPA.

``utilization`` is the busy share of the ready replicas' workers (for an LLM server, of their
batch places) over the last interval; ``queue`` is the number of waiting requests per ready
replica now. The wanted count is ``ceil(ready x metric / target)``. New replicas cost money
from their start but serve only after ``cold_start``. Scaling down follows Kubernetes' scale-down
stabilization window of ``cooldown`` seconds: the count only drops to the highest count wanted
over the last ``cooldown`` (the starting count counts as wanted at time 0), so a fresh
deployment is not shrunk before ``cooldown`` has passed and a dip does not cause flapping.
Replicas still starting are stopped first.
"""

from __future__ import annotations

import math
from collections import deque
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
    wanted_history: deque[tuple[float, int]] = deque([(env.now, len(svc.running()))])
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
        wanted_history.append((env.now, wanted))
        while len(wanted_history) > 1 and wanted_history[0][0] <= env.now - spec.cooldown:
            wanted_history.popleft()
        if wanted > len(running):
            for _ in range(wanted - len(running)):
                sim.start_replica(svc, ready_after=spec.cold_start)
            continue
        stable = max(w for _, w in wanted_history)
        if stable < len(running):
            starting = [r for r in running if not r.serving]
            order = starting[::-1] + [r for r in running if r.serving][::-1]
            for rep in order[: len(running) - stable]:
                sim.stop_replica(rep)
