"""`faultmesh gate`: exit codes, JUnit XML, Markdown summary, GitHub step summary."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest
from test_reports_fixtures import MINI_TOPOLOGY, write_run

import simulator
from faultmesh.cli import main

PASSING = MINI_TOPOLOGY.split("slos:")[0] + """slos:
  - {name: chat p99, metric: latency_p99, max: 3s}
  - {name: fault availability, metric: availability, min: 85%, window: fault}
  - {name: steady p99, metric: latency_p99, max: 600ms, window: steady}
"""


@pytest.fixture
def results(tmp_path):
    """A directory of two runs: baseline passes, brownout fails 'fault availability'."""
    root = tmp_path / "results"
    strict = PASSING.replace("min: 85%", "min: 95%")
    write_run(str(root / "baseline"), fault=False, topology=strict)
    write_run(str(root / "brownout"), topology=strict)
    return str(root)


def test_gate_passes_with_exit_0(tmp_path, capsys):
    d = write_run(str(tmp_path / "run"), topology=PASSING)
    assert main(["gate", d]) == 0
    out = capsys.readouterr().out
    assert "✅ PASS — all 3 SLO checks hold" in out
    assert "| brownout (sim, seed 1) | fault availability | fault | 90.00 % | ≥ 85.00 % |" in out


def test_gate_fails_with_exit_1_and_junit_names_value_and_limit(results, tmp_path, capsys):
    junit = str(tmp_path / "slo.xml")
    assert main(["gate", results, "--junit", junit]) == 1
    out = capsys.readouterr().out
    assert "❌ FAIL — 1 of 6 SLO checks violated (1 not applicable)" in out
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "6" and root.get("failures") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["mini/baseline (sim, seed 1)",
                                              "mini/brownout (sim, seed 1)"]
    cases = suites[1].findall("testcase")
    assert len(cases) == 3
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1
    message = failed[0].find("failure").get("message")
    assert message == "availability = 90.00 %, limit min 95.00 % (fault window)"
    assert failed[0].get("classname") == "faultmesh.mini.brownout"


def test_fault_window_slos_do_not_apply_to_a_run_without_faults(results, tmp_path, capsys):
    junit = str(tmp_path / "base.xml")
    assert main(["gate", results, "--scenario", "baseline", "--junit", junit]) == 0
    out = capsys.readouterr().out
    assert "| baseline (sim, seed 1) | fault availability | fault | n/a | ≥ 95.00 % | ➖ n/a |" in out
    case = [c for c in ET.parse(junit).getroot().iter("testcase")
            if c.get("name").startswith("fault availability")][0]
    assert case.find("skipped").get("message") == "not applicable: the run has no fault window"


def test_gate_one_scenario_of_a_directory(results, capsys):
    assert main(["gate", results, "--scenario", "baseline"]) == 0
    assert main(["gate", results, "--scenario", "brownout"]) == 1
    capsys.readouterr()
    assert main(["gate", results, "--scenario", "nope"]) == 2
    assert "no result of scenario 'nope' (found: baseline, brownout)" in capsys.readouterr().err


def test_gate_filters_by_engine(results, capsys):
    assert main(["gate", results, "--engine", "sim"]) == 1
    assert main(["gate", results, "--engine", "live"]) == 2
    assert "no live results here" in capsys.readouterr().err


def test_gate_appends_markdown_to_github_step_summary(results, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["gate", results]) == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n### faultmesh gate: ❌ FAIL")
    assert text.count("| sim") == 0 and text.count("(sim, seed 1)") == 6


def test_gate_bad_input_exits_2(tmp_path, capsys):
    assert main(["gate", str(tmp_path / "missing")]) == 2
    assert "no such topology file or result directory" in capsys.readouterr().err
    os.makedirs(tmp_path / "empty")
    assert main(["gate", str(tmp_path / "empty")]) == 2
    assert "no summary.json here" in capsys.readouterr().err
    calm = write_run(str(tmp_path / "calm"), topology=MINI_TOPOLOGY.split("slos:")[0])
    assert main(["gate", calm]) == 2
    assert "defines no slos" in capsys.readouterr().err
    broken = write_run(str(tmp_path / "broken"))
    open(os.path.join(broken, "requests.csv"), "w").write("start\n1\n")
    assert main(["gate", broken]) == 2
    err = capsys.readouterr().err
    assert "requests.csv: missing column(s)" in err and "Traceback" not in err


def test_gate_runs_the_simulator_on_a_topology(tmp_path, capsys):
    # simulator is imported at the top: a broken simulator fails this module, never skips it
    assert callable(simulator.simulate)
    topo = tmp_path / "mini.yaml"
    topo.write_text(PASSING)
    out = tmp_path / "out"
    junit = tmp_path / "slo.xml"
    code = main(["gate", str(topo), "--scenario", "all", "--out", str(out), "--seed", "3",
                 "--junit", str(junit)])
    assert code in (0, 1)
    assert sorted(os.listdir(out)) == ["baseline", "brownout"]
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "6"
    assert code == (1 if int(root.get("failures")) else 0)
