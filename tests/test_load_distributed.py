"""The load from Locust's distributed mode (``--load-workers N``): a master and N worker
processes on this machine, their spools merged into one requests.csv.

What is checked: a real ``faultmesh live`` run of a two-service topology at 100 requests/s
with ``--load-workers 2`` and with the default (one load process) exits 0; each sends
exactly the seeded schedule's arrivals, every one once (request ids are exactly 0..n-1 for
the n arrivals the seed schedules, none twice), each answered request reached the backend
with its id (calls.csv), the achieved rate is within 10 % of the target, and load.json
names the master and both workers, whose users add up to the pool. No load process of the
run is left afterwards. Quick tests: the pool split, the spool merge refusing an id twice,
the CPU note naming the saturated worker, ``--load-workers -1`` refused (exit 2). And a
closed workload of 5 users over 2 workers (3 + 2) against a threaded http.server: unique
ids, nothing sent before the run's start, the closed rate users / (think + answer).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.cli import main
from loadtests.distributed import cpu_note, merge_spools, split_plan
from loadtests.plan import plan_load
from topologies.errors import RunError
from topologies.model import Workload

TOPOLOGY = """\
version: 1
name: two-tier
entry: gateway
workload: {model: open, rate: 100/s, duration: 5s, warmup: 1s}
services:
  gateway:
    workers: 32
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 2s}
  backend:
    workers: 32
    latency: {dist: constant, value: 3ms}
"""


def _live(base: Path, workers: int) -> tuple[int, str, str, int]:
    """``faultmesh live`` with ``--load-workers``; exit code, output, result directory, and
    the pid of the faultmesh process (its load processes carry it in their paths)."""
    topo = base / "two-tier.yaml"
    topo.write_text(TOPOLOGY)
    out = str(base / f"result-{workers}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultmesh", "live", str(topo), "--out", out, "--no-report",
         "--load-workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "FAULTMESH_PROGRESS": "off"})
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output, out, proc.pid


@pytest.fixture(scope="module", params=[2, 0], ids=["load-workers-2", "default"])
def run(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int, str, str, int]:
    rc, output, out, pid = _live(tmp_path_factory.mktemp("dist"), request.param)
    return request.param, rc, output, out, pid


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_every_scheduled_arrival_is_sent_and_recorded_once(
        run: tuple[int, int, str, str, int]) -> None:
    from topologies.arrivals import open_arrivals

    workers, rc, output, out, _ = run
    assert rc == 0, output
    requests = _rows(os.path.join(out, "requests.csv"))
    ids = [int(r["request_id"]) for r in requests]
    scheduled = len(list(open_arrivals(Workload(model="open", rate=100.0, duration=5.0),
                                       0, 5.0)))
    assert sorted(ids) == list(range(scheduled))  # every arrival once, none twice
    assert all(0 <= float(r["start"]) < 5.0 for r in requests)
    with open(os.path.join(out, "load.json"), encoding="utf-8") as fh:
        load = json.load(fh)
    assert load["requests"] == len(requests) == scheduled
    assert 0.9 <= load["rate_ratio"] <= 1.1
    assert all(r["status"] == "200" for r in requests), output
    # the backend saw each request, by the id the client sent
    reached = {int(c["request_id"]) for c in _rows(os.path.join(out, "calls.csv"))
               if c["caller"] == "gateway" and c["callee"] == "backend"}
    assert reached == set(ids)
    if workers:
        roles = [p["role"] for p in load["processes"]]
        assert roles == ["master", "worker 0", "worker 1"]
        assert sum(p["users"] for p in load["processes"][1:]) == load["users"]
        assert all(p["cpu_share"] is not None for p in load["processes"])
    else:
        assert "processes" not in load


@pytest.mark.slow
def test_no_load_process_outlives_the_run(run: tuple[int, int, str, str, int]) -> None:
    _, rc, output, _, pid = run
    assert rc == 0, output
    mark = f"faultmesh-load-{pid}-".encode()  # in every path a load process of the run got
    left = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if mark in fh.read():
                    left.append(entry)
        except OSError:
            continue
    assert left == []


def test_an_open_pool_splits_evenly_over_the_workers() -> None:
    plan = plan_load(Workload(model="open", rate=101.0, duration=2.0), "http://127.0.0.1:1")
    assert plan.users == 202
    assert split_plan(plan, 3).users == 204  # a multiple of 3: every worker gets 68
    assert split_plan(plan, 2).users == 202
    closed = plan_load(Workload(model="closed", users=5, duration=2.0), "http://127.0.0.1:1")
    assert split_plan(closed, 2).users == 5  # the workload's users, not more


def test_the_merge_refuses_a_request_recorded_twice(tmp_path: Path) -> None:
    header = "start,end,latency,status,ok,degraded,error,lag,id\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(header + "0.1,0.2,0.1,200,1,0,,0.0,0\n0.3,0.4,0.1,200,1,0,,0.0,2\n")
    b.write_text(header + "0.2,0.3,0.1,200,1,0,,0.0,1\n")
    assert [r.request_id for r, _ in merge_spools([str(a), str(b)])] == [0, 1, 2]
    b.write_text(header + "0.2,0.3,0.1,200,1,0,,0.0,2\n")
    with pytest.raises(RunError, match="request 2 twice"):
        merge_spools([str(a), str(b)])


def test_the_cpu_note_names_every_saturated_load_process() -> None:
    status = {"processes": [
        {"role": "master", "cpu_share": 0.01, "cpu_warning": False},
        {"role": "worker 0", "cpu_share": 0.97, "cpu_warning": False},
        {"role": "worker 1", "cpu_share": 0.5, "cpu_warning": True}]}
    note = cpu_note(status)
    assert note is not None
    assert "worker 0 (97% of a core)" in note and "worker 1" in note
    assert "master" not in note
    status["processes"][1]["cpu_share"] = 0.2
    status["processes"][2]["cpu_warning"] = False
    assert cpu_note(status) is None


def test_load_workers_must_be_a_small_count(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    assert main(["live", str(topo), "--load-workers", "-1", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--load-workers" in capsys.readouterr().err


@pytest.mark.slow
def test_a_closed_workload_spread_over_workers_records_each_request_once() -> None:
    """5 closed users over 2 workers against a threaded http.server: ids unique over both
    workers, the 5 users all run (3 + 2), and the rate is users / (think + answer)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from loadtests import run_load
    from topologies.model import Distribution

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_load(Workload(model="closed", users=5, duration=3.0,
                                   think=Distribution(kind="constant", value=0.1)),
                          f"http://127.0.0.1:{server.server_address[1]}", workers=2)
    finally:
        server.shutdown()
        server.server_close()
    ids = [r.request_id for r in result.requests]
    assert len(ids) == len(set(ids)) > 0
    assert min(r.start for r in result.requests) >= 0  # none before the run's start
    assert all(r.ok for r in result.requests)
    assert result.processes is not None
    assert sorted(p.get("users") for p in result.processes[1:]) == [2, 3]
    # 5 users thinking 0.1 s between quick answers: about 50/s, well under 5 / 0.1
    assert 25 <= len(ids) / 3.0 <= 55


