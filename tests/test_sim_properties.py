"""Properties of the engine on random small topologies (hypothesis, few examples)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import topo

import simulator
from topologies.model import Fault, Scenario
from topologies.policies import BUDGET_FLOOR


@st.composite
def small_topologies(draw):
    n = draw(st.integers(2, 4))
    lines = []
    for i in range(n):
        calls = []
        for j in range(i + 1, n):
            if draw(st.booleans()):
                attempts = draw(st.integers(1, 4))
                budget = draw(st.sampled_from(["null", "0.1", "0.5"]))
                timeout = draw(st.sampled_from(["null", "50ms", "500ms"]))
                p = draw(st.sampled_from([1.0, 0.5]))
                calls.append(f"{{to: s{j}, p: {p}, timeout: {timeout}, retry: {{attempts: "
                             f"{attempts}, base: 5ms, budget: {budget}}}}}")
        err = draw(st.sampled_from([0.0, 0.2]))
        conc = draw(st.sampled_from(["null", "2"]))
        lines.append(f"  s{i}: {{workers: {draw(st.integers(1, 3))}, concurrency: {conc}, "
                     f"queue: 5, error_rate: {err}, latency: {{dist: exponential, mean: 20ms}}, "
                     f"calls: [{', '.join(calls)}]}}")
    rate = draw(st.integers(5, 60))
    text = (f"version: 1\nname: prop\nentry: s0\nworkload: {{model: open, rate: {rate}, "
            f"duration: 30, warmup: 5}}\nservices:\n" + "\n".join(lines) + "\n")
    kill = draw(st.booleans())
    faults = (Fault("kill", f"s{n - 1}", start=10.0),) if kill else ()
    return topo(text), Scenario("p", faults=faults)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_topologies(), st.integers(0, 1000))
def test_every_request_counted_once_no_negative_times_retries_within_limits(case, seed):
    t, scenario = case
    r = simulator.simulate(t, scenario, seed=seed)
    req, calls = r.requests, r.calls
    # every arrived request exactly once, each with one client call
    assert req["request_id"].is_unique and (req["request_id"] == np.arange(len(req))).all()
    client = calls[calls["caller"] == "client"]
    assert client["request_id"].value_counts().max() == 1
    assert set(client["request_id"]) == set(req["request_id"])
    s = r.summary
    in_win = req[(req["start"] >= 5) & (req["start"] < 30)]
    assert s["requests"] == len(in_win)
    assert s["ok"] + s["unfinished"] + (~in_win["ok"] & (in_win["error"] != "unfinished")).sum() \
        == s["requests"]
    # no negative times
    done = calls.dropna(subset=["end"])
    assert (done["end"] >= done["start"]).all() and (calls["start"] >= 0).all()
    assert (req["latency"].dropna() >= 0).all()
    # retries never exceed attempts, nor the budget on their edge
    for name, svc in t.services.items():
        for call in svc.edges():
            edge = calls[(calls["caller"] == name) & (calls["callee"] == call.to)]
            if edge.empty:
                continue
            limit = call.retry.attempts if call.retry else 1
            assert edge["attempt"].max() <= limit
            if call.retry and call.retry.budget is not None:
                # the budget's windows cover the run: retries <= budget x first attempts
                # + the floor's retries per second over the run
                retries = (edge["attempt"] > 1).sum()
                span = float(calls["start"].max()) + call.retry.budget_window
                assert retries <= call.retry.budget * (edge["attempt"] == 1).sum() \
                    + BUDGET_FLOOR * span
