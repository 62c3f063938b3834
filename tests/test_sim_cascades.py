"""Failure cascades the simulator must reproduce (issue 3, point 6)."""

from __future__ import annotations

import pytest
from sim_helpers import topo

import simulator
from topologies.model import Fault, Scenario

SLOW_LLM = """
    version: 1
    name: cascade
    entry: gateway
    workload: {model: open, rate: 20, duration: 300, warmup: 30}
    services:
      gateway:
        concurrency: 20
        queue: 0
        workers: 4
        latency: {dist: constant, value: 1ms}
        calls:
          - {to: llm, p: 0.5}
      llm:
        workers: 100
        latency: {dist: constant, value: 100ms}
    scenarios:
      llm-slow:
        faults: [{type: slow, target: llm, start: 100s, duration: 100s, factor: 50}]
"""


def test_slow_llm_exhausts_gateway_concurrency_and_fails_requests_that_skip_the_llm():
    """Half of the requests call the LLM (p 0.5). Slowing it 50x (5 s per answer) makes
    those requests hold gateway slots: 10/s x 5 s = 50 > 20 slots, so the gateway rejects,
    and requests that never touch the LLM fail too (none fail without the fault)."""
    t = topo(SLOW_LLM)
    base = simulator.simulate(t, None, seed=1)
    hurt = simulator.simulate(t, "llm-slow", seed=1)
    assert base.summary["availability"] == 1.0
    calls = hurt.calls
    llm_requests = set(calls.loc[calls["callee"] == "llm", "request_id"])
    req = hurt.requests
    in_fault = req[(req["start"] > 110) & (req["start"] < 200)]
    without_llm = in_fault[~in_fault["request_id"].isin(llm_requests)]
    assert len(without_llm) > 500
    failed_share = 1 - without_llm["ok"].mean()
    assert failed_share > 0.3
    assert set(without_llm.loc[~without_llm["ok"], "error"]) == {"rejected"}
    assert hurt.summary["availability"] < 0.9


STORM = """
    version: 1
    name: storm
    entry: a
    workload: {model: open, rate: 40, duration: 200, warmup: 20}
    services:
      a:
        calls:
          - to: b
            timeout: 200ms
            retry: {attempts: 4, backoff: constant, base: 10ms, jitter: none}
      b:
        workers: 4
        latency: {dist: exponential, mean: 50ms}
    scenarios:
      degrade:
        faults: [{type: slow, target: b, start: 60s, duration: 60s, factor: 3}]
"""


@pytest.mark.slow
def test_retry_storm_amplifies_load_on_a_degraded_service_and_a_budget_contains_it():
    """b at rho 0.5 is slowed 3x (rho 1.5): timeouts trigger retries, each adding load to a
    saturated service, so attempts per call during the fault rise well above 1 (a storm);
    a 10% retry budget keeps retries within 10% of calls on that edge."""
    t = topo(STORM)
    r = simulator.simulate(t, "degrade", seed=2)
    b = r.calls[r.calls["callee"] == "b"]
    during = b[(b["start"] > 70) & (b["start"] < 120)]
    before = b[(b["start"] > 20) & (b["start"] < 60)]
    amp_during = len(during) / (during["attempt"] == 1).sum()
    amp_before = len(before) / (before["attempt"] == 1).sum()
    assert amp_before < 1.05
    assert amp_during > 2.0
    budgeted = simulator.simulate(t, "degrade", seed=2, overrides={
        "services.a.calls.0.retry.budget": 0.1})
    bb = budgeted.calls[budgeted.calls["callee"] == "b"]
    assert (bb["attempt"] > 1).sum() <= 0.1 * (bb["attempt"] == 1).sum()
    assert len(bb) < 0.6 * len(b)


BREAKER = """
    version: 1
    name: breaker
    entry: a
    workload: {{model: open, rate: 50, duration: 200, warmup: 20}}
    services:
      a:
        calls:
          - to: rec
            timeout: 1s
            {extra}
      rec: {{workers: 50, latency: {{dist: constant, value: 10ms}}}}
    scenarios:
      rec-down:
        faults: [{{type: timeout, target: rec, start: 50s, duration: 100s}}]
"""


