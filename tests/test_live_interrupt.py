"""Ctrl-C during ``faultmesh live``: exit 130, the results collected so far are written and
marked partial (over the time the run reached), and no emulator process is left. About 6 s."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from live_helpers import leftovers, run_ports

TOPOLOGY = """\
version: 1
name: stopped
entry: gateway
workload: {model: open, rate: 20/s, duration: 30s, warmup: 0.5s}
services:
  gateway:
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 1s}
  backend:
    latency: {dist: constant, value: 5ms}
"""




@pytest.mark.slow  # seconds of real load or simulated time: out of the quick loop
def test_ctrl_c_writes_a_partial_result_and_leaves_nothing(tmp_path) -> None:
    topo = tmp_path / "stopped.yaml"
    topo.write_text(TOPOLOGY)
    out = str(tmp_path / "result")
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "live", str(topo),
                             "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        log = os.path.join(out, "live-logs", "gateway-0.csv")
        while time.monotonic() < deadline:  # wait for calls to flow, then 1.5 s more
            if os.path.exists(log) and os.path.getsize(log) > 200:
                break
            time.sleep(0.1)
        time.sleep(1.5)
        ports = run_ports(proc.pid)   # proxies, relays, emulators: all must close
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "partial" in stderr
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["partial"] is True
    assert summary["engine"] == "live"
    assert 0 < summary["duration"] < 30
    assert summary["requests"] > 0
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        assert "<b>Partial run</b>: interrupted at" in fh.read()  # the report says so
    with open(os.path.join(out, "timeseries.csv"), encoding="utf-8", newline="") as fh:
        ts = list(csv.DictReader(fh))
    assert ts and max(int(r["t"]) for r in ts) < summary["duration"] + 1
    assert ports
    assert leftovers(out, parent=proc.pid, ports=ports) == []
