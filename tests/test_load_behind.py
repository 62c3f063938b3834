"""A load generator that falls behind its schedule says so (issue 8, point 9): a note in the
load result, in a live run's summary.json and report, and a warning on the console.

Seen before: 15 % of sends late, lag p99 20 s, ``notes: []``. The real runs here are made
to fall behind on purpose: an open workload whose users (rate x headroom) wait on answers
slower than their gaps, so they send late and fewer than the schedule asks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtests import run_load
from loadtests.behind import MAX_LATE_SHARE, MIN_SENT_SHARE, behind_note
from topologies.model import Workload

EXAMPLE = ("the load generator fell behind: achieved 34.1/s of 40/s target (85% of the "
           "requests scheduled), 15% of sends late, lag p99 20 s — the figures describe "
           "fewer requests than the workload asks")


def test_the_note_names_achieved_and_target_rate_late_share_and_lag():
    assert behind_note(34.1, 40.0, 0.85, 0.15, 20.0) == EXAMPLE


def test_thresholds_sent_share_below_095_or_late_share_above_5_percent():
    assert (MIN_SENT_SHARE, MAX_LATE_SHARE) == (0.95, 0.05)
    assert behind_note(40.0, 40.0, 1.0, 0.0, 0.001) is None          # kept up
    assert behind_note(38.0, 40.0, 0.95, 0.05, 0.2) is None          # at both limits: kept up
    short = behind_note(37.9, 40.0, 0.949, 0.0, 0.004)
    assert short is not None and "(95% of the requests scheduled)" in short
    assert short.endswith("fewer requests than the workload asks")
    late = behind_note(40.0, 40.0, 1.0, 0.051, 1.5)
    assert late is not None and "5% of sends late, lag p99 1.5 s" in late
    assert "scheduled" not in late and "later than the workload's schedule" in late
    # nothing scheduled, nothing known: nothing to say
    assert behind_note(0.0, 40.0, None, None, None) is None
    assert "lag p99 350 ms" in behind_note(1.0, 2.0, 0.5, 0.5, 0.35)


class _Slow(BaseHTTPRequestHandler):
    """One request at a time, 0.25 s each: at most 4 answers a second."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.lock:
            time.sleep(0.25)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_a_real_locust_run_that_falls_behind_notes_it(slow_server, tmp_path):
    # 20/s offered by ceil(20 x 0.1) = 2 users, each waiting up to 2 s for answers that
    # come 4 a second at best: they send late and far fewer than scheduled
    result = run_load(Workload(rate=20.0, duration=4.0, timeout=2.0), slow_server,
                      seed=3, out_dir=str(tmp_path), headroom=0.1)
    assert result.users == 2
    assert result.late_share is not None and result.late_share > 0.5
    behind = [n for n in result.notes if n.startswith("the load generator fell behind")]
    assert len(behind) == 1, result.notes
    assert f"achieved {result.achieved_rate:.1f}".rstrip("0").rstrip(".") in behind[0]
    assert "of 20/s target" in behind[0] and "fewer requests than the workload asks" in behind[0]
    with open(tmp_path / "load.json", encoding="utf-8") as fh:
        assert behind[0] in json.load(fh)["notes"]


@pytest.mark.slow
def test_a_run_that_keeps_up_has_no_note(slow_server, tmp_path):
    # 2/s with room for the slow answers: every send on time
    result = run_load(Workload(rate=2.0, duration=3.0, timeout=2.0), slow_server, seed=3,
                      headroom=2.0)
    assert result.late_share is not None and result.late_share <= MAX_LATE_SHARE
    assert not any("fell behind" in n for n in result.notes), result.notes


ONE_SLOW_WORKER = """\
version: 1
name: overloaded
entry: s
workload: {model: open, rate: 12/s, duration: 8s, warmup: 0s, timeout: 3s}
services:
  s:
    workers: 1
    latency: {dist: constant, value: 300ms}
"""


@pytest.mark.slow
def test_live_run_that_falls_behind_warns_and_notes_it(tmp_path):
    """`faultmesh live` against one single-worker service (3.3 answers/s) at 12/s: the load's
    24 users (12/s x 2 s of headroom) wait up to 3 s each, so they fall behind."""
    topo = tmp_path / "overloaded.yaml"
    topo.write_text(ONE_SLOW_WORKER)
    out = tmp_path / "result"
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo), "--out",
                           str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FAULTMESH_PROGRESS": "off"})
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    behind = [n for n in summary["notes"] if n.startswith("the load generator fell behind")]
    assert len(behind) == 1, summary["notes"]
    assert "of 12/s target" in behind[0] and "of sends late" in behind[0]
    load = json.loads((out / "load.json").read_text())
    assert load["rate_ratio"] < MIN_SENT_SHARE or load["lag"]["late_share"] > MAX_LATE_SHARE
    assert f"warning: {behind[0]}" in proc.stderr
    html = (out / "report.html").read_text()
    notes = html[html.index('id="notes"'):html.index('id="verdict"')]
    assert "the load generator fell behind: achieved" in notes
