"""The faultmesh tab of Locust's web UI during ``faultmesh live --web`` (docs/live.md, The
faultmesh tab): a fault typed by hand is validated as the loader validates a scenario's; in a
real run, headless Chromium renders the page, fires a fault through the page's own script (the
``?fire=`` deep link), the fault lands in faults.csv with its window and ``"by": "hand"``, a bad
fault is answered 400 with its reason, and Locust's STOP and EDIT end or change the run as the
summary's notes say."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import topologies
from chaos.live.control import parse_fault
from topologies.errors import UsageError

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
WEB = "http://127.0.0.1:8089"  # Locust's web UI port, as `faultmesh live --web` serves it

TAB = """\
version: 1
name: tab
entry: a
workload: {rate: 20/s, duration: 40s, warmup: 2s}
services:
  a: {latency: {dist: exponential, mean: 5ms}, calls: [{to: b}]}
  b: {latency: {dist: exponential, mean: 5ms}, replicas: 2}
scenarios:
  slow-b:
    faults:
      - {type: latency, target: b, start: 30s, duration: 5s, latency: 50ms}
slos:
  - {name: avail, metric: availability, min: 99%}
  - {name: p99, metric: latency_p99, max: 2s}
"""


def test_a_hand_typed_fault_is_checked_as_a_scenario_fault_is():
    topo = topologies.loads(TAB, "tab.yaml")
    f = parse_fault(topo, {"type": "latency", "target": "a->b", "latency": "200ms",
                           "duration": "3s"})
    assert (f.type, f.target, f.latency, f.duration, f.jitter) == ("latency", "a->b", 0.2,
                                                                     3.0, 0.0)
    assert parse_fault(topo, {"type": "kill", "target": "b"}).replicas == 1  # the default
    for raw, reason in [
        ({"type": "latency", "target": "zz", "latency": "1s"}, "fault.target: unknown service"),
        ({"type": "latency", "target": "b"}, "fault: missing required field 'latency'"),
        ({"type": "latncy", "target": "b"}, "did you mean 'latency'"),
        ({"type": "kill", "target": "b", "replicas": 3}, "at most 2"),
        ({"type": "latency", "target": "b", "latency": "1s", "start": "2s"}, "leave start out"),
        ({"type": "latency", "target": "b->a", "latency": "1s"}, "fault.target"),
        ([1, 2], "a fault is a JSON object"),
    ]:
        with pytest.raises(UsageError, match=re.escape(reason)):
            parse_fault(topo, raw)


def _get(path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(WEB + path, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(path: str, body: bytes, content: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(WEB + path, data=body, method="POST",
                                 headers={"Content-Type": content})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _dom(url: str, tmp, budget: int = 4000) -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
         f"--virtual-time-budget={budget}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    return proc.stdout


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium")
def test_the_faultmesh_tab_in_a_real_live_run(tmp_path):
    """``live --web`` of a two-service topology: the page renders the services and SLOs, a
    fault fired by its deep link lands in faults.csv, a bad one is refused 400, EDIT of an
    open workload is refused and STOP ends the run early and cleanly. About 30 s."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8089)) == 0:
            pytest.skip("port 8089 (Locust's web UI) is taken")
    (tmp_path / "tab.yaml").write_text(TAB)
    environ = {k: v for k, v in os.environ.items() if k != "FAULTMESH_MAX_DURATION"}
    environ["FAULTMESH_PROGRESS"] = "off"
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "live", "tab.yaml", "--web",
                             "--scenario", "slow-b", "--out", "r", "--no-report"],
                            cwd=tmp_path, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # until the load runs (faults count from its first request)
            if proc.poll() is not None:
                pytest.fail(f"live ended before its web UI answered: {proc.communicate()}")
            assert time.monotonic() < deadline, "no running load behind the web UI in 60 s"
            try:
                code, state = _get("/faultmesh/api/state")
                if code == 200 and state["now"] is not None and state["now"] > 1.0:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert [s["name"] for s in state["services"]] == ["a", "b"]
        assert state["edges"] == [{"from": "a", "to": "b"}]
        assert state["state"]["b"]["ready"] == 2

        page = _dom(f"{WEB}/faultmesh", tmp_path)
        assert 'data-loaded="1"' in page, page[-3000:]
        assert 'data-service="a"' in page and 'data-service="b"' in page
        assert 'data-slo="avail"' in page and 'data-slo="p99"' in page
        assert "latency on b" in page  # the scenario's fault: a button and a timeline row

        # a bad fault: 400 with the loader's reason, nothing applied
        code, body = _post("/faultmesh/api/faults",
                           json.dumps({"type": "latency", "target": "nowhere",
                                       "latency": "1s"}).encode())
        assert code == 400 and "fault.target: unknown service 'nowhere'" in body["error"]

        # the deep link fires through the page's own fire()
        fault = {"type": "latency", "target": "a->b", "latency": "100ms", "duration": "3s"}
        link = f"{WEB}/faultmesh?fire=" + urllib.parse.quote(json.dumps(fault))
        page = _dom(link, tmp_path, budget=2000)
        assert 'data-status="200"' in page, page[-3000:]
        code, state = _get("/faultmesh/api/state")
        hand = [f for f in state["faults"] if f["by"] == "hand"]
        assert len(hand) == 1 and hand[0]["type"] == "latency" and hand[0]["target"] == "a->b"

        # Locust's own tab and link
        index = _dom(f"{WEB}/?tab=faultmesh", tmp_path, budget=3000)
        assert 'id="faultmesh-link"' in index
        assert ">faultmesh<" in index and "SLO avail" in index  # the tab's table

        # EDIT of an open workload is refused; STOP ends the run
        code, body = _post("/swarm", b"user_count=3&spawn_rate=3",
                           "application/x-www-form-urlencoded")
        assert code == 200 and body["success"] is False and "arrivals" in body["message"]
        time.sleep(4.0)  # the hand-fired fault's 3 s pass
        code, body = _post("/stop", b"")
        assert code == 200 and body["success"]
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 1), (out, err)
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    notes = " | ".join(summary["notes"])
    assert re.search(r"stopped from Locust's web UI at \d+\.\d s", notes), notes
    assert "users change to 3 from Locust's web UI" in notes and "refused" in notes
    assert "fault latency on a->b fired by hand from the web UI at" in notes
    assert not summary["partial"]
    assert summary["end"] < 30, summary["end"]  # ended by STOP, long before 40 s
    import csv

    rows = list(csv.DictReader(open(tmp_path / "r" / "faults.csv", encoding="utf-8")))
    hand = [r for r in rows if json.loads(r["parameters"]).get("by") == "hand"]
    assert len(hand) == 1, rows
    assert (hand[0]["type"], hand[0]["target"]) == ("latency", "a->b")
    assert float(hand[0]["end"]) - float(hand[0]["start"]) == pytest.approx(3.0, abs=0.3)
    assert json.loads(hand[0]["parameters"])["latency"] == 0.1
    # the scenario's fault at 30 s never started: the run was stopped before
    assert [r for r in rows if r not in hand] == []


