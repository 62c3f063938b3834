"""The cascade timeline records every episode of every service (issue 8, point 10).

A brownout over 60-180 s once showed "last crossed 80 s" while the LLM's p99 crossed again
up to 160 s: the timeline stopped at the first episode.
"""

from __future__ import annotations

import json
import os
import re

import pandas as pd
from sim_helpers import topo

import reports
from reports import resilience

CALL_COLUMNS = ["request_id", "caller", "callee", "attempt", "start", "end", "ok"]


def _llm_calls(slow, until: float) -> pd.DataFrame:
    """Ten llm calls a second up to ``until``: 1 s each while ``slow(t)``, else 0.1 s."""
    rows = []
    for i in range(int(until * 10)):
        t = i * 0.1
        rows.append((i, "gateway", "llm", 1, t, t + (1.0 if slow(t) else 0.1), True))
    return pd.DataFrame(rows, columns=CALL_COLUMNS)


def test_two_separate_crossings_inside_one_fault_are_two_episodes():
    # the reported case: fault over [60, 180), p99 up in [60, 80) and again in [120, 160)
    calls = _llm_calls(lambda t: 60 <= t < 80 or 120 <= t < 160, 200.0)
    tl = resilience.cascade_timeline(calls, [(60.0, 180.0)], 0.0, 200.0)
    assert list(tl["service"]) == ["llm"]
    row = tl.iloc[0]
    assert row["episodes"] == [(60.0, 80.0), (120.0, 160.0)]
    assert (row["first"], row["last"]) == (60.0, 160.0)   # last: the end of the last episode
    assert row["metric"] == "p99"


def test_one_quiet_window_is_bridged_two_are_not():
    one_gap = _llm_calls(lambda t: 20 <= t < 30 or 35 <= t < 45, 80.0)
    tl = resilience.cascade_timeline(one_gap, [(20.0, 45.0)], 0.0, 80.0)
    assert tl.iloc[0]["episodes"] == [(20.0, 45.0)]
    two_gaps = _llm_calls(lambda t: 20 <= t < 30 or 40 <= t < 45, 80.0)
    tl = resilience.cascade_timeline(two_gaps, [(20.0, 45.0)], 0.0, 80.0)
    assert tl.iloc[0]["episodes"] == [(20.0, 30.0), (40.0, 45.0)]


def test_a_lone_window_counts_near_a_fault_and_is_noise_far_from_one():
    # second fault at [60, 62): the lone slow window [60, 65) overlaps it and is kept
    calls = _llm_calls(lambda t: 20 <= t < 30 or 60 <= t < 65, 80.0)
    near = resilience.cascade_timeline(calls, [(20.0, 30.0), (60.0, 62.0)], 0.0, 80.0)
    assert near.iloc[0]["episodes"] == [(20.0, 30.0), (60.0, 65.0)]
    far = resilience.cascade_timeline(calls, [(20.0, 30.0)], 0.0, 80.0)
    assert far.iloc[0]["episodes"] == [(20.0, 30.0)]
    # a lone window right after a fault ends (the cascade lagging it by a window) is kept
    lag = _llm_calls(lambda t: 20 <= t < 30 or 35 <= t < 40, 80.0)
    assert resilience.crossing_episodes([4, 5, 8], [(20.0, 30.0)]) == [(20.0, 30.0)]
    assert resilience.crossing_episodes([6], [(20.0, 30.0)]) == [(30.0, 35.0)]
    assert resilience.crossing_episodes([7], [(20.0, 30.0)]) == []
    tl = resilience.cascade_timeline(lag, [(20.0, 30.0)], 0.0, 80.0)
    assert tl.iloc[0]["episodes"] == [(20.0, 40.0)]   # one quiet window bridged


RECURRING = """
    version: 1
    name: recurring
    entry: gateway
    workload: {model: open, rate: 20, duration: 140, warmup: 10}
    services:
      gateway:
        workers: 50
        latency: {dist: constant, value: 1ms}
        calls:
          - {to: llm, timeout: 10s}
      llm:
        workers: 200
        latency: {dist: constant, value: 100ms}
    scenarios:
      twice-slow:
        faults:
          - {type: latency, target: llm, start: 30s, duration: 20s, latency: 1s}
          - {type: latency, target: llm, start: 90s, duration: 20s, latency: 1s}
"""


def test_a_fault_that_recurs_shows_two_episodes_in_summary_and_report(tmp_path):
    from faultmesh.runs import simulate_run

    out = str(tmp_path / "run")
    summary = simulate_run(topo(RECURRING), "twice-slow", out, seed=3, report=True)
    cascade = {c["service"]: c for c in summary["resilience"]["cascade"]}
    llm = cascade["llm"]
    # the latency fault slows each llm call by 1 s while active: one episode per fault
    # window, nothing between them (50-90 s) or after the second
    assert llm["episodes"] == [[30.0, 50.0], [90.0, 110.0]]
    assert (llm["first"], llm["last"]) == (30.0, 110.0)
    assert llm["metric"] == "p99"
    a = reports.analyse(reports.load_result(out))
    assert a.cascade() == summary["resilience"]["cascade"]
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        html = fh.read()
    table = html[html.index('id="cascade"'):html.index("Retries per edge")]
    assert "2: 30 s–50 s, 90 s–110 s" in table
    # the figure draws one bar per episode, each labelled with its start (text kept as text)
    figure = table[table.index('data-figure="cascade"'):table.index("</svg>")]
    starts = re.findall(r"> (\d+) s<", figure)
    assert starts == [str(round(lo)) for c in summary["resilience"]["cascade"]
                      for lo, _ in c["episodes"]]
    assert starts.count("90") == len(cascade) >= 1
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        assert json.load(fh)["resilience"]["cascade"] == summary["resilience"]["cascade"]
