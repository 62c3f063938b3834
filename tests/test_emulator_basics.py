"""The emulator's replica processes: own processing, calls, log, limits, shutdown."""

from __future__ import annotations

import csv

import pytest
from emulator_helpers import burst, read_calls, running, send

from chaos.emulator import CALL_COLUMNS

TANDEM = """\
    version: 1
    name: tandem
    entry: front
    services:
      front:
        workers: 8
        latency: {dist: constant, value: 50ms}
        calls:
          - {to: back, timeout: 2s}
      back:
        workers: 8
        latency: {dist: constant, value: 10ms}
        error_rate: ERR
"""


@pytest.mark.slow
def test_own_processing_time_is_the_configured_latency(tmp_path):
    with running(tmp_path, TANDEM.replace("ERR", "0"), ["back", "front"]) as reps:
        times = [send(reps["front"][0].port)[3] for _ in range(8)]
    # 50 ms own + 10 ms at the callee; scheduling and TCP add a little
    assert all(0.058 <= t <= 0.15 for t in times), times


def test_calls_are_logged_as_calls_csv_rows_and_sigterm_flushes(tmp_path):
    with running(tmp_path, TANDEM.replace("ERR", "0"), ["back", "front"]) as reps:
        for k in range(5):
            status, headers, body, _ = send(reps["front"][0].port,
                                            headers={"X-Faultmesh-Request": f"r{k}"})
            assert status == 200 and len(body) == 1024
            assert headers["X-Faultmesh-Request"] == f"r{k}"
        assert reps["front"][0].stop() == 0   # SIGTERM: flush, exit 0
    with open(tmp_path / "front-0.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == CALL_COLUMNS
    rows = read_calls(tmp_path / "front-0.csv")
    assert [r["request_id"] for r in rows] == [f"r{k}" for k in range(5)]
    for r in rows:
        assert (r["caller"], r["callee"], r["replica"], r["attempt"], r["call"]) == \
            ("front", "back", "0", "1", "0")
        assert (r["status"], r["ok"], r["error"]) == ("200", "1", "")
        assert 0.009 <= float(r["end"]) - float(r["start"]) <= 0.1
    ts = (tmp_path / "front-0.csv.ts.csv").read_text().splitlines()
    assert ts[0] == "t,service,replicas,ready_replicas,busy,queued,utilization,throughput," \
                    "errors,batch"


@pytest.mark.slow
def test_error_rate_answers_that_share_with_500_passed_up_the_caller(tmp_path):
    with running(tmp_path, TANDEM.replace("ERR", "0.3").replace("50ms", "0ms"),
                 ["back", "front"]) as reps:
        answers = burst(reps["front"][0].port, 200, 8)
    failed = [a for a in answers if a[0] != 200]
    assert all(a[0] == 500 and a[1]["X-Faultmesh-Error"] == "error" for a in failed)
    # binomial(200, 0.3): sd 0.032, so +-0.1 is about 3 sd
    assert 0.2 <= len(failed) / 200 <= 0.4


def test_no_queue_and_one_slot_rejects_concurrent_requests(tmp_path):
    text = """\
        version: 1
        name: loss
        entry: one
        services:
          one: {concurrency: 1, queue: 0, latency: 300ms}
    """
    with running(tmp_path, text, ["one"]) as reps:
        answers = burst(reps["one"][0].port, 5, 5)
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200, 503, 503, 503, 503]
    assert {a[1].get("X-Faultmesh-Error") for a in answers if a[0] == 503} == {"rejected"}


@pytest.mark.slow
def test_queue_timeout_drops_a_request_that_waited_too_long(tmp_path):
    text = """\
        version: 1
        name: qt
        entry: one
        services:
          one: {concurrency: 1, queue: 10, queue_timeout: 100ms, latency: 400ms}
    """
    with running(tmp_path, text, ["one"]) as reps:
        answers = burst(reps["one"][0].port, 3, 3)
    assert sorted(a[0] for a in answers) == [200, 503, 503]
    dropped = [a for a in answers if a[0] == 503]
    assert all(a[1]["X-Faultmesh-Error"] == "queue_timeout" and a[3] < 0.35 for a in dropped)


def test_rate_limit_answers_429_beyond_the_bucket(tmp_path):
    text = """\
        version: 1
        name: rl
        entry: one
        services:
          one: {rate_limit: 5/s}
    """
    with running(tmp_path, text, ["one"]) as reps:
        answers = [send(reps["one"][0].port) for _ in range(15)]
    ok = sum(a[0] == 200 for a in answers)
    limited = [a for a in answers if a[0] == 429]
    # burst of 5 tokens, plus 5/s refill during the (well under a second of) requests
    assert 5 <= ok <= 9 and len(limited) == 15 - ok
    assert all(a[1]["X-Faultmesh-Error"] == "rate_limited" for a in limited)


def test_stop_signals_repeated_during_shutdown_print_nothing(tmp_path):
    """A teardown sends SIGCONT and SIGTERM, then SIGTERM again while the replica stops;
    none of them may reach the event loop's closed wakeup pipe (which printed "Exception
    ignored when trying to write to the signal wakeup fd")."""
    import os
    import signal
    import subprocess
    import sys
    import time

    topo = tmp_path / "t.yaml"
    topo.write_text("version: 1\nname: t\nentry: a\nworkload: {model: open, rate: 1/s, duration: 10s}\n"
                    "services:\n  a: {latency: {dist: constant, value: 1ms}}\n")
    for attempt in range(5):
        p = subprocess.Popen([sys.executable, "-m", "chaos.emulator", "--topology", str(topo),
                              "--service", "a", "--log", str(tmp_path / f"a{attempt}.csv"),
                              "--epoch", str(time.time())],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().startswith("ready")
        deadline = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < deadline:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    break
            time.sleep(0.0005)
        _, err = p.communicate(timeout=10)
        assert p.returncode == 0 and err == "", (attempt, p.returncode, err)
