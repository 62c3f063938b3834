"""Ctrl-C and progress as a user at a terminal meets them: an interrupted `faultmesh sim`
still leaves its results, marked partial, and a long run shows how far it has got."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

LONG = """\
version: 1
name: long
entry: a
workload: {model: open, rate: 50/s, duration: 20000s, warmup: 0s}
services:
  a: {latency: {dist: exponential, mean: 4ms}, calls: [{to: b}]}
  b: {latency: {dist: exponential, mean: 4ms}}
"""


def _start(tmp_path, env=None):
    path = tmp_path / "long.yaml"
    path.write_text(LONG)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "sim", str(path), "--out",
                             str(out), "--no-report"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return proc, out


def test_ctrl_c_leaves_partial_results_and_exit_130(tmp_path):
    proc, out = _start(tmp_path)
    time.sleep(3.0)
    assert proc.poll() is None, "the run should still be going"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    assert 0 < summary["duration"] < 20000
    assert (out / "requests.csv").stat().st_size > 1000


def test_long_runs_show_progress_in_simulated_seconds(tmp_path):
    proc, out = _start(tmp_path, {"FAULTMESH_PROGRESS": "1"})
    time.sleep(3.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert "s simulated" in stderr and "[#" in stderr
