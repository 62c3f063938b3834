"""Progress on stderr, as a user or a CI log meets it (faultmesh/progress.py, docs/cli.md).

Every command runs as a real child process: ``FAULTMESH_PROGRESS=lines`` gives plain lines
(one at the start, one every ``FAULTMESH_PROGRESS_EVERY`` seconds, one at the end), ``off``
gives none, ``bar`` and ``auto`` on a pseudo-terminal draw rich's live display. stdout (the
tables and the results line) is the same whatever the mode.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import quick_first

# ~75k simulated requests: a second or more of wall time, so periodic lines come
LONG = """\
version: 1
name: long
entry: a
workload: {model: open, rate: 50/s, duration: 1500s, warmup: 0s}
services:
  a: {latency: {dist: exponential, mean: 4ms}, calls: [{to: b}]}
  b: {latency: {dist: exponential, mean: 4ms}}
scenarios:
  slow-b: {faults: [{type: latency, target: b, start: 100s, duration: 100s, latency: 50ms}]}
"""

LIVE = """\
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
  backend:
    workers: 8
    latency: {dist: constant, value: 10ms}
scenarios:
  half-errors:
    faults:
      - {type: errors, target: backend, start: 1s, duration: 4s, rate: 0.5}
"""

SIM_LINE = re.compile(r"^sim long/baseline seed 0: ([0-9,]+)/1,500 s simulated \(\d+%\), "
                      r"([0-9,]+) requests \[[0-9.]+s\]$", re.M)


def _faultmesh(args: list[str], mode: str | None, every: str = "0.2",
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTMESH_PROGRESS")}
    if mode is not None:
        env.update(FAULTMESH_PROGRESS=mode, FAULTMESH_PROGRESS_EVERY=every)
    return subprocess.run([sys.executable, "-m", "faultmesh", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def long_topology(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "long.yaml"
    path.write_text(LONG)
    return path


@pytest.mark.slow  # seconds of real load or simulated time: out of the quick loop
def test_sim_in_lines_mode_prints_simulated_time_and_requests_periodically(long_topology,
                                                                          tmp_path):
    out = str(tmp_path / "r")
    lines = _faultmesh(["sim", str(long_topology), "--out", out, "--no-report"], "lines")
    assert lines.returncode == 0, lines.stderr
    err = lines.stderr
    assert err.startswith("sim long/baseline seed 0: started ["), err
    periodic = [(int(t.replace(",", "")), int(n.replace(",", "")))
                for t, n in SIM_LINE.findall(err)]
    assert len(periodic) >= 2, err              # a period of 0.2 s over a run of seconds
    assert periodic == sorted(periodic)          # simulated time and requests only grow
    assert periodic[0][0] < 1500 and periodic[0][1] > 0
    assert re.search(r"^sim long/baseline seed 0: done, 1,500/1,500 s simulated \(100%\), "
                     r"[0-9,]+ requests \[", err, re.M), err
    assert "\x1b[" not in err                    # plain text for a log

    off = _faultmesh(["sim", str(long_topology), "--out", out, "--no-report"], "off")
    assert off.returncode == 0 and off.stderr == ""
    # progress is on stderr only: the table and the results line do not change
    assert off.stdout == lines.stdout and "requests" in off.stdout


@pytest.mark.slow
def test_the_period_comes_from_the_environment(long_topology, tmp_path):
    """With the default 10 s a run of well under a second prints its start and end, nothing
    between: the periodic lines above come from FAULTMESH_PROGRESS_EVERY."""
    proc = _faultmesh(["sim", str(long_topology), "--out", str(tmp_path / "r"), "--no-report",
                       "--duration", "300s"], "lines", every="")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.splitlines()) == 2, proc.stderr
    assert "s simulated (" not in proc.stderr.splitlines()[0]


@pytest.mark.parametrize("variable, value", quick_first([("FAULTMESH_PROGRESS", "sometimes"),
                                                         ("FAULTMESH_PROGRESS_EVERY", "0"),
                                                         ("FAULTMESH_PROGRESS_EVERY", "soon")]))
def test_a_bad_setting_is_bad_input(long_topology, tmp_path, variable, value):
    env = {**os.environ, "FAULTMESH_PROGRESS": "lines", variable: value}
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "sim", str(long_topology),
                           "--out", str(tmp_path / "r"), "--duration", "10s", "--no-report"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and variable in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _on_a_terminal(args: list[str], mode: str) -> tuple[int, str, str]:
    """Run faultmesh with stderr on a pseudo-terminal (stdout a pipe); its exit code, what
    the terminal showed and stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTMESH_PROGRESS")}
    env.update(FAULTMESH_PROGRESS=mode, COLUMNS="160", TERM="xterm")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", *args], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    shown = bytearray()
    stdout: list[bytes] = []
    reader = threading.Thread(target=lambda: stdout.append(proc.stdout.read()))
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=30)
    reader.join(30)
    return code, shown.decode(errors="replace"), stdout[0].decode()


