"""Issue 7 items 8 and 9: retry amplification per edge (the run's figure is the worst edge),
and recovery_time in one pass with the same values as the per-window rescan."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from test_reports_fixtures import write_run

import reports
from reports import metrics, resilience, slo
from reports.resilience import RECOVERY_ERROR_FLOOR, RECOVERY_TOLERANCE, request_baseline
from topologies.summary import RunFacts, summarize_run


# --- item 8: retry amplification per edge -----------------------------------------------------
def _storm_run(directory: str) -> str:
    """The mini run with a retry storm on gateway->llm: from 40 s on, every request's llm call
    takes 4 attempts (the first three fail), the other edges untouched."""
    d = write_run(directory)
    path = os.path.join(d, "calls.csv")
    calls = pd.read_csv(path)
    storm = calls[(calls["callee"] == "llm") & (calls["start"] >= 40)]
    calls.loc[storm.index, ["status", "ok"]] = [500, False]
    retries = pd.concat([storm.assign(attempt=a, status=500 if a < 4 else 200, ok=a == 4)
                         for a in (2, 3, 4)])
    pd.concat([calls, retries], ignore_index=True).to_csv(path, index=False)
    return d


def test_run_figure_is_the_worst_edge_not_an_average(tmp_path):
    d = _storm_run(str(tmp_path / "storm"))
    result = reports.load_result(d)
    # measured requests 10..60 s: 500; gateway->llm from 40 s: 200 requests x 4 attempts,
    # 10..40 s: 300 with the 10 retried in [25, 30) -> 800 + 310 = 1110 attempts for 500 asked
    edges = resilience.edge_amplification(result.calls, slo.window_calls(result, "all"))
    by_edge = edges.set_index(["caller", "callee"])
    assert by_edge.loc[("gateway", "llm"), "calls"] == 500
    assert by_edge.loc[("gateway", "llm"), "attempts"] == 1110
    assert by_edge.loc[("client", "gateway"), "retry_amplification"] == 1.0
    # averaged with the client's calls this read (500 + 1110) / 1000 = 1.61
    assert reports.metric_value(result, "retry_amplification") == pytest.approx(1110 / 500)
    # the fault window [20, 30): 110 attempts for 100 asked; steady: (1000) / 400
    assert reports.metric_value(result, "retry_amplification", "fault") == pytest.approx(1.1)
    assert reports.metric_value(result, "retry_amplification", "steady") == pytest.approx(
        1000 / 400)
    summary = reports.finalize(d)
    assert summary["resilience"]["retry_amplification"] == pytest.approx(2.22)


def test_report_and_summary_share_one_edge_definition(tmp_path):
    d = _storm_run(str(tmp_path / "storm"))
    result = reports.load_result(d)
    read = [pd.read_csv(os.path.join(d, f)) for f in ("requests.csv", "calls.csv",
                                                      "timeseries.csv")]
    s = summarize_run(result.topology, *read, RunFacts(engine="sim", end=60.0))
    a = reports.analyse(result)
    assert s["resilience"]["retry_amplification"] == pytest.approx(a.retry_amplification)
    table = {f"{r.caller}->{r.callee}": (r.calls, r.attempts, r.errors)
             for r in a.edges.itertuples()}
    assert table == {k: (v["calls"], v["attempts"], v["errors"]) for k, v in s["edges"].items()}


def test_report_page_flags_the_worst_edge(tmp_path):
    d = _storm_run(str(tmp_path / "storm"))
    html = open(reports.write_report([d])).read()
    section = html[html.index("Retries per edge"):html.index('<h2 id="cost">')]
    assert "2.22x (gateway → llm)" in section
    assert '<tr class="warn"><td>gateway → llm</td>' in section
    assert "<td>client → gateway</td>" in section


# --- item 9: recovery_time in one pass -------------------------------------------------------
def _reference_recovery_time(requests, intervals, warmup, duration, width=5.0,
                             count_degraded=True):
    """The definition as it was written before: every 5 s window rescans the table."""
    if not intervals:
        return 0.0
    base = request_baseline(requests, intervals, warmup, duration, count_degraded)
    if base is None:
        return math.nan
    end = max(hi for _, hi in intervals)
    if end >= duration:
        return math.inf
    max_err = max(base.error_rate * (1 + RECOVERY_TOLERANCE),
                  base.error_rate + RECOVERY_ERROR_FLOOR)
    max_p99 = base.p99 * (1 + RECOVERY_TOLERANCE)
    after = requests[(requests["start"] >= end) & (requests["start"] < duration)]
    k_of = metrics.window_index(after["start"], width, origin=end)
    good = metrics.successes(after, count_degraded)
    within = []
    for k in range(math.ceil((duration - end) / width)):
        g = after[k_of == k]
        if not len(g):
            within.append(False)
            continue
        err = 1.0 - float(good.loc[g.index].mean())
        p99 = metrics.percentile(metrics.success_latency(g), 99)
        within.append(err <= max_err + 1e-12 and p99 <= max_p99 + 1e-12)
    for k, ok in enumerate(within):
        if ok and (k + 1 == len(within) or within[k + 1]):
            return k * width
    return math.inf


def _random_requests(seed: int, n: int, duration: float, fault: tuple[float, float],
                     heal: float, gaps: bool = False) -> pd.DataFrame:
    """Arrivals over [0, duration): slower and failing more inside the fault, healing
    linearly over ``heal`` seconds after it; some degraded answers and missing latencies."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, duration, n))
    if gaps:   # a silent stretch after the fault: windows without arrivals
        start = start[(start < fault[1] + 7) | (start > fault[1] + 19)]
    lo, hi = fault
    after = np.clip(1 - (start - hi) / heal, 0, 1) if heal else np.zeros(start.size)
    hurt = np.where((start >= lo) & (start < hi), 1.0, np.where(start >= hi, after, 0.0))
    ok = rng.uniform(size=start.size) > 0.01 + 0.4 * hurt
    latency = rng.lognormal(np.log(0.1), 0.3, start.size) * (1 + 5 * hurt)
    latency[rng.uniform(size=start.size) < 0.002] = np.nan
    degraded = ok & (rng.uniform(size=start.size) < 0.05 + 0.3 * hurt)
    return pd.DataFrame({"request_id": np.arange(start.size), "start": start,
                         "latency": latency, "ok": ok, "degraded": degraded})


