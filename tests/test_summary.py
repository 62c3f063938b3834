"""topologies.summary: one summary.json for both engines, from the result tables."""

from __future__ import annotations

import json
import math
import os
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import BASE

import simulator
import topologies
from topologies.summary import RunFacts, edge_figures, summarize_run

TOPO = topologies.loads(textwrap.dedent("""\
    version: 1
    name: pair
    entry: gateway
    workload: {rate: 1/s, duration: 10s, warmup: 2s}
    services:
      gateway:
        workers: 2
        calls: [{to: llm, timeout: 1s, retry: {attempts: 3}}]
        cost: {per_replica_hour: 3.6}
      llm:
        kind: llm
        replicas: 2
        llm: {max_batch: 4}
        cost: {per_replica_hour: 36}
    """))

REQ = ["request_id", "start", "end", "latency", "status", "ok", "degraded", "attempts", "error"]
CALL = ["request_id", "caller", "callee", "replica", "attempt", "start", "end", "status", "ok",
        "error", "ttft", "tpot", "output_tokens", "call"]
TS = ["t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
      "throughput", "errors", "batch"]


def _req(rid, start, latency, status=200, degraded=False, error=""):
    end = math.nan if latency is None else start + latency
    return (rid, start, end, math.nan if latency is None else latency, status, status == 200,
            degraded, 1, error)


def _tables():
    """Requests 0..11, one per second from t = 0.5 (warmup 2 s, duration 10 s):

    * 0, 1 arrive in warmup; 10, 11 arrive at 10.5 and 11.5 (after duration: the drain);
    * measured 2..9: 2..5 ok with latency 0.1, 0.2, 0.3, 0.4 (5 degraded), 6 a client
      timeout (504), 7 unfinished, 8 ok 0.8, 9 failed (500);
    so 8 requests, 1 unfinished, 5 ok (1 degraded) out of 7 answered.
    """
    rows = [_req(0, 0.5, 0.1), _req(1, 1.5, 0.1)]
    rows += [_req(2 + i, 2.5 + i, 0.1 * (i + 1), degraded=(i == 3)) for i in range(4)]
    rows += [_req(6, 6.5, 60.0, 504, error="client_timeout"),
             _req(7, 7.5, None, 0, error="unfinished"), _req(8, 8.5, 0.8),
             _req(9, 9.5, 0.05, 500, error="error"), _req(10, 10.5, 0.1), _req(11, 11.5, 0.1)]
    requests = pd.DataFrame(rows, columns=REQ)
    calls = []
    for rid, start, end, _lat, status, ok, *_ in rows:
        calls.append((rid, "client", "gateway", 0, 1, start, end, status, ok,
                      "" if ok else "error", math.nan, math.nan, math.nan, 0))
        # gateway->llm: request 9 retried twice (3 attempts, all failed), others once
        tries = 3 if rid == 9 else 1
        for a in range(1, tries + 1):
            failed = rid == 9
            calls.append((rid, "gateway", "llm", rid % 2, a, start, start + 0.04,
                          500 if failed else 200, not failed, "error" if failed else "",
                          math.nan if failed else 0.01 * (rid + 1), 0.002, 10, 0))
    calls = pd.DataFrame(calls, columns=CALL)
    ts = []
    for t in range(12):
        ts.append((t, "gateway", 1, 1, 1, 0, 0.5, 1, 0, math.nan))
        # llm: 2 replicas, 4 ready from 6 s (a scale-up), utilization 0.8 then 0.2
        ready = 2 if t < 6 else 4
        ts.append((t, "llm", ready, ready, 1, 0, 0.8 if t < 6 else 0.2, 1, 0, 1))
    return requests, calls, pd.DataFrame(ts, columns=TS)


def _summary(**facts):
    requests, calls, ts = _tables()
    return summarize_run(TOPO, requests, calls, ts,
                         RunFacts(**{"engine": "live", "end": 71.5, **facts}))


def test_window_availability_and_latency():
    s = _summary()
    assert (s["duration"], s["warmup"], s["end"]) == (10.0, 2.0, 71.5)
    assert s["requests"] == 8 and s["unfinished"] == 1
    assert s["ok"] == 5 and s["degraded"] == 1
    # the unfinished request is left out; the client timeout counts as a failure
    assert s["availability"] == pytest.approx(5 / 7)
    assert s["error_rate"] == pytest.approx(2 / 7)
    assert s["throughput"] == pytest.approx(5 / 8)
    # successful requests only, degraded included: 0.1 0.2 0.3 0.4 0.8
    lat = np.array([0.1, 0.2, 0.3, 0.4, 0.8])
    assert s["latency"]["p50"] == pytest.approx(0.3)
    assert s["latency"]["p99"] == pytest.approx(np.percentile(lat, 99))
    assert s["latency"]["mean"] == pytest.approx(lat.mean())
    assert s["latency"]["max"] == pytest.approx(0.8)
    assert s["engine"] == "live" and s["topology"] == "pair"
    json.dumps(s, allow_nan=False)  # JSON-safe


