"""Autoscaling: the simulator's clock and replicas around the shared decision rule
(:class:`topologies.scaling.ScalingRule`, the same rule the live engine runs).

Every ``interval`` the autoscaler of a service reads the service's meters — busy
unit-seconds (:attr:`ServiceRuntime.busy_meter`: workers doing their own work, or LLM
sequences holding a batch place) and ready replica-seconds
(:attr:`ServiceRuntime.ready_meter`) — whose differences over the interval give its
utilization, or the requests waiting on the serving replicas for the ``queue`` metric. New
replicas cost money from their start but serve only after ``cold_start``; replicas are
stopped gracefully (no new requests, those in flight finish), the starting ones first. The
extra replicas of a surge rollout are the rollout's: the autoscaler neither counts nor
stops them (an HPA scales the Deployment's replicas, not its surge pods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from topologies.model import Autoscale
from topologies.scaling import ScalingRule, stop_order

if TYPE_CHECKING:
    from .engine import Simulation
    from .replica import ServiceRuntime

__all__ = ["autoscaler"]


def autoscaler(sim: Simulation, svc: ServiceRuntime, spec: Autoscale):
    """The autoscaler process of one service."""
    env = sim.env
    now = env.now
    rule = ScalingRule(spec, svc.capacity, now, len(svc.running()),
                       svc.busy_meter.total(now), svc.ready_meter.total(now))
    while True:
        yield env.timeout(spec.interval)
        now = env.now
        running = [r for r in svc.running() if r not in svc.surge]
        target = rule.decide(now, ready=len(svc.serving), running=len(running),
                             busy_total=svc.busy_meter.total(now),
                             ready_total=svc.ready_meter.total(now),
                             queued=sum(r.queued() for r in svc.serving))
        for _ in range(target - len(running)):
            sim.start_replica(svc, ready_after=spec.cold_start)
        for rep in stop_order(running, lambda r: r.serving)[: max(0, len(running) - target)]:
            sim.stop_replica(rep)
