"""The ``faultmesh sim`` command: result directories, scenarios, replications, errors."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from faultmesh.cli import main

TOPO = textwrap.dedent("""\
    version: 1
    name: clitest
    entry: a
    workload: {model: open, rate: 20, duration: 30, warmup: 5}
    services:
      a: {latency: {dist: exponential, mean: 5ms}, calls: [{to: b, timeout: 1s}]}
      b: {replicas: 2, latency: {dist: exponential, mean: 10ms}, cost: {per_replica_hour: 1}}
    scenarios:
      b-down: {faults: [{type: down, target: b, start: 10s, duration: 5s}]}
""")


@pytest.fixture()
def topo_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    return str(path)


def test_sim_writes_result_directory_and_prints_summary(topo_file, tmp_path, capsys):
    out = str(tmp_path / "r")
    code = main(["sim", topo_file, "--scenario", "b-down", "--seed", "3", "--out", out,
                 "--no-report", "--set", "services.b.replicas=3", "--rate", "10/s",
                 "--duration", "20s"])
    assert code == 0
    for name in ("summary.json", "requests.csv", "calls.csv", "timeseries.csv", "faults.csv",
                 "topology.yaml"):
        assert os.path.exists(os.path.join(out, name))
    s = json.load(open(os.path.join(out, "summary.json")))
    assert (s["engine"], s["scenario"], s["seed"], s["duration"]) == ("sim", "b-down", 3, 20.0)
    assert s["availability"] < 1
    assert s["cost"]["by_service"]["b"] == pytest.approx(3 * 15 / 3600)
    assert "b-down" in capsys.readouterr().out


def test_sim_all_scenarios_and_replications(topo_file, tmp_path, capsys):
    out = str(tmp_path / "all")
    assert main(["sim", topo_file, "--scenario", "all", "--replications", "2", "--out", out,
                 "--no-report"]) == 0
    assert sorted(os.listdir(out)) == ["b-down", "baseline"]
    agg = json.load(open(os.path.join(out, "b-down", "replications.json")))
    assert agg["runs"] == 2 and agg["seeds"] == [0, 1]
    f = agg["figures"]["availability"]
    assert f["low"] <= f["mean"] <= f["high"]
    assert os.path.exists(os.path.join(out, "baseline", "seed-1", "calls.csv"))
    assert "ci" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("argv", [
    ["--scenario", "nope"], ["--set", "services.zz.replicas=2"], ["--duration", "soon"],
    ["--replications", "0"], ["--set", "novalue"],
])
def test_sim_bad_input_exits_2_without_traceback(topo_file, tmp_path, capsys, argv):
    assert main(["sim", topo_file, "--out", str(tmp_path / "x"), "--no-report", *argv]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_sim_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_sim_exits_1_and_names_the_violated_slo(tmp_path, capsys):
    """The documented exit codes: 1 when an SLO failed. The bundled RAG chat's brownout breaks its
    fault-window median SLO while its baseline holds every SLO."""
    rag = os.path.join(os.path.dirname(__file__), "..", "topologies", "rag-chat.yaml")
    assert main(["sim", rag, "--out", str(tmp_path / "b"), "--no-report"]) == 0
    code = main(["sim", rag, "--scenario", "llm-brownout", "--out", str(tmp_path / "f"),
                 "--no-report"])
    assert code == 1
    assert "SLOs violated (exit 1): llm-brownout: chat median during faults" in \
        capsys.readouterr().out
