"""`faultmesh sweep`: a grid of overrides run as Dask tasks gives, per point, exactly the run
`faultmesh sim` would give, and bad grid values are refused before anything runs."""

from __future__ import annotations

import csv
import json
import socket

import pytest
from conftest import BASE

import faultmesh
from faultmesh.cli import main
from faultmesh.sweep import parse_grid, sweep_points
from topologies import TopologyError, UsageError

SMALL = BASE.replace("duration: 60s", "duration: 30s")


@pytest.fixture
def topo_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    return str(path)


def test_grid_values_split_on_commas_outside_brackets():
    assert parse_grid(["services.llm.replicas=1,2,3", "workload.profile=[{at: 0, rate: 1},"
                       "{at: 5, rate: 2}],[{at: 0, rate: 3}]"]) == {
        "services.llm.replicas": ["1", "2", "3"],
        "workload.profile": ["[{at: 0, rate: 1},{at: 5, rate: 2}]", "[{at: 0, rate: 3}]"]}
    with pytest.raises(UsageError):
        parse_grid(["services.llm.replicas"])
    with pytest.raises(UsageError):
        parse_grid(["a=1", "a=2"])


def test_every_point_is_validated_before_anything_runs():
    topo = faultmesh.loads(SMALL)
    with pytest.raises(TopologyError, match="must be at least 0"):
        sweep_points(topo, {"services.llm.replicas": ["1", "-1"]}, None, [0])
    points = sweep_points(topo, {"services.llm.replicas": ["1", "2"]}, "all", [0, 1])
    assert len(points) == 2 * 2 * 2  # values x (baseline + brownout) x seeds


@pytest.mark.slow
def test_sweep_on_a_local_cluster_matches_single_runs(topo_file, tmp_path, capfd):
    out = tmp_path / "sweep"
    code = main(["sweep", topo_file, "--set", "services.llm.replicas=1,3", "--scenario",
                 "brownout", "--workers", "2", "--out", str(out), "--no-report"])
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    # both points break the topology's one SLO (availability >= 99 %): exit 1, as sim gives
    # for a violated SLO
    assert [(r["slos_passed"], r["slos_failed"]) for r in rows] == [("0", "1"), ("0", "1")]
    assert code == 1
    assert [r["services.llm.replicas"] for r in rows] == ["1", "3"]
    # nothing of Dask's own logging reaches the user, from this process or its workers: each
    # worker said "Connection ... has been closed" at every sweep's end, and a nanny once
    # logged its cancelled close with a traceback
    err = capfd.readouterr().err
    assert "distributed." not in err and "Traceback" not in err, err
    assert all(r["scenario"] == "brownout" and r["seed"] == "0" for r in rows)
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)  # the local cluster
    # the same point run directly gives the same figures, bit for bit
    topo = faultmesh.override(faultmesh.loads(SMALL), {"services.llm.replicas": 3})
    direct = faultmesh.simulate_run(topo, "brownout", str(tmp_path / "direct"), report=False)
    swept = json.loads(open(f"{rows[1]['directory']}/summary.json").read())
    assert swept["latency"] == direct["latency"] and swept["cost"] == direct["cost"]
    assert float(rows[1]["availability"]) == direct["availability"]


def test_sweep_runs_its_tasks_on_the_given_scheduler(topo_file, tmp_path):
    """A Dask cluster started here: its scheduler records every sweep task as done, and
    sweep.csv names its one worker for every run."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0", host="127.0.0.1") as cluster:
        workers = set(cluster.scheduler_info["workers"])
        out = tmp_path / "sweep"
        code = main(["sweep", topo_file, "--set", "workload.rate=5/s,10/s", "--scheduler",
                     cluster.scheduler_address, "--out", str(out)])
        # (key, from, to, ...) of every task state change on this scheduler
        done = {t[0] for t in cluster.scheduler.transition_log if t[2] == "memory"}
    assert len(workers) == 1
    assert {"faultmesh-0-rate=5-s/baseline/seed-0", "faultmesh-1-rate=10-s/baseline/seed-0"} \
        <= done
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert {r["worker"] for r in rows} == workers
    assert [(r["slos_passed"], r["slos_failed"]) for r in rows] == [("0", "1"), ("0", "1")]
    assert code == 1
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["workload.rate"] for r in runs] == ["5/s", "10/s"]
    assert runs[0]["requests"] < runs[1]["requests"]
    html = (out / "report.html").read_text()
    assert "rate=5-s" in html and "rate=10-s" in html


@pytest.mark.slow   # the client waits out its 20 s connect timeout
def test_an_unreachable_scheduler_exits_3(topo_file, tmp_path, capsys):
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["sweep", topo_file, "--set", "workload.rate=5/s", "--scheduler",
                 f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "sweep")])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "Traceback" not in err


def test_every_bad_grid_point_is_reported_at_once(topo_file, capsys):
    code = main(["sweep", topo_file, "--set", "services.llm.replicas=-1,x,2"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert any("must be at least 0" in line for line in err)
    assert any("expected a whole number" in line for line in err)