def test_interrupted_run_cuts_the_window_at_the_time_reached():
    s = _summary(end=7.0, partial=True)
    assert s["duration"] == 7.0 and s["partial"] is True
    assert s["requests"] == 5 and s["ok"] == 4   # 2..6 arrived before 7 s


def test_utilization_weights_intervals_by_ready_replica_seconds():
    s = _summary()
    # window [2, 10): llm 4 s at 2 ready x 0.8, 4 s at 4 ready x 0.2 -> (6.4 + 3.2) / 24
    assert s["services"]["llm"]["utilization"] == pytest.approx(9.6 / 24)
    assert s["services"]["gateway"]["utilization"] == pytest.approx(0.5)
    assert s["services"]["llm"]["replicas_mean"] == pytest.approx(3.0)
    assert s["services"]["llm"]["replicas_max"] == 4
    # a second with no replica ready (both killed) has no capacity: it weighs nothing
    requests, calls, ts = _tables()
    down = (ts["service"] == "llm") & (ts["t"] == 3)
    ts.loc[down, ["ready_replicas", "utilization"]] = [0, 0.0]
    s = summarize_run(TOPO, requests, calls, ts, RunFacts(engine="sim", end=12.0))
    assert s["services"]["llm"]["utilization"] == pytest.approx((4.8 + 3.2) / (6 + 16))


def test_last_interval_is_cut_at_the_window_end():
    requests, calls, ts = _tables()
    ts = ts[ts["t"] < 9]          # the last interval starts at 8 s and is 1 s long
    s = summarize_run(TOPO, requests, calls, ts, RunFacts(engine="live", end=9.5, partial=True))
    # window [2, 9.5): llm 4 s at 2 x 0.8, 3 s at 4 x 0.2 (the last row, 8 s, lasts the
    # usual 1 s: nothing is known after 9 s)
    assert s["services"]["llm"]["utilization"] == pytest.approx((6.4 + 2.4) / (8 + 12))


def test_cost_from_timeseries_unless_the_engine_knows_it():
    s = _summary()
    # timeseries: gateway 1 replica x 8 s at 3.6/h; llm 2 x 4 s + 4 x 4 s at 36/h
    assert s["cost"]["by_service"]["gateway"] == pytest.approx(8 * 0.001)
    assert s["cost"]["by_service"]["llm"] == pytest.approx(24 * 0.01)
    assert s["cost"]["total"] == pytest.approx(0.248)
    assert s["cost"]["per_1k"] == pytest.approx(0.248 / 0.005)
    assert s["cost"]["wasted"] == 0.0 and s["cost"]["wasted_measured"] is False
    exact = _summary(replica_seconds={"gateway": 8.0, "llm": 30.0},
                     wasted_cost={"llm": 0.05}, short_circuited={"llm": 3})
    assert exact["cost"]["by_service"]["llm"] == pytest.approx(0.3)
    assert exact["cost"]["wasted"] == pytest.approx(0.05)
    assert exact["cost"]["wasted_share"] == pytest.approx(0.05 / 0.308)
    assert exact["cost"]["wasted_measured"] is True
    assert exact["services"]["llm"]["short_circuited"] == 3
    assert exact["services"]["gateway"]["short_circuited"] == 0
    assert "short_circuited" not in s["services"]["llm"]     # unknown: not reported


def test_services_and_edges():
    s = _summary()
    llm = s["services"]["llm"]
    # calls of the 7 answered measured requests: 6 single attempts + 3 for request 9
    assert (llm["calls"], llm["errors"], llm["retries"]) == (9, 3, 2)
    assert llm["latency_p99"] == pytest.approx(0.04)
    ttft = np.array([0.03, 0.04, 0.05, 0.06, 0.07, 0.09])   # requests 2..6 and 8
    assert llm["ttft_p50"] == pytest.approx(np.percentile(ttft, 50))
    assert llm["ttft_p99"] == pytest.approx(np.percentile(ttft, 99))
    assert llm["tpot_mean"] == pytest.approx(0.002) and llm["tpot_p99"] == pytest.approx(0.002)
    assert "ttft_p50" not in s["services"]["gateway"]
    assert s["edges"] == {
        "client->gateway": {"calls": 7, "attempts": 7, "retry_amplification": 1.0,
                            "errors": 2},
        "gateway->llm": {"calls": 7, "attempts": 9, "retry_amplification": 9 / 7,
                         "errors": 3},
    }
    assert s["resilience"]["retry_amplification"] == pytest.approx(9 / 7)


