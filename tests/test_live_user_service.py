"""``faultmesh live`` with a user's own program as a service (``command:``, process runtime).

The program is a small real HTTP server written here: it listens on ``$PORT``, answers
``/healthz``, and for ``/`` calls ``$FAULTMESH_BACKEND_URL`` (an emulated backend with two
replicas, through the proxy) and answers 200. It records the environment it was given and
starts a ``sleep`` child (which only the process-group stop ends). The scenario answers half
the program's requests with 503 for 1 s (``errors``: an HTTP toxic on the proxy into it, the
program has no admin API), then SIGKILLs it (``kill``; restarted 1 s later).

What is measured: requests.csv has 200s, and the 503s in the errors window; calls.csv has the
client's rows only (the program's own calls to the backend are not logged: measured from
the outside; the backend, a leaf, has no calls of its own), while the backend's timeseries
shows it served them; the variables reached the program; it was started twice; the
timeseries has its rows with the load columns empty; nothing is left running. Plus the
refusals (exit 2) and a program that does not come up (exit 3, its output quoted). ~15 s.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from live_helpers import leftovers, live_cli, rows

pytestmark = pytest.mark.slow

PROGRAM = """\
import http.server, json, os, subprocess, urllib.request

with open(os.environ["ENV_FILE"], "a") as fh:
    fh.write(json.dumps({k: v for k, v in os.environ.items()
                         if k.startswith("FAULTMESH_") or k in ("PORT", "GREETING")}) + "\\n")
subprocess.Popen(["sleep", "300"])  # a child of its own: the stop must end it too


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200
        if self.path != "/healthz":
            try:
                with urllib.request.urlopen(os.environ["FAULTMESH_BACKEND_URL"] + "/",
                                            timeout=2) as r:
                    r.read()
            except Exception:
                status = 502
        body = b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

TOPOLOGY = """\
version: 1
name: userprog
entry: gateway
workload: {{model: open, rate: 30/s, duration: 6s, warmup: 0.5s}}
services:
  gateway:
    command: [{python}, {script}]
    health: /healthz
    restart: 1s
    env: {{ENV_FILE: {envfile}, GREETING: hello}}
    calls:
      - {{to: backend, timeout: 2s}}
  backend:
    replicas: 2
    workers: 8
    latency: {{dist: constant, value: 3ms}}
scenarios:
  chaos:
    faults:
      - {{type: errors, target: gateway, start: 1s, duration: 1s, rate: 0.5, status: 503}}
      - {{type: kill, target: gateway, start: 3s}}
"""


def _topology(base: Path, command: str | None = None) -> str:
    script = base / "program.py"
    script.write_text(PROGRAM)
    text = TOPOLOGY.format(python=json.dumps(sys.executable), script=json.dumps(str(script)),
                           envfile=json.dumps(str(base / "env.jsonl")))
    if command is not None:
        text = text.replace(f"[{json.dumps(sys.executable)}, {json.dumps(str(script))}]",
                            command)
    return text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    base = tmp_path_factory.mktemp("userprog")
    code, output, out = live_cli(base, "userprog.yaml", _topology(base), "chaos")
    return code, output, out, base


def test_program_serves_and_calls_through_the_proxy(run: tuple[int, str, str, Path]) -> None:
    code, output, out, _ = run
    assert code in (0, 1), output
    requests = rows(os.path.join(out, "requests.csv"))
    ok = [r for r in requests if r["status"] == "200"]
    assert len(ok) > 60, output
    calls = rows(os.path.join(out, "calls.csv"))
    callers = {(c["caller"], c["callee"]) for c in calls}
    # the client's rows and the emulated backend's own rows; gateway->backend is not logged
    assert ("client", "gateway") in callers
    assert not any(c["caller"] == "gateway" for c in calls)
    # the backend (a leaf: no calls of its own to log) served the program's calls
    ts = rows(os.path.join(out, "timeseries.csv"))
    served = sum(float(r["throughput"]) for r in ts if r["service"] == "backend")
    assert served > 50, served
    assert os.path.exists(os.path.join(out, "live-logs", "gateway-0.out"))


