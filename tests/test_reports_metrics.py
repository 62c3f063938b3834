"""Metric functions on small hand-made tables and result directories with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_reports_fixtures import write_run

import reports
from reports import cost, metrics, resilience


def _requests(rows):
    return pd.DataFrame(rows, columns=["request_id", "start", "latency", "ok", "degraded"])


def test_latency_percentiles_interpolate_between_order_statistics():
    stats = metrics.latency_stats(range(1, 101))
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["max"] == 100
    assert math.isnan(metrics.latency_stats([])["p99"])


def test_degraded_answers_count_as_success_unless_told_not():
    r = _requests([(0, 0, 1, True, False), (1, 1, 1, True, True), (2, 2, 1, False, False),
                   (3, 3, 1, True, False)])
    assert metrics.availability(r) == 0.75
    assert metrics.availability(r, count_degraded=False) == 0.5
    assert metrics.error_rate(r) == 0.25
    assert metrics.throughput(r, seconds=4) == 0.75


def test_windows_are_5s_by_arrival_with_per_window_percentiles():
    r = _requests([(i, t, lat, ok, False) for i, (t, lat, ok) in enumerate(
        [(0.5, 0.1, True), (4.9, 0.3, False), (5.0, 1.0, True), (12.0, 2.0, True)])])
    w = metrics.windowed(r, 0.0, 15.0)
    assert list(w["t"]) == [0.0, 5.0, 10.0]
    assert list(w["requests"]) == [2, 1, 1]
    assert list(w["errors"]) == [1, 0, 0]
    assert w["throughput"].tolist() == [0.2, 0.2, 0.2]
    assert w.loc[0, "p50"] == pytest.approx(0.1)  # the failed request's 0.3 s is left out
    assert w.loc[2, "p99"] == 2.0


def test_mini_run_figures(tmp_path):
    a = reports.analyse(reports.load_result(write_run(str(tmp_path / "run"))))
    assert a.requests == 500
    assert a.availability == pytest.approx(0.98)
    assert a.throughput == pytest.approx(9.8)
    assert a.latency["p50"] == pytest.approx(0.1)
    assert a.latency["p99"] == pytest.approx(1.0)
    # latency of the 490 successful requests: the 10 failures (at 1.0 s) are left out
    assert a.latency["mean"] == pytest.approx((350 * 0.1 + 90 * 1.0 + 50 * 0.5) / 490)
    assert a.recovery_time == 5.0
    assert a.retry_amplification == pytest.approx(1.02)   # the worst edge, gateway->llm
    # per 5 s window: [25, 30) has 50 requests of which 10 failed
    row = a.windows.set_index("t").loc[25.0]
    assert (row["requests"], row["errors"], row["error_rate"]) == (50, 10, 0.2)


def test_recovery_time_is_zero_without_faults_and_inf_when_never_back():
    r = _requests([(i, i * 0.5, 0.1, True, False) for i in range(120)])
    assert resilience.recovery_time(r, [], 0.0, 60.0) == 0.0
    # the fault lasts to the end of the run: never seen recovered
    assert math.isinf(resilience.recovery_time(r, [(20.0, 60.0)], 0.0, 60.0))
    # latency stays 3x the baseline after the fault ended at 30 s
    slow = r.assign(latency=[0.1 if t < 20 else 0.3 for t in r["start"]])
    assert math.isinf(resilience.recovery_time(slow, [(20.0, 30.0)], 0.0, 60.0))
    # back within 10 % from 40 s on (the [30, 40) windows are slow): 10 s after the fault
    back = r.assign(latency=[0.3 if 20 <= t < 40 else 0.105 for t in r["start"]])
    assert resilience.recovery_time(back, [(20.0, 30.0)], 0.0, 60.0) == 10.0


def test_one_lucky_window_is_not_recovery():
    # after the fault ends at 30: slow, good, slow, good, good... -> recovered at 45 s (15 s)
    def lat(t):
        if t < 20:
            return 0.1
        if 30 <= t < 35 or 40 <= t < 45:
            return 0.5
        return 0.1 if t >= 35 else 1.0
    r = _requests([(i, i * 0.5, lat(i * 0.5), True, False) for i in range(120)])
    assert resilience.recovery_time(r, [(20.0, 30.0)], 0.0, 60.0) == 15.0


def test_recovery_error_rate_tolerance_has_a_one_point_floor():
    # 40 req/s, baseline 0 errors; after the fault 1 error in 200 (0.5 %) is within 1 point,
    # 1 in 50 (2 %) is not
    def run(every):
        rows = []
        for i in range(2400):
            t = i * 0.025
            ok = not (20 <= t < 30 and i % 2 == 0) and not (t >= 30 and i % every == 0)
            rows.append((i, t, 0.1, ok, False))
        return resilience.recovery_time(_requests(rows), [(20.0, 30.0)], 0.0, 60.0)

    assert run(200) == 0.0
    assert math.isinf(run(50))


def _calls(rows):
    return pd.DataFrame(rows, columns=["request_id", "caller", "callee", "attempt", "start",
                                       "end", "ok"])


def test_retry_amplification_multiplies_nested_retries():
    # one request: the client tries the gateway twice, each gateway try calls llm 3 times
    rows = []
    for client_try in (1, 2):
        rows.append((0, "client", "gateway", client_try, 0, 1, client_try == 2))
        for a in (1, 2, 3):
            rows.append((0, "gateway", "llm", a, 0, 1, a == 3))
    c = _calls(rows)
    edges = resilience.edge_amplification(c).set_index("callee")
    assert edges.loc["llm", "retry_amplification"] == 6
    assert edges.loc["gateway", "retry_amplification"] == 2
    assert edges.loc["llm", "errors"] == 4
    assert resilience.retry_amplification(c) == pytest.approx(6)   # the worst edge
    # a second request without retries adds one asked call per edge: llm 7 / 2, gateway 3 / 2
    c2 = pd.concat([c, _calls([(1, "client", "gateway", 1, 0, 1, True),
                               (1, "gateway", "llm", 1, 0, 1, True)])])
    assert resilience.retry_amplification(c2) == pytest.approx(7 / 2)
    assert math.isnan(resilience.retry_amplification(c.iloc[0:0]))


def _cascade_calls():
    """llm slows from 20 s, gateway starts failing from 30 s, cache is untouched."""
    rows = []
    for i in range(400):
        t = i * 0.1
        llm_lat = 1.0 if t >= 20 else 0.1
        gw_ok = not (t >= 30 and i % 4 == 0)
        rows.append((i, "client", "gateway", 1, t, t + llm_lat + 0.01, gw_ok))
        rows.append((i, "gateway", "llm", 1, t, t + llm_lat, True))
        rows.append((i, "gateway", "cache", 1, t, t + 0.002, True))
    return _calls(rows)


def test_blast_radius_and_cascade_order():
    calls = _cascade_calls()
    impact = resilience.service_impact(calls, [(20.0, 40.0)], 0.0, 40.0).set_index("service")
    assert impact.loc["llm", "reason"] == "p99"
    assert impact.loc["llm", "p99_ratio"] == pytest.approx(10.0)
    assert impact.loc["gateway", "fault_error_rate"] == pytest.approx(0.125)  # 25 % of half
    assert not impact.loc["cache", "affected"]
    timeline = resilience.cascade_timeline(calls, [(20.0, 40.0)], 0.0, 40.0)
    first = timeline.set_index("service")["first"]
    assert first["llm"] == 20.0
    assert "cache" not in first.index
    radius = resilience.blast_radius(impact.reset_index(), timeline)
    assert set(radius) == {"llm", "gateway"}


def test_cascade_orders_services_by_first_crossing():
    rows = []
    for i in range(400):
        t = i * 0.1
        rows.append((i, "gateway", "llm", 1, t, t + (1.0 if t >= 20 else 0.1), True))
        rows.append((i, "client", "gateway", 1, t, t + 0.01, not (t >= 30 and i % 2 == 0)))
    timeline = resilience.cascade_timeline(_calls(rows), [(20.0, 40.0)], 0.0, 40.0)
    assert list(timeline["service"]) == ["llm", "gateway"]
    assert list(timeline["first"]) == [20.0, 30.0]
    assert list(timeline["metric"]) == ["p99", "error_rate"]
    assert timeline.loc[1, "value"] == pytest.approx(0.5)


def test_cost_over_time_is_replicas_times_price(tmp_path):
    result = reports.load_result(write_run(str(tmp_path / "run")))
    assert result.prices() == {"gateway": 0.36, "llm": 3.6}
    timeline = cost.cost_over_time(result.timeseries, result.prices())
    by_service = timeline.groupby("service")["cost"].sum()
    assert by_service["gateway"] == pytest.approx(0.006)
    assert by_service["llm"] == pytest.approx(0.14)
    assert timeline.groupby("service")["cumulative"].max()["llm"] == pytest.approx(0.14)
    # summary.json's bill stays the figure of record; missing parts are filled in
    assert cost.cost_breakdown({"cost": {"total": 1.0}}, successes=500)["per_1k"] == 2.0
    filled = cost.cost_breakdown({}, successes=1000, timeline=timeline)
    assert filled["total"] == pytest.approx(0.146)
    assert list(filled["by_service"]) == ["llm", "gateway"]


def test_llm_time_to_first_token_and_time_per_output_token(tmp_path):
    result = reports.load_result(write_run(str(tmp_path / "run")))
    llm = metrics.llm_stats(result.calls).set_index("service")
    assert llm.loc["llm", "calls"] == 610
    assert llm.loc["llm", "ttft_p50"] == pytest.approx(0.05)
    assert llm.loc["llm", "ttft_p99"] == pytest.approx(0.2)
    assert llm.loc["llm", "tpot_p90"] == pytest.approx(0.04)
    per_window = metrics.llm_windowed(result.calls).set_index("t")
    assert per_window.loc[20.0, "ttft_p50"] == pytest.approx(0.2)
    assert per_window.loc[40.0, "tpot_p99"] == pytest.approx(0.01)


def test_service_series_pivots_replicas_over_time(tmp_path):
    result = reports.load_result(write_run(str(tmp_path / "run")))
    replicas = metrics.service_series(result.timeseries, "replicas")
    assert replicas.loc[25.0, "llm"] == 3 and replicas.loc[45.0, "llm"] == 2
    assert metrics.service_series(result.timeseries, "queued").loc[25.0, "llm"] == 4


def test_requests_in_flight_at_the_end_are_neither_success_nor_failure(tmp_path):
    d = write_run(str(tmp_path / "run"))
    with open(f"{d}/requests.csv", "a") as fh:
        for i in range(600, 605):
            fh.write(f"{i},{59.95 + i / 10000},,,0,False,False,1,unfinished\n")
    result = reports.load_result(d)
    assert result.unfinished == 5
    a = reports.analyse(result)
    assert a.requests == 500 and a.availability == pytest.approx(0.98)
    assert reports.metric_value(result, "availability") == pytest.approx(0.98)


def test_values_read_in_their_units():
    from reports.formatting import format_metric, format_seconds

    assert format_seconds(0.0) == "0 s"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(math.inf) == "never"
    assert format_metric("availability", 0.995) == "99.50 %"
    assert format_metric("retry_amplification", 1.0) == "1.00x"
    assert format_metric("cost_per_1k", 0.2272) == "$0.2272"
    assert format_metric("throughput", 9.8) == "9.8 req/s"


def test_retry_amplification_counts_two_calls_on_one_edge_as_two_asked():
    # the gateway calls llm twice per request (two steps: `call` 0 and 1), no retries
    rows = [(0, "client", "gateway", 1, 0, 1, True), (0, "gateway", "llm", 1, 0, 1, True),
            (0, "gateway", "llm", 1, 0, 1, True)]
    c = _calls(rows).assign(call=[0, 0, 1])
    assert resilience.retry_amplification(c) == pytest.approx(1.0)
    # the second llm call retried once: 3 attempts for 2 asked on gateway->llm
    c = _calls([*rows, (0, "gateway", "llm", 2, 0, 1, True)]).assign(call=[0, 0, 1, 1])
    assert resilience.retry_amplification(c) == pytest.approx(3 / 2)


def test_simulated_calls_carry_the_call_site():
    from conftest import BASE

    import simulator
    import topologies

    topo = topologies.loads(BASE.replace("duration: 60s", "duration: 20s"))
    calls = simulator.simulate(topo, seed=1).calls
    gw = calls[calls["caller"] == "gateway"]
    assert set(gw.groupby("callee", observed=True)["call"].first()) == {0, 1, 2}


def test_cascade_episode_ends_when_the_crossing_stops_not_at_a_later_blip():
    # llm slow in [20, 30) only; a lone slow window at [60, 65) is noise, not the cascade
    rows = []
    for i in range(800):
        t = i * 0.1
        slow = 20 <= t < 30 or 60 <= t < 65
        rows.append((i, "gateway", "llm", 1, t, t + (1.0 if slow else 0.1), True))
    timeline = resilience.cascade_timeline(_calls(rows), [(20.0, 30.0)], 0.0, 80.0)
    assert list(timeline["service"]) == ["llm"]
    assert (timeline.loc[0, "first"], timeline.loc[0, "last"]) == (20.0, 30.0)


def test_dollars_are_never_shown_in_scientific_notation():
    from reports.formatting import format_usd

    assert format_usd(5.098e-05) == "$0.00005098"
    assert format_usd(0.3142) == "$0.3142"
    assert format_usd(1234.5) == "$1,234.50"
    assert format_usd(0.0) == "$0.00"