def test_a_storm_on_one_edge_is_the_summary_figure():
    # the case: 4 requests, the client edge clean, gateway->llm 7 attempts for 4
    # calls: averaging every edge read (4 + 7) / 8 = 1.375; the storm is 1.75x
    rows = []
    for rid in range(4):
        rows.append((rid, "client", "gateway", 1, True))
        for a in range(1, 3 if rid else 2):      # request 0 once, 1..3 retried once
            rows.append((rid, "gateway", "llm", a, True))
    calls = pd.DataFrame(rows, columns=["request_id", "caller", "callee", "attempt", "ok"])
    edges = edge_figures(calls).set_index(["caller", "callee"])
    assert edges.loc[("gateway", "llm"), "attempts"] == 7
    assert edges.loc[("gateway", "llm"), "retry_amplification"] == 1.75
    requests = pd.DataFrame([_req(r, 3.0 + r, 0.1) for r in range(4)], columns=REQ)
    s = summarize_run(TOPO, requests, calls.assign(start=0.0, end=0.1), pd.DataFrame(columns=TS),
                      RunFacts(engine="sim", end=10.0))
    assert s["resilience"]["retry_amplification"] == 1.75
    assert s["edges"]["client->gateway"]["retry_amplification"] == 1.0


def test_edges_count_each_call_site_and_multiply_nested_retries():
    # two calls on gateway->llm per request (call sites 0 and 1); the client tries twice
    rows = []
    for client_try in (1, 2):
        rows.append((0, "client", "gateway", client_try, True, 0))
        rows += [(0, "gateway", "llm", 1, True, 0), (0, "gateway", "llm", 1, True, 1)]
    calls = pd.DataFrame(rows, columns=["request_id", "caller", "callee", "attempt", "ok",
                                        "call"])
    edges = edge_figures(calls).set_index("callee")
    assert edges.loc["llm", "calls"] == 2 and edges.loc["llm", "attempts"] == 4
    assert edges.loc["gateway", "retry_amplification"] == 2.0
    assert edges.loc["llm", "retry_amplification"] == 2.0


def test_live_csv_forms_are_read_alike(tmp_path):
    # what a live run writes: ok as 1/0, empty cells, text columns
    requests, calls, ts = _tables()
    d = tmp_path / "run"
    d.mkdir()
    live = requests.assign(ok=requests["ok"].astype(int), degraded=requests["degraded"]
                           .astype(int))
    live.to_csv(d / "requests.csv", index=False)
    calls.assign(ok=calls["ok"].astype(int)).to_csv(d / "calls.csv", index=False)
    ts.to_csv(d / "timeseries.csv", index=False)
    read = [pd.read_csv(d / f) for f in ("requests.csv", "calls.csv", "timeseries.csv")]
    assert summarize_run(TOPO, *read, RunFacts(engine="live", end=71.5)) == _summary()


def test_simulated_summary_is_the_shared_function_of_its_files(tmp_path):
    topo = topologies.loads(BASE)
    result = simulator.simulate(topo, "brownout", seed=4, duration=30.0)
    s = result.summary
    assert set(s["services"]["llm"]) >= {"utilization", "calls", "errors", "retries",
                                          "latency_p99", "replicas_mean", "replicas_max",
                                          "cost", "short_circuited", "ttft_p50", "ttft_p99",
                                          "tpot_mean", "tpot_p99"}
    assert s["edges"]["client->gateway"]["calls"] == s["requests"] - s["unfinished"]
    assert s["resilience"]["retry_amplification"] == max(
        e["retry_amplification"] for e in s["edges"].values())
    d = result.write(str(tmp_path / "run"))
    read = [pd.read_csv(os.path.join(d, f)) for f in ("requests.csv", "calls.csv",
                                                      "timeseries.csv")]
    facts = RunFacts(engine="sim", end=s["end"], scenario="brownout", seed=4, duration=30.0,
                     replica_seconds={n: v["cost"] / (topo.services[n].cost.per_replica_hour
                                                      / 3600) if v["cost"] else 0.0
                                      for n, v in s["services"].items()},
                     wasted_cost=s["cost"]["wasted_by_service"],
                     short_circuited={n: v["short_circuited"] for n, v in s["services"].items()})
    again = summarize_run(topo, *read, facts)
    _close(again, json.loads(open(os.path.join(d, "summary.json")).read()))
    # without the exact replica-seconds, cost comes from the timeseries: the same here
    # (no autoscaling, no faults on replicas)
    rebuilt = summarize_run(topo, *read, RunFacts(engine="sim", end=s["end"], duration=30.0))
    assert rebuilt["cost"]["total"] == pytest.approx(s["cost"]["total"], rel=1e-6)


def _close(a, b, path=""):
    """Equal up to the microsecond rounding of times in the CSV files."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=2e-6), path
    else:
        assert a == b, path
