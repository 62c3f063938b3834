"""A live run starts the replicas of services whose callees are wired together.

* ``service_levels`` groups every bundled topology's services so that each service's callees
  are all in earlier groups (what lets a group's replicas start at once), and no later than
  needed (a service sits right after its deepest callee).
* A real run whose first group holds three emulated replicas and a program that exits at once:
  the run stops with exit 3 naming the program and its output, and none of the replicas that
  did come up is left running (each entered the book as it came up, so the teardown found it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from live_helpers import leftovers, live_cli

import topologies
from chaos.live.wiring import callees, service_levels

BUNDLED = sorted(Path(__file__).resolve().parent.parent.joinpath("topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_every_service_starts_after_all_its_callees_and_no_later(path: Path) -> None:
    topology = topologies.load(str(path))
    groups = service_levels(topology)
    level = {name: n for n, group in enumerate(groups) for name in group}
    assert sorted(level) == sorted(topology.services)  # each service exactly once
    assert sum(len(g) for g in groups) == len(topology.services)
    for name, n in level.items():
        below = [level[c] for c in callees(topology, name)]
        assert all(m < n for m in below), (name, below)
        assert n == (max(below) + 1 if below else 0), name
    assert len(groups) > 1  # every bundled topology calls something


TOPOLOGY = """\
version: 1
name: startup
entry: gateway
workload: {{model: open, rate: 10/s, duration: 4s}}
services:
  gateway:
    replicas: 2
    calls:
      - {{to: backend, timeout: 1s}}
      - {{to: broken, timeout: 1s}}
  backend:
    replicas: 3
    latency: {{dist: constant, value: 2ms}}
  broken:
    command: {command}
    health: /healthz
"""


@pytest.mark.slow
def test_a_replica_failing_among_others_started_together_stops_the_run_and_leaves_nothing(
        tmp_path: Path) -> None:
    command = json.dumps([sys.executable, "-c",
                          "import time; time.sleep(0.3); print('no model weights'); "
                          "raise SystemExit(5)"])
    code, output, out = live_cli(tmp_path, "startup.yaml", TOPOLOGY.format(command=command),
                                 None, timeout=60)
    assert code == 3, output
    assert "exited with 5" in output and "no model weights" in output, output
    assert "Traceback" not in output
    assert leftovers(out) == []
