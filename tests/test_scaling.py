"""The autoscaler's decision rule both engines share (topologies.scaling), and the simulator
running it.

The figures are worked out by hand: utilization is busy unit-seconds over the capacity of
the replica-seconds ready in the same interval (both integrated), never past work divided
by the replicas that happen to be ready at the decision.
"""

from __future__ import annotations

import pytest
from sim_helpers import topo

import simulator
from topologies.metering import BusyMeter
from topologies.model import Autoscale
from topologies.scaling import ScalingRule, queue_per_replica, stop_order, utilization

SPEC = Autoscale(metric="utilization", target=0.7, min=1, max=8, interval=10.0,
                 cold_start=0.0, cooldown=30.0)


def test_utilization_is_busy_time_over_ready_replica_time_of_the_interval():
    assert utilization(10.0, 1, 10.0) == 1.0
    assert utilization(15.0, 2, 20.0) == pytest.approx(0.375)
    assert utilization(3.0, 4, 0.0) == 0.0          # nothing was ready: no utilization
    assert queue_per_replica(12, 3) == 4.0 and queue_per_replica(5, 0) == 0.0
    with pytest.raises(ValueError, match="capacity"):
        utilization(1.0, 0, 1.0)


def test_replicas_that_became_ready_at_the_end_do_not_dilute_a_saturated_interval():
    """One replica (one worker) busy for the whole 10 s interval; two more became ready at
    its very end. Integrated: 10 busy s / (1 x 10 ready s) = 1.0 -> ceil(3 x 1 / 0.7) = 5.
    The old rule (past work / replicas ready now) read 10 / (3 x 10) = 0.33 and asked for
    ceil(3 x 0.33 / 0.7) = 2, shrinking a saturated service."""
    busy, ready = BusyMeter(0.0, 1), BusyMeter(0.0, 1)
    rule = ScalingRule(SPEC, 1, 0.0, 3)
    ready.set(10.0, 3)
    target = rule.decide(10.0, ready=3, running=3, busy_total=busy.total(10.0),
                         ready_total=ready.total(10.0))
    assert rule.metric == pytest.approx(1.0)
    assert target == 5


def test_only_the_interval_since_the_last_decision_counts():
    """Totals are running integrals: each decision takes the difference since the last."""
    rule = ScalingRule(SPEC, 2, 0.0, 1)
    assert rule.decide(10.0, ready=1, running=1, busy_total=20.0, ready_total=10.0) == 2
    assert rule.metric == pytest.approx(1.0)           # 20 / (2 x 10); ceil(1 / 0.7) = 2
    # next interval: 2 replicas ready throughout, 8 busy unit-seconds of 40 possible
    assert rule.decide(20.0, ready=2, running=2, busy_total=28.0, ready_total=30.0) == 2
    assert rule.metric == pytest.approx(0.2)           # wanted 1, held by the cooldown


def test_scale_down_waits_for_the_cooldown_window_and_stays_within_min_max():
    rule = ScalingRule(SPEC, 1, 0.0, 4)
    totals = {"busy_total": 0.0, "ready_total": 0.0}
    decisions = []
    for k in range(1, 6):
        totals["ready_total"] += 40.0                  # four replicas ready, idle
        decisions.append(rule.decide(10.0 * k, ready=4, running=4, **totals))
    # the starting count (4 at t=0) is wanted until t=30 leaves the 30 s window
    assert decisions == [4, 4, 1, 1, 1]
    big = ScalingRule(SPEC, 1, 0.0, 1)
    assert big.decide(10.0, ready=1, running=1, busy_total=100.0, ready_total=10.0) == 8


def test_no_ready_replica_keeps_the_count_and_queue_metric_is_per_ready_replica():
    rule = ScalingRule(SPEC, 1, 0.0, 2)
    assert rule.decide(10.0, ready=0, running=2) == 2
    q = ScalingRule(Autoscale(metric="queue", target=5.0, min=1, max=10, interval=10.0,
                              cooldown=0.0), 1, 0.0, 2)
    assert q.decide(10.0, ready=2, running=2, queued=30) == 6    # 15 per replica / 5 x 2
    assert q.metric == 15.0


def test_starting_replicas_are_stopped_first_newest_first():
    reps = [("a", True), ("b", True), ("c", False), ("d", False)]
    order = stop_order(reps, lambda r: r[1])
    assert [r[0] for r in order] == ["d", "c", "b", "a"]


def test_simulated_autoscaler_sees_long_work_while_it_runs_not_when_it_ends():
    """Requests of 20 s each on one worker: the worker is busy from the first arrival on.
    Integrated busy time reads ~1.0 at the first decision (t=5) and the service grows at
    once; crediting work at completion read 0 until the first request finished (t > 20)."""
    t = topo("""
        version: 1
        name: long-work
        entry: s
        workload: {model: open, rate: 2/s, duration: 30s, warmup: 0s}
        services:
          s:
            workers: 1
            latency: {dist: constant, value: 20s}
            autoscale: {metric: utilization, target: 0.5, min: 1, max: 4, interval: 5s,
                        cold_start: 0s, cooldown: 60s}
    """)
    ts = simulator.simulate(t, seed=3).timeseries
    s = ts[ts["service"] == "s"].set_index("t")["replicas"]
    assert s[s.index < 4].max() == 1
    assert s[(s.index >= 5) & (s.index < 10)].min() >= 2
