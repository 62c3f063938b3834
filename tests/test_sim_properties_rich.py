"""Invariants on random topologies that use every feature at once: parallel groups,
breakers, fallbacks, rate limits, balancers, LLM batching, autoscaling and every fault type.
Whatever the mix, the run completes, every request is counted exactly once, times are
ordered, degraded answers are successes, and every attempt belongs to a known request.
Hypothesis draws too few examples to meet all 14 fault types, so each type also runs
deterministically on a fixed topology (parametrized over FAULT_TYPES)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import topo

import simulator
from topologies.model import FAULT_TYPES, NETWORK_FAULTS

EXAMPLES = int(os.environ.get("FM_EXAMPLES", "10"))


def _call(draw, j: int) -> str:
    parts = [f"to: s{j}", f"p: {draw(st.sampled_from([1.0, 0.7]))}"]
    if draw(st.booleans()):
        parts.append(f"timeout: {draw(st.sampled_from(['30ms', '200ms', '2s']))}")
    if draw(st.booleans()):
        attempts = draw(st.integers(1, 3))
        backoff = draw(st.sampled_from(["constant", "linear", "exponential"]))
        jitter = draw(st.sampled_from(["none", "full", "equal", "decorrelated"]))
        budget = draw(st.sampled_from(["null", "0.2"]))
        parts.append(f"retry: {{attempts: {attempts}, backoff: {backoff}, jitter: {jitter}, "
                     f"base: 5ms, budget: {budget}}}")
    if draw(st.booleans()):
        parts.append("circuit_breaker: {failure_rate: 0.5, min_calls: 5, window: 5s, "
                     "open_for: 2s, half_open_calls: 2}")
    if draw(st.booleans()):
        parts.append("fallback: degrade")
    return "{" + ", ".join(parts) + "}"


#: Each fault type's parameters in the generated scenarios (none for down, reset_peer).
EXTRA = {"latency": "latency: 100ms, jitter: 20ms", "bandwidth": "rate: 2KB/s",
         "timeout": "timeout: 50ms", "errors": "rate: 50%, status: 503",
         "slow": "factor: 4", "kill": "replicas: 1", "pause": "replicas: 1",
         "partition": "replicas: 1", "rollout": "batch: 1, startup: 2s",
         "loss": "probability: 20%", "cpu": "fraction: 25%",
         # 64Mi + 1Mi per request in progress: the first request in progress crosses it
         "memory": "limit: 64.5Mi"}


def _fault_text(kind: str, target: str) -> str:
    """A fault of ``kind`` on ``target`` from 8 s (for 6 s, but kill and rollout: instants)."""
    extra = EXTRA.get(kind, "")
    window = "" if kind in ("kill", "rollout") else ", duration: 6s"
    return f"{{type: {kind}, target: {target}, start: 8s{window}{', ' + extra if extra else ''}}}"


def _fault(draw, n: int, entry_callees: list[int]) -> str:
    kind = draw(st.sampled_from(FAULT_TYPES))
    callee = draw(st.integers(1, n - 1))
    target = f"s{callee}"
    if callee in entry_callees and kind in NETWORK_FAULTS and draw(st.booleans()):
        target = f"s0->{target}"
    return _fault_text(kind, target)


@st.composite
def rich_topologies(draw):
    n = draw(st.integers(2, 4))
    lines = []
    entry_callees: list[int] = []
    for i in range(n):
        later = [j for j in range(i + 1, n) if draw(st.booleans())] or ([i + 1] if i == 0 else [])
        if i == 0:
            entry_callees = later
        steps = []
        if len(later) >= 2 and draw(st.booleans()):
            steps.append("{parallel: [" + ", ".join(_call(draw, j) for j in later) + "]}")
        else:
            steps.extend(_call(draw, j) for j in later)
        llm = i > 0 and draw(st.booleans())
        fields = [f"replicas: {draw(st.integers(1, 3))}", f"workers: {draw(st.integers(1, 3))}",
                  f"balancer: {draw(st.sampled_from(['round_robin', 'random', 'least_request']))}",
                  f"error_rate: {draw(st.sampled_from([0.0, 0.1]))}",
                  "latency: {dist: exponential, mean: 10ms}", "restart: 3s",
                  "cost: {per_replica_hour: 1.0}", f"calls: [{', '.join(steps)}]",
                  "memory: {base: 64Mi, per_request: 1Mi}"]
        if draw(st.booleans()):
            fields += ["concurrency: 4", "queue: 3", "queue_timeout: 1s"]
        if draw(st.booleans()):
            fields.append("rate_limit: 30/s")
        if llm:
            fields += ["kind: llm", "llm: {max_batch: 4, prompt_tokens: 50, output_tokens: "
                       "{dist: exponential, mean: 8}, prefill_per_token: 0.1ms, "
                       "step: {base: 5ms, per_sequence: 1ms}}"]
        if draw(st.booleans()):
            fields.append("autoscale: {min: 1, max: 4, interval: 2s, cold_start: 3s, "
                          "cooldown: 4s, target: 0.5}")
        lines.append(f"  s{i}: {{{', '.join(fields)}}}")
    faults = [_fault(draw, n, entry_callees) for _ in range(draw(st.integers(0, 2)))]
    return topo("version: 1\nname: rich\nentry: s0\n"
                f"workload: {{rate: {draw(st.integers(5, 40))}, duration: 25, warmup: 3}}\n"
                "services:\n" + "\n".join(lines) + "\n"
                f"scenarios:\n  x:\n    faults: [{', '.join(faults)}]\n")


def _books_are_straight(r) -> None:
    """Every request counted once, times ordered, degraded answers are successes, every
    attempt belongs to a known request, costs and replica counts in range."""
    req, calls, s = r.requests, r.calls, r.summary
    assert (req["request_id"] == np.arange(len(req))).all()
    client = calls[calls["caller"] == "client"]
    assert client["request_id"].is_unique and set(client["request_id"]) == set(req["request_id"])
    assert calls["request_id"].isin(req["request_id"]).all()
    done = calls.dropna(subset=["end"])
    assert (done["end"] >= done["start"]).all() and (calls["start"] >= 0).all()
    finished = req.dropna(subset=["end"])
    assert (finished["end"] >= finished["start"]).all()
    assert (req.loc[req["degraded"], "ok"]).all()
    assert s["ok"] <= s["requests"] and 0.0 <= s["availability"] <= 1.0
    assert s["cost"]["total"] >= 0 and 0 <= s["cost"]["wasted"] <= s["cost"]["total"] + 1e-9
    ts = r.timeseries
    assert (ts["replicas"] >= 0).all() and (ts["ready_replicas"] <= ts["replicas"]).all()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(rich_topologies(), st.integers(0, 10_000))
def test_any_mix_of_features_keeps_the_books_straight(t, seed):
    _books_are_straight(simulator.simulate(t, "x", seed=seed))


#: A fixed topology with most features at once; s1 (3 replicas behind a timeout, retries, a
#: breaker and a fallback, autoscaled) takes the fault.
EVERY = """\
version: 1
name: every-fault
entry: s0
workload: {rate: 20, duration: 25, warmup: 3}
services:
  s0:
    replicas: 2
    workers: 4
    latency: {dist: exponential, mean: 5ms}
    calls:
      - {to: s1, timeout: 500ms, retry: {attempts: 2, base: 5ms}, fallback: degrade,
         circuit_breaker: {failure_rate: 0.5, min_calls: 5, window: 5s, open_for: 2s}}
      - {parallel: [{to: s2, timeout: 1s}, {to: s3, p: 0.5}]}
  s1: {replicas: 3, workers: 2, balancer: least_request, restart: 3s,
       latency: {dist: exponential, mean: 20ms}, memory: {base: 64Mi, per_request: 1Mi},
       autoscale: {min: 3, max: 5, interval: 2s, cold_start: 2s, cooldown: 4s, target: 0.6}}
  s2: {kind: llm, replicas: 2, llm: {max_batch: 4, prompt_tokens: 50, output_tokens:
       {dist: exponential, mean: 8}, prefill_per_token: 0.1ms,
       step: {base: 5ms, per_sequence: 1ms}}}
  s3: {kind: cache, rate_limit: 30/s}