CASES = [
    # seed, requests, duration, fault, heal seconds, gaps, intervals (None: the fault alone)
    (1, 6000, 300.0, (100.0, 130.0), 40.0, False, None),
    (2, 3000, 300.0, (100.0, 130.0), 0.0, False, None),
    (3, 3000, 200.0, (50.0, 70.0), 500.0, False, None),          # never back
    (4, 2000, 200.0, (60.0, 62.5), 12.0, True, None),            # empty windows
    (5, 4000, 250.0, (40.0, 55.0), 20.0, False, [(40.0, 55.0), (80.0, 91.3)]),
    (6, 500, 120.0, (2.0, 20.0), 5.0, False, None),              # fault during warmup
    (7, 3000, 200.0, (100.0, 199.0), 0.0, False, None),          # a last, short window
    (8, 50, 100.0, (0.0, 10.0), 0.0, False, [(0.0, 10.0)]),      # no baseline
]


@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) for c in CASES])
@pytest.mark.parametrize("count_degraded", [True, False])
def test_recovery_time_equals_the_rescan_definition(case, count_degraded):
    seed, n, duration, fault, heal, gaps, intervals = case
    requests = _random_requests(seed, n, duration, fault, heal, gaps)
    intervals = intervals or [fault]
    warmup = 10.0
    for width in (5.0, 2.0):
        want = _reference_recovery_time(requests, intervals, warmup, duration, width,
                                        count_degraded)
        got = resilience.recovery_time(requests, intervals, warmup, duration, width,
                                       count_degraded)
        assert got == want or (math.isnan(got) and math.isnan(want)), (width, got, want)


def test_recovery_time_cases_cover_every_outcome():
    values = set()
    for seed, n, duration, fault, heal, gaps, intervals in CASES:
        r = _random_requests(seed, n, duration, fault, heal, gaps)
        v = resilience.recovery_time(r, intervals or [fault], 10.0, duration)
        values.add("nan" if math.isnan(v) else "inf" if math.isinf(v) else
                   "zero" if v == 0 else "finite")
    assert values == {"nan", "inf", "zero", "finite"}