@pytest.mark.slow   # a pseudo-terminal per mode; the lines mode stays in the quick loop
@pytest.mark.parametrize("mode", ["bar", "auto"])
def test_on_a_terminal_a_live_display_shows_the_simulated_time(long_topology, tmp_path, mode):
    code, shown, stdout = _on_a_terminal(["sim", str(long_topology), "--out",
                                          str(tmp_path / "r"), "--no-report"], mode)
    assert code == 0, shown
    assert "\x1b[" in shown                       # drawn in place, not printed line by line
    assert re.search(r"sim long/baseline seed 0.*[0-9,]+/1,500 s simulated \(\d+%\), "
                     r"[0-9,]+ requests", shown), shown[-500:]
    assert "started [" not in shown               # not the plain lines
    assert "\x1b[" not in stdout and stdout.startswith("run ")


@pytest.mark.slow
def test_sweep_shows_runs_done(long_topology, tmp_path):
    proc = _faultmesh(["sweep", str(long_topology), "--set", "workload.duration=200s,300s",
                       "--workers", "1", "--out", str(tmp_path / "s"), "--no-report"],
                      "lines", timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert re.search(r"^sweep long: starting a local Dask cluster of 1 worker", err, re.M), err
    assert re.search(r"^sweep long: 0/2 runs done \[", err, re.M), err
    assert re.search(r"^sweep long: done, 2/2 runs done \[", err, re.M), err
    assert "runs done" not in proc.stdout


@pytest.mark.slow
def test_gate_shows_scenarios_done_and_each_simulation(tmp_path):
    topo = tmp_path / "long.yaml"
    topo.write_text(LONG.replace("1500s", "300s"))
    proc = _faultmesh(["gate", str(topo), "--out", str(tmp_path / "g")], "lines")
    assert proc.returncode in (0, 2), proc.stderr   # no SLOs: nothing to judge is exit 2
    err = proc.stderr
    assert re.search(r"^gate long: 0/2 scenarios done \[", err, re.M), err
    for scenario in ("baseline", "slow-b"):
        assert re.search(rf"^sim long/{scenario} seed 0: done, 300/300 s simulated", err,
                         re.M), err
    assert re.search(r"^gate long: done, 2/2 scenarios done \[", err, re.M), err
    assert "scenarios done" not in proc.stdout


@pytest.mark.slow
def test_live_in_lines_mode_shows_steps_rate_errors_and_active_faults(tmp_path):
    topo = tmp_path / "two-tier.yaml"
    topo.write_text(LIVE)
    proc = _faultmesh(["live", str(topo), "--scenario", "half-errors", "--out",
                       str(tmp_path / "r"), "--no-report"], "lines", every="0.3")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    err = proc.stderr
    label = "live two-tier/half-errors"
    for step in ("starting 2 replicas and their proxies", "starting the load", "tearing down",
                 "writing results"):
        assert re.search(rf"^{label}: {step} \[", err, re.M), err
    load = re.findall(rf"^{label}: (\d+)/6 s, (\d+) s left, ([0-9.,-]+) req/s, ([0-9,]+) "
                      r"requests, ([0-9,]+) errors, faults: (.*) \[", err, re.M)
    assert len(load) >= 5, err
    assert any(float(rate) > 5 for _, _, rate, _, _, _ in load if rate != "-"), err
    assert any(faults == "errors on backend" for *_, faults in load), err
    assert any(int(errors) > 0 for *_, errors, faults in load), err
    assert load[0][5] == "none"                   # before the fault's start
    assert all(int(done) + int(left) == 6 for done, left, *_ in load)
    assert re.search(rf"^{label}: done, ", err, re.M), err
    # stdout holds the run's results only
    assert "half-errors" in proc.stdout and "s left" not in proc.stdout


@pytest.mark.slow
def test_live_web_prints_the_locust_url_once_it_serves(tmp_path):
    topo = tmp_path / "two-tier.yaml"
    topo.write_text(LIVE)
    env = {**os.environ, "FAULTMESH_PROGRESS": "off"}  # the address is shown all the same
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "live", str(topo), "--web",
                             "--out", str(tmp_path / "r"), "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()
        assert first.strip() == ("faultmesh live two-tier/baseline: Locust web UI at "
                                 "http://127.0.0.1:8089/"), first
        with urllib.request.urlopen("http://127.0.0.1:8089/", timeout=5) as page:
            assert page.status == 200                 # it serves when it is announced
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert rest == ""                                 # off: nothing else on stderr
    assert "baseline" in stdout and "8089" not in stdout


def test_active_faults_names_those_in_force():
    from chaos.live.faults import Applied
    from chaos.live.watch import active_faults
    from topologies import loads

    topo = loads(LIVE.replace("    latency: {dist: constant, value: 10ms}\n",
                              "    latency: {dist: constant, value: 10ms}\n    restart: 2s\n")
                 + "  with-kill:\n    faults:\n      - {type: kill, target: backend, start: 1s}\n")
    errors = Applied(topo.scenarios["half-errors"].faults[0])
    kill = Applied(topo.scenarios["with-kill"].faults[0])
    assert active_faults(topo, [errors, kill], now=100.0) == []          # none started yet
    errors.start = kill.start = 100.0
    assert active_faults(topo, [errors, kill], now=101.0) == ["errors on backend",
                                                             "kill on backend"]
    # a kill without a duration is in force while its replica restarts (2 s), then not
    assert active_faults(topo, [errors, kill], now=102.5) == ["errors on backend"]
    errors.end = 103.0
    assert active_faults(topo, [errors, kill], now=103.5) == []