scenarios:
  x:
    faults: [FAULT]
"""
#: What each fault type does to s1's calls in its window [8 s, 14 s): some fail, or they
#: take longer; a rollout takes replicas out of service one by one.
FAILS = {"down", "timeout", "reset_peer", "errors", "kill", "memory"}
SLOWS = {"latency", "bandwidth", "slow", "pause", "partition", "loss", "cpu"}
ONE_BY_ONE = {"rollout"}
CASES = [(kind, target) for kind in FAULT_TYPES
         for target in (["s1", "s0->s1"] if kind in NETWORK_FAULTS else ["s1"])]


def test_the_cases_cover_every_fault_type():
    assert {kind for kind, _ in CASES} == set(FAULT_TYPES) == FAILS | SLOWS | ONE_BY_ONE
    assert len(FAULT_TYPES) == 14


@pytest.mark.parametrize("kind, target", CASES, ids=[f"{k}@{t}" for k, t in CASES])
def test_every_fault_type_is_applied_and_keeps_the_books_straight(kind, target):
    """Each fault type on a fixed topology, deterministically (hypothesis above draws the
    mixes): the books stay straight, faults.csv records the fault, and it changes s1's calls
    against the same seed without it."""
    t = topo(EVERY.replace("FAULT", _fault_text(kind, target)))
    r = simulator.simulate(t, "x", seed=3)
    base = simulator.simulate(t, None, seed=3)
    _books_are_straight(r)
    applied = r.faults.iloc[0]
    assert (applied["type"], applied["target"], applied["start"]) == (kind, target, 8.0)
    # a memory fault adds a row per OOM kill it caused (in its window); no other type adds any
    ooms = r.faults.iloc[1:]
    assert len(ooms) == 0 if kind != "memory" else len(ooms) >= 1 and \
        ooms["start"].between(8.0, 14.0).all() and ooms["parameters"].str.contains(
            "oom_kill").all()

    def window(res):
        c = res.calls[res.calls["callee"] == "s1"]
        return c[(c["start"] >= 8) & (c["start"] < 14)]

    hit, calm = window(r), window(base)
    assert calm["ok"].all()
    if kind in FAILS:
        assert not hit["ok"].all()
    elif kind in SLOWS:
        took = (hit["end"] - hit["start"]).mean()
        assert took > 1.2 * (calm["end"] - calm["start"]).mean()
    else:
        ts = r.timeseries[(r.timeseries["service"] == "s1") & (r.timeseries["t"] >= 8)]
        assert (ts["ready_replicas"] < ts["replicas"]).any()
