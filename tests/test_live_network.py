"""``faultmesh live`` with the network faults, on 127.0.0.1: a gateway calling two backend
replicas (64 KB answers, 500 ms call timeout) at 30 requests/s for 9 s, under ``down`` on the
edge, ``bandwidth`` 64 KB/s, ``timeout``, ``reset_peer`` and ``partition`` of one replica,
one second each, one after the other.

What is measured: each fault's failures appear in calls.csv only inside (or within 0.6 s
after, for the abandoned attempts) its actual window from faults.csv, with the outcome the
toxic produces: ``refused`` for down, ``timeout`` for bandwidth and timeout, ``reset`` for
reset_peer; the partition of replica 0 is a blackhole: attempts to it hang until the caller's
500 ms timeout (504 ``timeout`` after ~0.5 s, never ``refused`` at once) while replica 1
answers; no toxic was refused (summary notes). About 12 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from live_helpers import rows

# a whole live run with every network fault (~12 s): CI runs it, the quick loop does not
pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: net
entry: gateway
workload: {model: open, rate: 30/s, duration: 9s, warmup: 0.5s}
services:
  gateway:
    workers: 8
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 500ms}
  backend:
    replicas: 2
    workers: 8
    latency: {dist: constant, value: 5ms}
    response_size: 64KB
scenarios:
  net:
    faults:
      - {type: down, target: gateway->backend, start: 1s, duration: 1s}
      - {type: bandwidth, target: backend, start: 2.5s, duration: 1s, rate: 64KB/s}
      - {type: timeout, target: backend, start: 4s, duration: 1s, timeout: 0s}
      - {type: reset_peer, target: backend, start: 5.5s, duration: 1s}
      - {type: partition, target: backend, replicas: 1, start: 7s, duration: 1s}
"""




def test_network_faults_map_to_toxics(tmp_path) -> None:
    topo = tmp_path / "net.yaml"
    topo.write_text(TOPOLOGY)
    out = str(tmp_path / "result")
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo),
                           "--scenario", "net", "--out", out, "--no-report"],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        assert json.load(fh)["notes"] == []
    win = {f["type"]: (float(f["start"]), float(f["end"]))
           for f in rows(os.path.join(out, "faults.csv"))}
    assert list(win) == ["down", "bandwidth", "timeout", "reset_peer", "partition"]
    calls = [c for c in rows(os.path.join(out, "calls.csv")) if c["callee"] == "backend"]

    def failures(kind: str, error: str, replica: str | None = None) -> list[dict[str, str]]:
        a, b = win[kind]
        return [c for c in calls if c["error"] == error and a - 0.05 <= float(c["start"]) <= b
                and (replica is None or c["replica"] == replica)]

    assert len(failures("down", "refused")) >= 10
    assert len(failures("bandwidth", "timeout")) >= 10
    assert len(failures("timeout", "timeout")) >= 5
    assert len(failures("reset_peer", "reset")) >= 10
    cut = failures("partition", "timeout", "0")
    assert len(cut) >= 5
    assert all(c["status"] == "504" and float(c["end"]) - float(c["start"]) >= 0.45
               for c in cut)
    assert not failures("partition", "refused", "0")
    assert not failures("partition", "timeout", "1")
    # outside every window (+0.6 s for abandoned attempts and closing connections) all is well
    def outside(c: dict[str, str]) -> bool:
        t = float(c["start"])
        return all(not a - 0.05 <= t <= b + 0.6 for a, b in win.values())

    quiet = [c for c in calls if outside(c)]
    assert len(quiet) >= 30
    assert all(c["status"] == "200" for c in quiet)