@pytest.mark.slow
def test_edit_changes_a_closed_workloads_users_and_stop_ends_the_load(tmp_path):
    """``run_load(web=True)`` of a closed workload against a small HTTP server: EDIT (the web
    UI's POST /swarm) to 5 users is taken, STOP (POST /stop) ends the load early, not
    partial, every request sent with an outcome; the notes say both, with their times. The
    page has no live run behind it then and says so (404). About 10 s."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from loadtests import run_load
    from topologies.model import Workload

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    box: dict[str, object] = {}

    def go() -> None:
        box["result"] = run_load(Workload(model="closed", users=2, duration=60.0, timeout=5.0),
                                 f"http://127.0.0.1:{srv.server_address[1]}", web=True,
                                 web_port=port)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 40
        while True:
            assert time.monotonic() < deadline, "no web UI within 40 s"
            try:
                urllib.request.urlopen(base + "/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0)
        req = urllib.request.Request(base + "/swarm", data=b"user_count=5&spawn_rate=5",
                                     method="POST")
        body = json.loads(urllib.request.urlopen(req, timeout=5).read())
        assert body["success"] and body["message"] == "users changed to 5"
        time.sleep(2.5)  # the shape ticks once a second
        stats = json.loads(urllib.request.urlopen(base + "/stats/requests", timeout=5).read())
        assert stats["user_count"] == 5
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/faultmesh/api/state", timeout=5)
        assert info.value.code == 404 and b"no live run" in info.value.read()
        req = urllib.request.Request(base + "/stop", data=b"", method="POST")
        assert json.loads(urllib.request.urlopen(req, timeout=5).read())["success"]
        thread.join(timeout=30)
        assert not thread.is_alive(), "STOP should end the load"
    finally:
        srv.shutdown()
        srv.server_close()
    result = box["result"]
    notes = " | ".join(result.notes)
    assert re.search(r"users changed to 5 from Locust's web UI at \d+\.\d s", notes), notes
    assert re.search(r"stopped from Locust's web UI at \d+\.\d s", notes), notes
    assert not result.partial and result.run_time < 20
    assert all(r.error != "unfinished" for r in result.requests)
    assert result.users == 2  # the plan's; the EDIT is in the notes