def test_circuit_breaker_with_fallback_restores_availability():
    """The recommender hangs for 100 s. Without protection every request waits 1 s and
    fails; with a breaker and ``fallback: degrade`` the breaker opens after 20 failures and
    requests are answered at once, degraded, so availability stays near 100%."""
    plain = simulator.simulate(topo(BREAKER.format(extra="")), "rec-down", seed=3)
    guarded = simulator.simulate(topo(BREAKER.format(extra="""fallback: degrade
            circuit_breaker: {failure_rate: 0.5, min_calls: 20, window: 10s, open_for: 5s}""")),
        "rec-down", seed=3)
    assert plain.summary["availability"] < 0.6
    assert guarded.summary["availability"] == 1.0
    assert guarded.summary["degraded"] > 4000
    assert guarded.summary["services"]["rec"]["short_circuited"] > 4000
    assert guarded.summary["latency"]["p50"] < 0.05
    # open -> half-open -> open while the fault lasts: once open (by 60 s), the only calls
    # that reach rec are the half-open trials (3 each 5 s + their 1 s timeout), all failing
    rec = guarded.calls[guarded.calls["callee"] == "rec"]
    req = guarded.requests
    during = rec[(rec["start"] >= 60) & (rec["start"] < 150)]
    assert 0 < len(during) <= 3 * 90 / 5
    assert (during["error"] == "timeout").all()
    # ... and closed again after it: the first trial after 150 s passes, every request from
    # 157 s (150 + open_for + the trial's answer) calls rec for real and is answered whole
    after = rec[rec["start"] >= 157]
    late = req[req["start"] >= 157]
    assert len(late) > 2000 and late["ok"].all() and not late["degraded"].any()
    assert set(after["request_id"]) == set(late["request_id"])
    assert (after["error"] == "").all()


SPIKE = """
    version: 1
    name: spike
    entry: api
    workload:
      model: open
      profile: [{{at: 0s, rate: 20/s}}, {{at: 100s, rate: 20/s}}, {{at: 101s, rate: 80/s}},
                {{at: 300s, rate: 80/s}}]
      duration: 300s
      warmup: 0s
    services:
      api:
        replicas: {replicas}
        workers: 2
        queue: 50
        concurrency: 2
        latency: {{dist: exponential, mean: 50ms}}
        autoscale: {{metric: utilization, target: 0.6, min: {min}, max: 8, interval: 10s,
                    cold_start: 60s, cooldown: 300s}}
"""


def test_autoscaler_cold_start_lets_a_spike_breach_the_slo_where_prewarmed_capacity_does_not():
    """A spike from 20/s to 80/s (each replica serves ~40/s): scaling from 1 replica with a
    60 s cold start leaves the spike queueing and rejecting for a minute (availability
    < 99.5% SLO), while 4 pre-warmed replicas serve it (>= 99.9%)."""
    cold = simulator.simulate(topo(SPIKE.format(replicas=1, min=1)), seed=4)
    warm = simulator.simulate(topo(SPIKE.format(replicas=4, min=4)), seed=4)
    assert cold.summary["availability"] < 0.995
    assert warm.summary["availability"] >= 0.999
    ts = cold.timeseries[cold.timeseries["service"] == "api"]
    grown = ts[ts["replicas"] > 1]
    assert not grown.empty and grown["t"].min() > 100
    first_ready = ts[ts["ready_replicas"] > 1]["t"].min()
    assert first_ready - grown["t"].min() >= 59   # cold start: replicas cost before serving
    assert cold.summary["services"]["api"]["replicas_max"] > 1


def test_faults_are_recorded_with_their_actual_windows():
    """faults.csv holds each applied fault with its real window (None duration -> run end)."""
    t = topo(SLOW_LLM)
    sc = Scenario("x", faults=(Fault("errors", "llm", start=10.0, duration=None, rate=1.0),))
    r = simulator.simulate(t, sc, seed=0)
    row = r.faults.iloc[0]
    assert (row["type"], row["target"], row["start"], row["end"]) == ("errors", "llm", 10.0, 300.0)


def test_autoscaler_scales_down_only_after_the_cooldown_window():
    """Kubernetes' scale-down stabilization: 4 starting replicas on a load one replica
    handles (2/s x 50 ms) stay for the 100 s cooldown after start, then drop to min (1)
    within one interval; scaling down never happens before the window has passed."""
    text = SPIKE.format(replicas=4, min=1).replace("cooldown: 300s", "cooldown: 100s")
    text = text.replace("rate: 20/s", "rate: 2/s").replace("rate: 80/s", "rate: 2/s")
    ts = simulator.simulate(topo(text), seed=2).timeseries
    api = ts[ts["service"] == "api"].set_index("t")["replicas"]
    assert (api[api.index < 99] == 4).all()  # rows are 1 s intervals sampled at their end
    assert (api[api.index >= 115] == 1).all()
