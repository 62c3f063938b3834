"""A rollout on an autoscaled service: the autoscaler scales the count, the rollout owns its
surge replicas (as a Kubernetes HPA sets a Deployment's replicas and leaves maxSurge pods to
the rolling update). Before this was modelled, the autoscaler stopped the surge replicas as
"too many" while they started, so each surge step removed capacity instead of adding it."""

from __future__ import annotations

from sim_helpers import topo

import simulator
from topologies.model import Fault, Scenario

# b: 4 replicas, lightly loaded, autoscaled with min 4 so the wanted count is exactly 4
# throughout (the scale-down window also holds it at the starting count).
AUTOSCALED = """
    version: 1
    name: rollout-autoscaled
    entry: a
    workload: {model: open, rate: 20, duration: 200, warmup: 10}
    services:
      a:
        latency: {dist: exponential, mean: 1ms}
        calls: [{to: b, timeout: 5s}]
      b:
        replicas: 4
        workers: 2
        latency: {dist: exponential, mean: 20ms}
        cost: {per_replica_hour: 1.0}
        autoscale: {metric: utilization, target: 0.7, min: 4, max: 8, interval: 5s,
                    cold_start: 10s, cooldown: 60s}
"""


def _b(result):
    ts = result.timeseries
    return ts[ts["service"] == "b"]


def test_surge_rollout_keeps_its_extra_replicas_while_the_autoscaler_runs():
    """batch 2, startup 30 s from t = 20: 6 replicas exist during each step, 4 serve
    throughout, and the rollout ends after two steps (t = 80)."""
    r = simulator.simulate(topo(AUTOSCALED),
                           Scenario("s", faults=(Fault("rollout", "b", start=20, batch=2,
                                                       startup=30.0),)), seed=0)
    b = _b(r)
    during = b[(b.t > 21) & (b.t < 79)]
    assert during["replicas"].eq(6).all(), during["replicas"].value_counts().to_dict()
    assert b[b.t >= 20]["ready_replicas"].min() == 4
    assert b[b.t >= 81]["replicas"].eq(4).all()
    assert r.faults.iloc[0]["end"] == 80.0
    assert r.summary["availability"] == 1.0


def test_no_surge_rollout_on_an_autoscaled_service_keeps_the_count():
    """surge: false stops the old replicas first: the count stays 4, 2 of them serving."""
    r = simulator.simulate(topo(AUTOSCALED),
                           Scenario("s", faults=(Fault("rollout", "b", start=20, batch=2,
                                                       startup=30.0, surge=False),)), seed=0)
    b = _b(r)
    during = b[(b.t > 21) & (b.t < 79)]
    assert during["replicas"].eq(4).all()
    assert during["ready_replicas"].eq(2).all()
    assert b[b.t >= 81]["ready_replicas"].eq(4).all()
