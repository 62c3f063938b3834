"""SLO evaluation over all/fault/steady windows, finalize, and clear errors on bad input."""

from __future__ import annotations

import json
import math
import os

import pytest
from test_reports_fixtures import MINI_TOPOLOGY, write_run

import reports
from faultmesh.cli import main
from topologies.errors import UsageError
from topologies.model import SLO

NO_SLOS = MINI_TOPOLOGY.split("slos:")[0]


@pytest.fixture
def run_dir(tmp_path):
    return write_run(str(tmp_path / "run"))


def test_slos_are_evaluated_per_window_with_known_values(run_dir):
    verdicts = {s.name: s for s in reports.evaluate_slos(reports.load_result(run_dir))}
    assert verdicts["chat p99"].value == pytest.approx(1.0) and verdicts["chat p99"].passed
    assert verdicts["availability"].value == pytest.approx(0.98)
    assert not verdicts["availability"].passed
    # fault window [20, 30): 100 requests, 10 failed
    assert verdicts["fault availability"].value == pytest.approx(0.90)
    assert verdicts["fault availability"].window == "fault"
    # steady: the 400 other measured requests, 50 of them at 0.5 s (p99 = 0.5 s)
    assert verdicts["steady p99"].value == pytest.approx(0.5)
    assert not verdicts["steady p99"].passed
    assert verdicts["recovery"].value == 5.0 and verdicts["recovery"].passed


def test_window_metrics_use_the_window_length(run_dir):
    result = reports.load_result(run_dir)
    assert reports.metric_value(result, "throughput", "fault") == pytest.approx(90 / 10)
    assert reports.metric_value(result, "throughput", "steady") == pytest.approx(400 / 40)
    assert reports.metric_value(result, "error_rate", "steady") == 0.0
    assert reports.metric_value(result, "retry_amplification", "steady") == 1.0
    # the fault window's 100 requests: gateway->llm made 110 attempts for 100 asked
    assert reports.metric_value(result, "retry_amplification", "fault") == pytest.approx(
        110 / 100)
    # cost over the fault window: 10 s of gateway (0.0001/s) and 3 llm replicas (0.001/s each)
    assert reports.metric_value(result, "cost_total", "fault") == pytest.approx(10 * 0.0031)
    assert reports.metric_value(result, "cost_total") == pytest.approx(0.146)
    assert reports.metric_value(result, "cost_per_1k") == pytest.approx(0.146 / 0.49)


def test_count_degraded_false_counts_degraded_answers_as_failures(tmp_path):
    d = write_run(str(tmp_path / "run"))
    path = os.path.join(d, "requests.csv")
    lines = open(path).read().splitlines()
    # mark the 100 measured requests arriving in [10, 20) as degraded
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if 10 <= float(cells[1]) < 20:
            cells[6] = "True"
        out.append(",".join(cells))
    open(path, "w").write("\n".join(out) + "\n")
    result = reports.load_result(d)
    slos = [SLO("availability", "min", 0.9, name="strict", count_degraded=False),
            SLO("availability", "min", 0.9, name="lenient")]
    strict, lenient = reports.evaluate_slos(result, slos)
    assert strict.value == pytest.approx(390 / 500) and not strict.passed
    assert lenient.value == pytest.approx(0.98) and lenient.passed


def test_finalize_writes_resilience_and_slos_to_summary(run_dir):
    summary = reports.finalize(run_dir)
    on_disk = json.loads(open(os.path.join(run_dir, "summary.json")).read())
    assert on_disk == summary
    res = summary["resilience"]
    assert res["recovery_time"] == 5.0 and res["recovered"] is True
    assert res["retry_amplification"] == pytest.approx(1.02)
    assert set(res["blast_radius"]) == {"gateway", "llm"}
    assert 0 <= res["score"] <= 100
    slos = {s["name"]: s for s in summary["slos"]}
    assert slos["chat p99"] == {"name": "chat p99", "metric": "latency_p99", "limit": 3.0,
                                "op": "max", "value": pytest.approx(1.0), "pass": True,
                                "window": "all"}
    assert slos["fault availability"]["pass"] is False
    assert summary["engine"] == "sim" and summary["requests"] == 500  # kept


