"""The simulator against queueing theory: each test compares a seeded run with a number
worked out independently (a formula), within a stated tolerance.

Tolerances are a few standard errors of the simulated estimate at the run length used
(runs of 40k-100k requests; response-time means of busy queues converge slowly, hence the
wider bands at higher load).
"""

from __future__ import annotations

import math

import pytest
from sim_helpers import erlang_b, md1_response, mmc_response, single, topo

import simulator


def test_mm1_mean_response_time():
    """M/M/1, lambda 50/s, mu 100/s: W = 1/(mu - lambda) = 20 ms. Tolerance 4% (rho 0.5,
    ~100k requests give a relative standard error near 1%)."""
    t = single("{dist: exponential, mean: 10ms}", rate=50, duration=2000)
    s = simulator.simulate(t, seed=1).summary
    assert s["latency"]["mean"] == pytest.approx(1 / (100 - 50), rel=0.04)
    assert s["availability"] == 1.0
    assert s["services"]["s"]["utilization"] == pytest.approx(0.5, rel=0.03)


@pytest.mark.slow
def test_mmc_mean_response_time_matches_erlang_c():
    """M/M/3, lambda 45/s, mu 20/s (rho 0.75): W = C(3, 2.25)/(3 mu - lambda) + 1/mu, with
    C from Erlang C (about 84 ms). Tolerance 5%."""
    t = single("{dist: exponential, mean: 50ms}", rate=45, duration=2000, workers=3)
    s = simulator.simulate(t, seed=2).summary
    assert s["latency"]["mean"] == pytest.approx(mmc_response(45, 20, 3), rel=0.05)


@pytest.mark.slow
def test_md1_mean_response_time_matches_pollaczek_khinchine():
    """M/D/1, lambda 50/s, D 10 ms (rho 0.5): W = D + rho D / (2 (1 - rho)) = 15 ms.
    Tolerance 3%."""
    t = single("{dist: constant, value: 10ms}", rate=50, duration=2000)
    s = simulator.simulate(t, seed=3).summary
    assert s["latency"]["mean"] == pytest.approx(md1_response(50, 0.01), rel=0.03)


@pytest.mark.slow
def test_mmcc_blocking_matches_erlang_b():
    """M/M/3/3 via concurrency 3, workers 3, queue 0: lambda 40/s, mean 50 ms (a = 2), so a
    share B(3, 2) = 0.2105 is rejected with 503. Tolerance 0.01 absolute (80k requests)."""
    t = topo("""
        version: 1
        name: loss
        entry: s
        workload: {model: open, rate: 40, duration: 2000, warmup: 50}
        services:
          s: {workers: 3, concurrency: 3, queue: 0, latency: {dist: exponential, mean: 50ms}}
    """)
    r = simulator.simulate(t, seed=4)
    s = r.summary
    assert 1 - s["availability"] == pytest.approx(erlang_b(3, 2.0), abs=0.01)
    failed = r.requests[~r.requests["ok"] & (r.requests["error"] != "unfinished")]
    assert set(failed["status"]) == {503} and set(failed["error"]) == {"rejected"}


@pytest.mark.slow
def test_open_jackson_tandem_sums_station_response_times():
    """Gateway (exp 5 ms) calling a backend (exp 10 ms), lambda 40/s: the gateway's worker is
    free before its call, so this is a Jackson tandem and W = 1/(200-40) + 1/(100-40)
    = 22.9 ms. Tolerance 4%."""
    t = topo("""
        version: 1
        name: tandem
        entry: a
        workload: {model: open, rate: 40, duration: 2000, warmup: 50}
        services:
          a: {latency: {dist: exponential, mean: 5ms}, calls: [{to: b}]}
          b: {latency: {dist: exponential, mean: 10ms}}
    """)
    s = simulator.simulate(t, seed=5).summary
    assert s["latency"]["mean"] == pytest.approx(1 / 160 + 1 / 60, rel=0.04)


FLAKY = """
    version: 1
    name: flaky
    entry: a
    workload: {model: open, rate: 100, duration: 600, warmup: 10}
    services:
      a:
        calls:
          - to: b
            retry: {attempts: 3, backoff: constant, base: 0, jitter: none, on: [5xx]}
      b: {workers: 100, error_rate: 0.3, latency: {dist: constant, value: 1ms}}
"""


def test_retry_amplification_and_availability_of_a_flaky_callee():
    """A callee failing independently with q = 0.3, retried up to 3 attempts: each call makes
    1 + q + q^2 = 1.39 attempts on average and fails with q^3 = 2.7%. Tolerances: 1% on the
    amplification, 0.005 on availability (~60k requests)."""
    r = simulator.simulate(topo(FLAKY), seed=6)
    calls = r.calls[r.calls["callee"] == "b"]
    amplification = len(calls) / (calls["attempt"] == 1).sum()
    assert amplification == pytest.approx(1 + 0.3 + 0.09, rel=0.01)
    assert r.summary["availability"] == pytest.approx(1 - 0.3**3, abs=0.005)
    assert calls["attempt"].max() == 3