def test_environment_reached_the_program(run: tuple[int, str, str, Path]) -> None:
    _, output, _, base = run
    seen = [json.loads(line) for line in (base / "env.jsonl").read_text().splitlines()]
    assert len(seen) == 2, seen  # started, then restarted after the kill
    env = seen[0]
    assert env["FAULTMESH_SERVICE"] == "gateway" and env["FAULTMESH_REPLICA"] == "0"
    assert env["GREETING"] == "hello"
    urls = env["FAULTMESH_BACKEND_URLS"].split(",")
    assert len(urls) == 2 and env["FAULTMESH_BACKEND_URL"] == urls[0]
    assert all(u.startswith("http://127.0.0.1:") for u in urls)
    assert env["PORT"].isdigit() and env["PORT"] != "8080"  # its own port, not port:
    assert seen[1]["PORT"] == env["PORT"]  # restarted where its proxy points
    assert "FAULTMESH_PARENT" in env


def test_errors_fault_is_the_proxys_and_kill_restarts(run: tuple[int, str, str, Path]) -> None:
    _, output, out, _ = run
    requests = rows(os.path.join(out, "requests.csv"))
    windows = {r["type"]: r for r in rows(os.path.join(out, "faults.csv"))}
    lo, hi = float(windows["errors"]["start"]), float(windows["errors"]["end"])
    inside = [r for r in requests if lo + 0.1 <= float(r["start"]) <= hi - 0.1]
    share = sum(r["status"] == "503" for r in inside) / max(1, len(inside))
    assert 0.2 <= share <= 0.8, (share, len(inside))
    assert not any(r["status"] == "503" for r in requests
                   if not lo - 0.2 <= float(r["start"]) <= hi + 0.2)
    killed = float(windows["kill"]["start"])
    late = [r for r in requests if float(r["start"]) > killed + 2.0]
    assert late and all(r["status"] == "200" for r in late), output
    ts = [r for r in rows(os.path.join(out, "timeseries.csv")) if r["service"] == "gateway"]
    assert ts and all(r["busy"] == "" and r["replicas"] == "1" for r in ts)


def test_nothing_left_running(run: tuple[int, str, str, Path]) -> None:
    _, _, out, _ = run
    assert leftovers(out) == []


def test_sigkilled_faultmesh_takes_the_program_with_it(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from procs import run_processes

    path = tmp_path / "t.yaml"
    path.write_text(_topology(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "live", str(path), "--out",
                             str(tmp_path / "r"), "--no-report", "--duration", "60s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        give_up = time.monotonic() + 30
        while not (tmp_path / "env.jsonl").exists() and time.monotonic() < give_up:
            time.sleep(0.1)
        time.sleep(1.0)  # the program and its sleep child are up
        children = run_processes(parent=proc.pid)
        assert any("program.py" in " ".join(c.args) for c in children), children
        assert any(c.args[:1] == ["sleep"] for c in children), children
        proc.kill()
        proc.wait(10)
        killed = time.monotonic()
        while run_processes(parent=proc.pid) and time.monotonic() - killed < 8.0:
            time.sleep(0.1)
        assert run_processes(parent=proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _refused(base: Path, topology: str, *extra: str) -> tuple[int, str]:
    import subprocess

    path = base / "t.yaml"
    path.write_text(topology)
    p = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(path), "--out",
                        str(base / "r"), "--no-report", *extra],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


def test_image_only_service_is_refused(tmp_path: Path) -> None:
    topo = _topology(tmp_path, command=None).replace(
        f"command: [{json.dumps(sys.executable)}, {json.dumps(str(tmp_path / 'program.py'))}]",
        "image: example/gateway:1")
    code, err = _refused(tmp_path, topo)
    assert code == 2, err
    assert err.strip() == ("faultmesh live: service gateway gives only image:; run it with "
                           "--runtime docker or give command:"), err


def test_http_fault_on_a_real_toxiproxy_is_refused(tmp_path: Path) -> None:
    code, err = _refused(tmp_path, _topology(tmp_path), "--scenario", "chaos",
                         "--toxiproxy", "http://127.0.0.1:9")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "--toxiproxy" in err, err


def test_program_that_does_not_come_up_exits_3(tmp_path: Path) -> None:
    command = json.dumps([sys.executable, "-c", "print('no database here'); raise SystemExit(4)"])
    code, err = _refused(tmp_path, _topology(tmp_path, command=command))
    assert code == 3, err
    assert "exited with 4" in err and "no database here" in err, err
    assert "Traceback" not in err