def test_finalize_without_faults_or_slos(tmp_path):
    d = write_run(str(tmp_path / "calm"), fault=False, topology=NO_SLOS)
    summary = reports.finalize(d)
    assert summary["slos"] == []
    assert summary["resilience"]["recovery_time"] == 0.0
    assert summary["resilience"]["blast_radius"] == []
    assert summary["resilience"]["retry_amplification"] == 1.0


def test_finalize_without_topology_file(tmp_path):
    d = write_run(str(tmp_path / "bare"), topology=None)
    assert reports.finalize(d)["slos"] == []


def test_never_recovering_is_null_in_json_and_fails_its_slo(tmp_path):
    d = write_run(str(tmp_path / "stuck"))
    faults = os.path.join(d, "faults.csv")
    open(faults, "w").write('type,target,start,end,parameters\nlatency,llm,20,,"{}"\n')
    summary = reports.finalize(d)
    text = open(os.path.join(d, "summary.json")).read()
    assert "Infinity" not in text and "NaN" not in text
    assert summary["resilience"]["recovery_time"] is None
    assert summary["resilience"]["recovered"] is False
    rec = next(s for s in summary["slos"] if s["metric"] == "recovery_time")
    assert rec["value"] is None and rec["pass"] is False
    result = reports.load_result(d)
    assert math.isinf(reports.metric_value(result, "recovery_time"))


@pytest.mark.parametrize("damage, message", [
    (lambda d: os.remove(os.path.join(d, "summary.json")), "summary.json: missing"),
    (lambda d: open(os.path.join(d, "summary.json"), "w").write("{oops"),
     "summary.json: not valid JSON"),
    (lambda d: open(os.path.join(d, "requests.csv"), "w").write("request_id,start\n1,2\n"),
     "requests.csv: missing column(s) end, latency, status, ok"),
    (lambda d: open(os.path.join(d, "calls.csv"), "a").write('1,gateway,llm,0,x,1,2,200,True\n'),
     "calls.csv: column attempt must hold numbers"),
    (lambda d: open(os.path.join(d, "faults.csv"), "w").write(""), "faults.csv: empty file"),
    (lambda d: os.remove(os.path.join(d, "requests.csv")), "requests.csv: missing"),
])
def test_bad_result_directories_are_usage_errors_naming_the_file(tmp_path, damage, message):
    d = write_run(str(tmp_path / "run"))
    damage(d)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reports.analyse(reports.load_result(d))


def test_missing_directory_via_cli_is_exit_2_without_traceback(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such result directory" in err and "Traceback" not in err
    os.makedirs(tmp_path / "empty")
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "summary.json: missing" in capsys.readouterr().err


def test_latency_slo_without_a_successful_request_is_not_applicable(tmp_path):
    d = write_run(str(tmp_path / "run"))
    path = os.path.join(d, "requests.csv")
    lines = open(path).read().splitlines()
    header = lines[0].split(",")
    ok, status = header.index("ok"), header.index("status")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if 20 <= float(cells[1]) < 30:   # every request in the fault window fails
            cells[ok], cells[status] = "False", "503"
        out.append(",".join(cells))
    open(path, "w").write("\n".join(out) + "\n")
    result = reports.load_result(d)
    slos = [SLO("latency_p50", "max", 1.0, name="fault p50", window="fault"),
            SLO("availability", "min", 0.5, name="fault availability", window="fault")]
    p50, avail = reports.evaluate_slos(result, slos)
    assert p50.skipped and p50.note == "not applicable: no successful requests in the fault window"
    assert avail.value == 0.0 and not avail.passed and not avail.skipped
