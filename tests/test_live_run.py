"""``faultmesh live`` end to end on 127.0.0.1: a gateway calling a backend, 20 requests/s for
6 s, and a 200 ms latency fault on the backend for 2 s.

What is measured: every result file is written with the documented columns (docs/results.md); ~120 requests are
sent (Poisson, so counts are checked to +-40%); availability is ~1; requests that start and
end inside the fault's actual window (from faults.csv) are at least 0.2 s slower than the
steady ones (p99 in the window versus the steady median, and median versus median minus
10 ms of slack for the proxy and the clocks); ``reports.finalize`` reads the directory; and
no emulator process of the run is left afterwards. About 10 s.
"""

from __future__ import annotations

import json
import os
import statistics

import pytest
from live_helpers import leftovers, live_cli, rows
from procs import listening_ports

from faultmesh.cli import main

TOPOLOGY = """\
version: 1
name: two-tier
entry: gateway
workload: {model: open, rate: 20/s, duration: 6s, warmup: 1s}
services:
  gateway:
    workers: 8
    latency: {dist: constant, value: 5ms}
    calls:
      - {to: backend, timeout: 2s}
    cost: {per_replica_hour: 0.10}
  backend:
    workers: 8
    latency: {dist: constant, value: 10ms}
    cost: {per_replica_hour: 0.20}
scenarios:
  slow-backend:
    faults:
      - {type: latency, target: backend, start: 2s, duration: 2s, latency: 200ms}
slos:
  - {metric: availability, min: 99%}
"""

COLUMNS = {
    "requests.csv": ["request_id", "start", "end", "latency", "status", "ok", "degraded",
                     "attempts", "error"],
    "calls.csv": ["request_id", "caller", "callee", "replica", "attempt", "start", "end",
                  "status", "ok", "error", "ttft", "tpot", "output_tokens"],
    "timeseries.csv": ["t", "service", "replicas", "ready_replicas", "busy", "queued",
                       "utilization", "throughput", "errors", "batch"],
    "faults.csv": ["type", "target", "start", "end", "parameters"],
}






@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    return live_cli(tmp_path_factory.mktemp("live"), "two-tier.yaml", TOPOLOGY, "slow-backend")


