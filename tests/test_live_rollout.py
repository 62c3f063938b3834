"""``rollout`` in the live engine, on both runtimes: replicas replaced one batch at a time,
with and without surge, against the simulator's run of the same scenario.

Each test is a real ``faultmesh live`` run (12 s of load). The docker ones skip, with the
reason, where no Docker engine answers.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.dockercli import unavailable

pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: rollout
entry: gateway
workload: {model: open, rate: 30/s, duration: 12s, warmup: 1s}
services:
  gateway:
    workers: 16
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 1s}
  backend:
    replicas: 2
    workers: 4
    latency: {dist: constant, value: 20ms}
    cost: {per_replica_hour: 1.0}
scenarios:
  surge:
    faults:
      - {type: rollout, target: backend, start: 2s, batch: 1, startup: 2s}
  no-surge:
    faults:
      - {type: rollout, target: backend, start: 2s, batch: 1, startup: 2s, surge: false}
"""

_NO_DOCKER = unavailable()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _run(tmp_path: Path, engine: str, scenario: str, runtime: str = "process") -> Path:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    out = tmp_path / f"{engine}-{scenario}"
    cmd = [sys.executable, "-m", "faultmesh", engine, str(topo), "--scenario", scenario,
           "--out", str(out), "--no-report"]
    if engine == "live":
        cmd += ["--runtime", runtime]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "FAULTMESH_PROGRESS": "off"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _backend_levels(out: Path, a: float, b: float) -> tuple[float, float]:
    """(most replicas, fewest ready) of the backend in the whole seconds within [a, b)."""
    rows = [r for r in _rows(out / "timeseries.csv")
            if r["service"] == "backend" and a <= float(r["t"]) < b]
    return (max(float(r["replicas"]) for r in rows),
            min(float(r["ready_replicas"]) for r in rows))


_DOCKER = pytest.mark.skipif(_NO_DOCKER is not None, reason=f"no Docker engine: {_NO_DOCKER}")


# both scenarios on processes; containers take the same code path once started (the surge
# one, which also starts replicas beyond the initial count, is enough there)
@pytest.mark.parametrize(("runtime", "scenario"), [
    ("process", "surge"), ("process", "no-surge"),
    pytest.param("docker", "surge", marks=_DOCKER),
])
def test_rollout_replaces_every_replica_as_the_simulator_does(tmp_path, runtime,
                                                              scenario) -> None:
    live = _run(tmp_path, "live", scenario, runtime)
    sim = _run(tmp_path, "sim", scenario)
    (row,) = _rows(live / "faults.csv")
    (sim_row,) = _rows(sim / "faults.csv")
    # the window is the actual rollout: two batches of a 2 s startup each, as simulated
    assert float(row["start"]) == pytest.approx(float(sim_row["start"]), abs=0.3)
    assert float(row["end"]) == pytest.approx(float(sim_row["end"]), abs=0.6)
    most, fewest = _backend_levels(live, 3, 6)
    if scenario == "surge":  # one new replica on top, none out of the balancer
        assert (most, fewest) == (3, 2)
    else:                    # one old one stopped first: one short until the new one serves
        assert (most, fewest) == (2, 1)
    assert _backend_levels(live, 7, 11) == (2, 2)
    assert (most, fewest) == _backend_levels(sim, 3, 6)
    # the simulator loses none, nor does live: a caller's idle keep-alive connection whose
    # replica left is moved to the new one by the relay, not closed under a request
    requests = _rows(live / "requests.csv")
    lost = [r for r in requests if r["ok"] != "True"]
    assert requests and not lost, lost
    # the new replicas (index 2 and 3) serve at the end; the old ones (0 and 1) have stopped
    served: dict[int, float] = {}
    for k in range(4):
        ts = _rows(live / "live-logs" / f"backend-{k}.csv.ts.csv")
        served[k] = sum(float(r["throughput"]) for r in ts[-3:]) if ts else 0.0
    assert served[2] > 0 and served[3] > 0, served
    for k in (0, 1):
        ts = _rows(live / "live-logs" / f"backend-{k}.csv.ts.csv")
        assert float(ts[-1]["t"]) < float(_rows(live / "live-logs" /
                                                "backend-3.csv.ts.csv")[-1]["t"])