@pytest.mark.slow
def test_availability_of_an_exponential_callee_behind_a_timeout_with_retries():
    """Callee time exponential with mean 100 ms and no queueing (1000 workers); timeout
    100 ms so an attempt times out with p = exp(-1) = 0.368; 3 attempts: availability
    1 - p^3 = 0.950, 1 + p + p^2 = 1.50 attempts per call. Abandoned attempts keep the
    callee busy: their work is counted as wasted. Tolerances 0.01 and 2%."""
    t = topo("""
        version: 1
        name: timeouts
        entry: a
        workload: {model: open, rate: 50, duration: 800, warmup: 10}
        services:
          a:
            calls:
              - to: b
                timeout: 100ms
                retry: {attempts: 3, backoff: constant, base: 0, jitter: none}
          b:
            workers: 1000
            latency: {dist: exponential, mean: 100ms}
            cost: {per_replica_hour: 1.0}
    """)
    r = simulator.simulate(t, seed=7)
    p = math.exp(-1)
    assert r.summary["availability"] == pytest.approx(1 - p**3, abs=0.01)
    b = r.calls[r.calls["callee"] == "b"]
    assert len(b) / (b["attempt"] == 1).sum() == pytest.approx(1 + p + p * p, rel=0.02)
    timed_out = b[b["error"] == "timeout"]
    assert set(timed_out["status"]) == {504}
    assert (timed_out["end"] - timed_out["start"]).round(9).eq(0.1).all()
    assert r.summary["cost"]["wasted"] > 0


def test_cost_of_fixed_replicas():
    """3 replicas at 0.50 USD/h and 1 at 2.00 USD/h for the measured hour (warmup 100 s of
    3700 s): (3 x 0.5 + 2.0) x 1 h = 3.50 USD exactly; per 1000 successful requests =
    3.5 / (ok / 1000)."""
    t = topo("""
        version: 1
        name: cost
        entry: a
        workload: {model: open, rate: 2, duration: 3700, warmup: 100}
        services:
          a: {replicas: 3, cost: {per_replica_hour: 0.5}, calls: [{to: b}]}
          b: {replicas: 1, cost: {per_replica_hour: 2.0}}
    """)
    s = simulator.simulate(t, seed=8).summary
    assert s["cost"]["total"] == pytest.approx(3.5, rel=1e-9)
    assert s["cost"]["by_service"] == pytest.approx({"a": 1.5, "b": 2.0})
    assert s["cost"]["per_1k"] == pytest.approx(3.5 / (s["ok"] / 1000))
    assert s["cost"]["wasted"] == 0


LLM = """
    version: 1
    name: llm
    entry: llm
    workload: {{model: closed, users: {users}, duration: 60, warmup: 0}}
    services:
      llm:
        kind: llm
        llm:
          max_batch: {max_batch}
          max_batched_tokens: {budget}
          prompt_tokens: {{dist: constant, value: 1000}}
          output_tokens: {{dist: constant, value: 11}}
          prefill_per_token: 0.2ms
          step: {{base: 20ms, per_sequence: 1ms}}
"""


def test_llm_single_sequence_ttft_and_tpot():
    """One user: the prompt fits one iteration of 20 ms + 1000 x 0.2 ms, so ttft = 220 ms;
    each of the 10 later tokens is one iteration of 20 + 1 x 1 ms, so tpot = 21 ms and
    latency = 0.22 + 10 x 0.021 = 0.43 s (exact)."""
    r = simulator.simulate(topo(LLM.format(users=1, max_batch=8, budget=2048)), seed=0)
    c = r.calls.dropna(subset=["ttft"])
    assert c["ttft"].to_numpy() == pytest.approx(0.22)
    assert c["tpot"].to_numpy() == pytest.approx(0.021)
    assert (c["output_tokens"] == 11).all()
    assert r.summary["latency"]["mean"] == pytest.approx(0.43)


def test_llm_continuous_batching_step_time_grows_with_batch_and_caps_at_max_batch():
    """Four users arriving together, with a budget that holds their 4000 prompt tokens: one
    prefill iteration of 20 + 4000 x 0.2 = 820 ms, then they decode as one batch with
    tpot = 20 + 4 x 1 = 24 ms. With max_batch 2, the first two are prefilled together
    (20 + 2000 x 0.2 = 420 ms) and decode in steps of 22 ms; the other two wait that whole
    generation (0.42 + 10 x 0.022 = 0.64 s) for a place, then their own 420 ms prefill."""
    r = simulator.simulate(topo(LLM.format(users=4, max_batch=8, budget=4096)), seed=0)
    assert r.calls["ttft"].dropna().to_numpy() == pytest.approx(0.82)
    assert r.calls["tpot"].dropna().to_numpy() == pytest.approx(0.024)
    r2 = simulator.simulate(topo(LLM.format(users=4, max_batch=2, budget=4096)), seed=0)
    first4 = r2.calls.sort_values("start").head(4)
    ttft = sorted(first4["ttft"])
    assert ttft[:2] == pytest.approx([0.42, 0.42])
    assert ttft[2:] == pytest.approx([0.64 + 0.42] * 2)