@pytest.mark.slow
def test_live_run_writes_the_result_directory(run: tuple[int, str, str]) -> None:
    rc, output, out = run
    assert rc == 0, output
    assert "\nslow-backend live " in output  # its row in the run table sim prints too
    for name, columns in COLUMNS.items():
        with open(os.path.join(out, name), encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
        assert header[:len(columns)] == columns, name
    assert os.path.exists(os.path.join(out, "topology.yaml"))
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["engine"] == "live"
    assert summary["topology"] == "two-tier" and summary["scenario"] == "slow-backend"
    assert summary["partial"] is False
    assert 60 <= summary["requests"] <= 140          # 5 s x 20/s, Poisson
    assert summary["availability"] >= 0.98
    for key in ("mean", "p50", "p90", "p95", "p99", "p999", "max"):
        assert summary["latency"][key] is not None
    assert set(summary["cost"]["by_service"]) == {"gateway", "backend"}
    assert summary["cost"]["total"] > 0
    assert summary["services"]["backend"]["calls"] > 0
    calls = rows(os.path.join(out, "calls.csv"))
    edges = {(c["caller"], c["callee"]) for c in calls}
    assert edges == {("client", "gateway"), ("gateway", "backend")}
    ts = rows(os.path.join(out, "timeseries.csv"))
    assert {r["service"] for r in ts} == {"gateway", "backend"}
    assert all(r["replicas"] == "1" for r in ts)


@pytest.mark.slow
def test_the_fault_slows_requests_in_its_actual_window(run: tuple[int, str, str]) -> None:
    rc, output, out = run
    assert rc == 0, output
    faults = rows(os.path.join(out, "faults.csv"))
    assert len(faults) == 1
    f = faults[0]
    assert (f["type"], f["target"]) == ("latency", "backend")
    start, end = float(f["start"]), float(f["end"])
    assert 1.9 <= start <= 2.4 and 1.9 <= end - start <= 2.2
    assert json.loads(f["parameters"])["latency"] == pytest.approx(0.2)
    reqs = [r for r in rows(os.path.join(out, "requests.csv")) if r["ok"] in ("True", "1")]
    during = [float(r["latency"]) for r in reqs
              if float(r["start"]) >= start + 0.05 and float(r["end"]) <= end]
    steady = [float(r["latency"]) for r in reqs if float(r["start"]) >= 1.0
              and (float(r["end"]) < start or float(r["start"]) > end + 0.3)]
    assert len(during) >= 15 and len(steady) >= 30
    p99 = statistics.quantiles(during, n=100)[98]
    assert p99 >= statistics.median(steady) + 0.2
    assert statistics.median(during) >= statistics.median(steady) + 0.19


@pytest.mark.slow
def test_finalize_reads_it_and_nothing_is_left(run: tuple[int, str, str]) -> None:
    import reports

    rc, output, out = run
    assert rc == 0, output
    summary = reports.finalize(out)
    assert [s["pass"] for s in summary["slos"]] == [True]
    assert leftovers(out) == []   # no emulator, load worker, proxy or listening port


def test_runtime_mismatches_and_unknown_scenario_are_usage_errors(tmp_path, capsys) -> None:
    """What a runtime cannot run is refused before anything starts (exit 2, one line): a
    container fault on processes, a command:-only service in containers."""
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    with pytest.raises(SystemExit) as exc:
        main(["live", str(topo), "--runtime", "podman"])
    assert exc.value.code == 2
    capsys.readouterr()
    lossy = tmp_path / "lossy.yaml"
    lossy.write_text(TOPOLOGY.replace("scenarios:\n", "scenarios:\n  lossy:\n    faults:\n"
                                      "      - {type: loss, target: backend, start: 1s, "
                                      "duration: 1s, probability: 0.1}\n"))
    assert main(["live", str(lossy), "--scenario", "lossy", "--out", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert "acts on containers: run it with --runtime docker" in err and len(err.splitlines()) == 1
    assert main(["live", "examples/rag-real/retriever-only.yaml", "--runtime", "docker",
                 "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "gives only command:; run it with --runtime process or give image:" in err
    assert main(["live", str(topo), "--scenario", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_gate_runs_a_topology_on_the_live_engine(tmp_path, capsys) -> None:
    """`faultmesh gate TOPOLOGY --engine live` runs the scenario live and judges its SLOs from
    the live result directory (JUnit names the engine)."""
    listening_before = listening_ports(os.getpid())
    from faultmesh.cli import main

    topo = tmp_path / "two-tier.yaml"
    topo.write_text(TOPOLOGY.replace("duration: 6s", "duration: 3s"))
    junit = tmp_path / "slo.xml"
    code = main(["gate", str(topo), "--engine", "live", "--scenario", "baseline", "--out",
                 str(tmp_path / "runs"), "--junit", str(junit)])
    assert code == 0, capsys.readouterr()
    summary = json.loads((tmp_path / "runs" / "baseline" / "summary.json").read_text())
    assert summary["engine"] == "live" and summary["slos"][0]["pass"] is True
    assert "live" in junit.read_text()
    # run in this process: nothing it started is left, and it listens on no new port
    assert leftovers(str(tmp_path), parent=os.getpid()) == []
    assert listening_ports(os.getpid()) <= listening_before


def test_open_load_gives_users_room_for_the_slowest_answer() -> None:
    """users >> rate x latency: the load's headroom is bounded from the calls' timeouts and
    retries, so an LLM path (30 s x 2 tries) gets the cap, a fast topology the floor."""
    import topologies
    from chaos.live import answer_time_bound

    rag = topologies.load(os.path.join(os.path.dirname(__file__), "..", "topologies",
                                       "rag-chat.yaml"))
    assert answer_time_bound(rag) == 60.0
    two_tier = topologies.loads(TOPOLOGY)
    assert answer_time_bound(two_tier) == 1.0 + 2.0  # gateway 1 s + backend via 2 s timeout
    assert answer_time_bound(two_tier, cap=2.5) == 2.5


@pytest.mark.skipif(__import__("chaos.dockercli").dockercli.unavailable() is not None,
                    reason="no Docker engine")
def test_a_memory_fault_that_would_hold_too_much_real_memory_is_refused(tmp_path, capsys):
    """Under a memory fault the docker runtime's emulators hold their model's memory for
    real: 3 replicas x 6 GiB on this machine is refused up front (exit 3, one line), before
    any container starts."""
    from chaos.dockercli import RUN_LABEL, docker

    before = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}").stdout.split()
    code = main(["live", "topologies/recommender.yaml", "--runtime", "docker", "--scenario",
                 "candidate-gen-memory-limit", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 3 and len(err.strip().splitlines()) == 1, err
    assert "held for real by candidate-gen" in err and "GiB" in err
    assert docker("ps", "-aq", "--filter", f"label={RUN_LABEL}").stdout.split() == before