@pytest.mark.slow
def test_the_web_ui_of_a_distributed_load_has_the_faultmesh_tab_and_refuses_stop(
        tmp_path: Path) -> None:
    """``--web --load-workers 2``: the master's web UI serves the faultmesh page; STOP (the
    UI's POST /stop) is refused with its reason (it would strand the workers' requests) and
    the refusal is a note of the run, which runs to its end."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8089)) == 0:
            pytest.skip("port 8089 (Locust's web UI) is taken")
    topo = tmp_path / "two-tier.yaml"
    topo.write_text(TOPOLOGY.replace("duration: 5s", "duration: 8s"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultmesh", "live", str(topo), "--out", str(out),
         "--no-report", "--web", "--load-workers", "2"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "FAULTMESH_PROGRESS": "off"})
    try:
        page = stop = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (page is None or stop is None):
            try:
                if page is None:
                    with urllib.request.urlopen("http://127.0.0.1:8089/faultmesh",
                                                timeout=5) as r:
                        page = r.read().decode()
                elif (out / "live-logs").is_dir():
                    req = urllib.request.Request("http://127.0.0.1:8089/stop", data=b"",
                                                 method="POST")
                    with urllib.request.urlopen(req, timeout=5) as r:
                        stop = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert page and "faultmesh" in page
    assert stop and "not taken with --load-workers" in stop["message"]
    summary = json.loads((out / "summary.json").read_text())
    assert any(re.search(r"STOP from Locust's web UI at \d+\.\d s refused", n)
               for n in summary["notes"]), summary["notes"]
    assert not summary.get("partial")
