"""Callers of a relayed service balance and eject per replica, not per relay slot.

An autoscaled ``api`` (2 replicas, max 5) is reached through 5 relay slots: slots 0, 2, 4
lead to replica 0 and slots 1, 3 to replica 1. Told which replica each slot leads to
(``PUT /_faultmesh/members``), the gateway's round robin alternates between the two replicas
as the simulator's does (per slot, replica 0 got 3 calls in 5), and outlier detection ejects
a killed replica after ``consecutive_failures`` refusals in all, not that many per slot (the
router small-llm-crash gap of docs/live.md: a killed replica's three slots were ejected one
by one, and re-admitted one by one).

Real ``faultmesh live`` runs (about 10 s each), and the simulator on the same scenario.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from live_helpers import leftovers, live_cli, rows

pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: owners
entry: gateway
workload: {model: open, rate: 40/s, duration: 6s, warmup: 0s}
services:
  gateway:
    workers: 64
    calls:
      - to: api
        timeout: 2s
        retry: {attempts: 2, backoff: constant, base: 10ms, on: [refused]}
        outlier_detection: {consecutive_failures: 3, ejection: 60s}
  api:
    replicas: 2
    workers: 8
    balancer: round_robin
    restart: 60s
    latency: {dist: constant, value: 10ms}
    autoscale: {metric: utilization, target: 0.99, min: 2, max: 5, interval: 60s,
                cold_start: 1s, cooldown: 60s}
scenarios:
  kill:
    faults:
      - {type: kill, target: api, replicas: 1, start: 2s}
"""


def _calls(out: str) -> list[dict[str, str]]:
    return [r for r in rows(os.path.join(out, "calls.csv")) if r["callee"] == "api"]


def test_round_robin_alternates_between_replicas_not_slots(tmp_path: Path) -> None:
    code, output, out = live_cli(tmp_path, "owners.yaml", TOPOLOGY, None)
    assert code == 0, output
    calls = _calls(out)
    # the replica is logged, not the slot (slots 2, 3, 4 were logged as such before)
    assert {r["replica"] for r in calls} == {"0", "1"}
    to_first = sum(1 for r in calls if r["replica"] == "0")
    assert len(calls) > 150
    assert to_first / len(calls) == pytest.approx(0.5, abs=0.04), (to_first, len(calls))
    assert not leftovers(out)


def test_a_killed_replica_is_ejected_once_not_once_per_slot(tmp_path: Path) -> None:
    code, output, out = live_cli(tmp_path, "owners.yaml", TOPOLOGY, "kill")
    assert code in (0, 1), output
    # three failed attempts eject the replica (a call or two more may have been on their
    # way); live, those on connections the kill cut are resets, later ones refusals
    failed = [r for r in _calls(out) if r["error"]]
    assert 3 <= len(failed) <= 5, [(r["replica"], r["start"], r["error"]) for r in failed]
    # the simulator, on the same scenario: the same three
    sim = tmp_path / "sim"
    done = subprocess.run([sys.executable, "-m", "faultmesh", "sim",
                           str(tmp_path / "owners.yaml"), "--scenario", "kill", "--out",
                           str(sim), "--no-report"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    sim_failed = [r for r in _calls(str(sim)) if r["error"]]
    assert len(sim_failed) == 3 and {r["error"] for r in sim_failed} == {"refused"}
    assert not leftovers(out)
