"""``faultmesh live`` with the emulator's and the processes' faults, on 127.0.0.1: a gateway
calling two backend replicas at 40 requests/s for 6 s, while the backend answers half its
requests with 503 (``errors``, 1 s), then one backend replica is SIGKILLed (``kill``,
restarted after 1 s on the same port), then the gateway is frozen (``pause``, 0.5 s).

What is measured: faults.csv holds the three actual windows; the 503 answers all fall in the
errors window; requests fail while a replica is dead and the restarted replica serves again;
requests sent during the pause wait for it; the killed replica still exists while it restarts
(timeseries ``replicas`` stays 2, ``ready_replicas`` drops to 1) and costs as in the simulator
(2 replica-seconds per second of the window); no emulator process of the run is left.
About 12 s.
"""

from __future__ import annotations

import json
import os

import pytest
from live_helpers import leftovers, live_cli, rows

# a live run with faults in their windows (~8 s): CI runs it, the quick loop does not
pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: faulty
entry: gateway
workload: {model: open, rate: 40/s, duration: 6s, warmup: 0.5s}
services:
  gateway:
    workers: 8
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 1s}
  backend:
    replicas: 2
    workers: 8
    restart: 1s
    latency: {dist: constant, value: 5ms}
    cost: {per_replica_hour: 3600}     # 1 USD per replica-second
scenarios:
  mixed:
    faults:
      - {type: errors, target: backend, start: 1s, duration: 1s, rate: 0.5, status: 503}
      - {type: kill, target: backend, replicas: 1, start: 3s}
      - {type: pause, target: gateway, start: 4.5s, duration: 0.5s}
"""






@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    return live_cli(tmp_path_factory.mktemp("livefaults"), "faulty.yaml", TOPOLOGY, "mixed")


def test_faults_ran_in_their_windows(run: tuple[int, str, str]) -> None:
    rc, output, out = run
    assert rc == 0, output
    faults = {f["type"]: f for f in rows(os.path.join(out, "faults.csv"))}
    assert set(faults) == {"errors", "kill", "pause"}
    win = {k: (float(f["start"]), float(f["end"])) for k, f in faults.items()}
    assert 0.9 <= win["errors"][0] <= 1.4 and 0.9 <= win["errors"][1] - win["errors"][0] <= 1.2
    # the restarted replica listens from exactly `restart` (1 s) after the kill on
    assert 2.9 <= win["kill"][0] <= 3.4 and 1.0 <= win["kill"][1] - win["kill"][0] <= 1.6
    assert 4.4 <= win["pause"][0] <= 4.9 and 0.4 <= win["pause"][1] - win["pause"][0] <= 0.7
    assert json.loads(faults["errors"]["parameters"]) == {"rate": 0.5, "status": 503}

    requests = rows(os.path.join(out, "requests.csv"))
    e0, e1 = win["errors"]
    failed_503 = [float(r["start"]) for r in requests if r["status"] == "503"]
    assert len(failed_503) >= 5
    assert all(e0 - 0.05 <= s <= e1 + 0.05 for s in failed_503)
    k0, k1 = win["kill"]
    during_kill = [r for r in requests if k0 + 0.05 <= float(r["start"]) < k1 - 0.05]
    assert sum(r["ok"] not in ("True", "1") for r in during_kill) >= 3
    p0, p1 = win["pause"]
    paused = [float(r["latency"]) for r in requests
              if p0 + 0.05 <= float(r["start"]) < p1 - 0.2 and r["latency"]]
    assert paused and max(paused) >= 0.25
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert 0.5 < summary["availability"] < 0.97


def test_killed_replica_restarts_and_is_counted(run: tuple[int, str, str]) -> None:
    rc, output, out = run
    assert rc == 0, output
    kill = next(f for f in rows(os.path.join(out, "faults.csv")) if f["type"] == "kill")
    k1 = float(kill["end"])
    calls = rows(os.path.join(out, "calls.csv"))
    after = [c for c in calls if c["callee"] == "backend" and c["replica"] == "0"
             and float(c["start"]) > k1 + 0.1 and c["status"] == "200"]
    assert after, "the restarted replica served no call"
    ts = [r for r in rows(os.path.join(out, "timeseries.csv")) if r["service"] == "backend"]
    assert {int(r["replicas"]) for r in ts} == {2}
    ready = {int(r["t"]): int(r["ready_replicas"]) for r in ts}
    assert ready[0] == 2 and 1 in ready.values()
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    window = summary["duration"] - summary["warmup"]
    assert summary["cost"]["by_service"]["backend"] == pytest.approx(2 * window, rel=0.01)
    assert leftovers(out) == []   # no emulator, load worker, proxy or listening port
