"""SIGTERM and SIGHUP stop faultmesh as Ctrl-C does, and SIGKILL leaves nothing running.

Each test starts the real `faultmesh` command with subprocess.Popen (not a background shell
job: those ignore SIGINT) and sends the signal as CI runners, `docker stop` and closed
terminals do: exit 128+signal (143 SIGTERM, 129 SIGHUP), results so far written and marked
partial, every emulator, load worker and proxy listener gone, no temporary directory left.
Killed with SIGKILL, faultmesh cannot clean up: its children must end themselves within 5 s
and remove their temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import quick_first
from procs import alive, listening, listening_ports, run_processes
from sim_helpers import long_sim_running

LIVE = """\
version: 1
name: stopped
entry: gateway
workload: {model: open, rate: 20/s, duration: 60s, warmup: 0.5s}
services:
  gateway:
    replicas: 2
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 1s}
  backend:
    replicas: 2
    latency: {dist: constant, value: 5ms}
"""



def _faultmesh(args: list[str], tmp: Path, **env: str) -> subprocess.Popen[str]:
    """`faultmesh ARGS` in a child process with its own temporary directory (TMPDIR)."""
    (tmp / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "faultmesh", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp / "tmp"), **env})


def _work_dirs(tmp: Path) -> list[str]:
    return sorted(p.name for p in (tmp / "tmp").glob("faultmesh-load-*"))


def _start_live(tmp_path: Path) -> tuple[subprocess.Popen[str], str, set[int]]:
    """A live run under load: (the process, its result directory, every port it and its
    children listen on)."""
    topo = tmp_path / "stopped.yaml"
    topo.write_text(LIVE)
    out = str(tmp_path / "result")
    proc = _faultmesh(["live", str(topo), "--out", out, "--no-report"], tmp_path)
    log = os.path.join(out, "live-logs", "gateway-0.csv")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # calls flowing through the proxies into the replicas
        assert proc.poll() is None, proc.communicate()
        if os.path.exists(log) and os.path.getsize(log) > 200 and \
                any(p.kind == "load worker" for p in run_processes(parent=proc.pid)):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    children = run_processes(parent=proc.pid)
    kinds = sorted(p.kind for p in children)
    assert kinds == ["emulator"] * 4 + ["load worker"], kinds
    assert _work_dirs(tmp_path), "the load's work directory is made in TMPDIR"
    # the built-in proxy's API and one port per edge (client and gateway into two replicas)
    ports = listening_ports(proc.pid)
    assert len(ports) >= 1 + 2 + 2, ports
    for child in children:
        ports |= listening_ports(child.pid)
    return proc, out, ports


def _assert_nothing_left(proc: subprocess.Popen[str], out: str, ports: set[int],
                         tmp_path: Path) -> None:
    assert run_processes(parent=proc.pid) == []
    assert run_processes(out=out) == []
    assert listening(ports) == set()
    assert _work_dirs(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("signals, code", [
    ((signal.SIGTERM,), 143),
    # a second signal while it tears down is ignored: the teardown finishes
    ((signal.SIGHUP, signal.SIGTERM), 129),
])
def test_a_stop_signal_on_live_writes_partial_results_and_tears_everything_down(
        tmp_path, signals, code) -> None:
    proc, out, ports = _start_live(tmp_path)
    try:
        for k, sig in enumerate(signals):
            if k:
                time.sleep(0.2)
            proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stdout + stderr
    assert "Traceback" not in stderr and "partial" in stderr
    if len(signals) > 1:
        assert "ignored" in stderr
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["partial"] is True
    assert summary["requests"] > 0
    assert 0 < summary["duration"] < 60
    _assert_nothing_left(proc, out, ports, tmp_path)


@pytest.mark.slow
def test_sigkill_on_live_leaves_children_that_end_themselves_within_5s(tmp_path) -> None:
    proc, out, ports = _start_live(tmp_path)
    children = run_processes(parent=proc.pid)
    proc.kill()
    proc.communicate(timeout=10)
    killed = time.monotonic()
    while time.monotonic() - killed < 5.0:
        if not run_processes(parent=proc.pid) and not _work_dirs(tmp_path):
            break
        time.sleep(0.05)
    left = run_processes(parent=proc.pid)
    try:
        assert left == [], f"still running {time.monotonic() - killed:.1f} s after: {left}"
        assert _work_dirs(tmp_path) == []
        _assert_nothing_left(proc, out, ports, tmp_path)
    finally:
        for child in [*left, *children]:  # never leave them to other tests
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _sim_until_running(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    proc, out, _ = long_sim_running(tmp_path)
    time.sleep(0.5)
    return proc, out


@pytest.mark.parametrize("sig, code", quick_first([(signal.SIGTERM, 143), (signal.SIGHUP, 129)]))
def test_a_stop_signal_on_sim_writes_partial_results(tmp_path, sig, code) -> None:
    proc, out = _sim_until_running(tmp_path)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    assert 0 < summary["duration"] < 20000
    assert (out / "requests.csv").stat().st_size > 1000


def _proxy(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    proc = _faultmesh(["proxy", "--port", "0"], tmp_path, **env)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "faultmesh proxy: Toxiproxy API on http://..."
    assert "Toxiproxy API on" in line, line + proc.stderr.read()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_proxy_server_stops_on_a_stop_signal_as_on_ctrl_c(tmp_path, sig) -> None:
    """Stopped with a connection open through one of its proxies too: its handler is
    cancelled with the loop, quietly (no traceback)."""
    import json
    import socket
    import urllib.request

    proc = _proxy(tmp_path)
    ports = listening_ports(proc.pid)
    assert ports
    upstream = socket.create_server(("127.0.0.1", 0))
    api = min(ports)  # the API is the only listener yet
    body = json.dumps({"name": "a", "listen": "127.0.0.1:0",
                       "upstream": f"127.0.0.1:{upstream.getsockname()[1]}"}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{api}/proxies", data=body, method="POST"), timeout=5) as r:
        listen = json.loads(r.read())["listen"]
    client = socket.create_connection(("127.0.0.1", int(listen.rpartition(":")[2])))
    accepted, _ = upstream.accept()  # the proxy holds the connection through to upstream
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr  # a server's normal end, as Ctrl-C
    assert "stopped" in stderr and "Traceback" not in stderr, stderr
    assert listening(ports) == set()
    for s in (client, accepted, upstream):
        s.close()


PARENT = """\
import subprocess, sys, time
from chaos.watchdog import child_env
with open(sys.argv[1], "w") as log:
    p = subprocess.Popen([sys.executable, "-m", "faultmesh", "proxy", "--port", "0"],
                         env=child_env(), stderr=log)
print(p.pid, flush=True)
time.sleep(600)
"""


def test_a_proxy_started_by_faultmesh_ends_itself_when_its_parent_is_killed(tmp_path) -> None:
    """The watchdog of chaos.watchdog on its own: the parent SIGKILLed, the child ends."""
    log = tmp_path / "proxy.log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(log)], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while "Toxiproxy API on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        ports = listening_ports(pid)
        assert ports and alive(pid)
        parent.kill()
        parent.wait()
        killed = time.monotonic()
        while alive(pid) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        assert not alive(pid), log.read_text()
        assert listening(ports) == set()
        assert "is gone" in log.read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
