"""The emulator's call policies over real HTTP: timeout, retries, degrade, breaker, balancers."""

from __future__ import annotations

import json
import time

import pytest
from emulator_helpers import burst, read_calls, running, send

#: The breaker's open_for in the breaker test: short, so the test sees half-open and closed.
OPEN_FOR = 1.0

CALLER = """\
    version: 1
    name: policies
    entry: front
    services:
      front:
        workers: 8
        calls:
          - {to: back, CALL}
      back:
        workers: 8
        latency: BACKLAT
        error_rate: ERR
"""


def topo(call: str, latency: str = "0ms", err: str = "0") -> str:
    return CALLER.replace("CALL", call).replace("BACKLAT", latency).replace("ERR", err)


def test_a_call_timeout_answers_504_at_the_caller(tmp_path):
    with running(tmp_path, topo("timeout: 100ms", latency="500ms"), ["back", "front"]) as reps:
        status, headers, _, took = send(reps["front"][0].port)
    assert status == 504 and headers["X-Faultmesh-Error"] == "timeout"
    assert 0.09 <= took <= 0.4


def test_retries_are_attempts_1_to_n_in_the_callers_log(tmp_path):
    call = "retry: {attempts: 3, backoff: constant, base: 10ms, jitter: none, on: [5xx]}"
    with running(tmp_path, topo(call, err="1"), ["back", "front"]) as reps:
        status, headers, _, _ = send(reps["front"][0].port, headers={"X-Faultmesh-Request": "q"})
        reps["front"][0].stop()
    assert status == 500 and headers["X-Faultmesh-Error"] == "error"
    rows = read_calls(tmp_path / "front-0.csv")
    assert [(r["request_id"], r["attempt"], r["status"]) for r in rows] == \
        [("q", "1", "500"), ("q", "2", "500"), ("q", "3", "500")]
    # constant backoff of 10 ms between attempts
    assert float(rows[1]["start"]) - float(rows[0]["end"]) >= 0.009


@pytest.mark.slow
def test_degrade_fallback_answers_200_marked_degraded(tmp_path):
    with running(tmp_path, topo("fallback: degrade", err="1"), ["back", "front"]) as reps:
        status, headers, _, _ = send(reps["front"][0].port)
    assert status == 200 and headers["X-Faultmesh-Degraded"] == "1"


@pytest.mark.slow
def test_breaker_opens_fails_fast_probes_half_open_and_closes_when_the_callee_heals(tmp_path):
    """closed -> open (3 timeouts of 3) -> fail fast without an attempt -> half-open after
    open_for: one trial goes out, times out, and the breaker opens again -> the callee heals
    -> half-open trial passes -> closed: every call goes out again."""
    call = ("timeout: 150ms, circuit_breaker: {failure_rate: 0.5, min_calls: 3, window: 30s, "
            f"open_for: {OPEN_FOR}s, half_open_calls: 1}}")
    with running(tmp_path, topo(call, latency="20ms"), ["back", "front"]) as reps:
        port, back = reps["front"][0].port, reps["back"][0].port
        slow_down = json.dumps({"type": "slow", "factor": 50}).encode()   # 20 ms -> 1 s
        assert send(back, "POST", "/_faultmesh/faults", body=slow_down)[0] == 200
        slow = [send(port) for _ in range(3)]          # closed: 3 timeouts open it
        fast = [send(port) for _ in range(3)]          # open: fail fast
        time.sleep(OPEN_FOR + 0.1)
        trial_failed = send(port)                      # half-open: one trial, times out
        reopened = send(port)                          # open again at once
        assert send(back, "DELETE", "/_faultmesh/faults")[0] == 200   # the callee heals
        time.sleep(OPEN_FOR + 0.1)
        trial_passed = send(port)                      # half-open: the trial passes
        closed = [send(port) for _ in range(4)]        # closed: calls go out again
        reps["front"][0].stop()
    assert all(a[0] == 504 and a[3] >= 0.14 for a in slow)
    for a in (*fast, reopened):
        assert a[0] == 502 and a[1]["X-Faultmesh-Error"] == "circuit_open"
        assert a[3] < 0.075   # much faster than the 150 ms timeout: no attempt
    assert trial_failed[0] == 504 and trial_failed[3] >= 0.14
    assert trial_passed[0] == 200
    assert all(a[0] == 200 for a in closed)
    # attempts logged: 3 timeouts, the failed trial, the passed trial, the 4 closed calls;
    # none while open
    rows = read_calls(tmp_path / "front-0.csv")
    assert [r["status"] for r in rows] == ["504"] * 4 + ["200"] * 5


@pytest.mark.slow
def test_refused_callee_answers_502_refused(tmp_path):
    with running(tmp_path, topo("timeout: 1s"), ["back", "front"]) as reps:
        reps["back"][0].stop()
        status, headers, _, _ = send(reps["front"][0].port)
    assert status == 502 and headers["X-Faultmesh-Error"] == "refused"


BALANCED = """\
    version: 1
    name: balanced
    entry: front
    services:
      front:
        workers: 16
        calls:
          - {to: back}
      back:
        replicas: 3
        workers: 8
        balancer: BALANCER
        latency: 20ms
"""


def _picks(tmp_path, balancer: str, slow: float = 1.0, concurrency: int = 1, n: int = 45
           ) -> tuple[list[int], int]:
    """The callee replica of each of the front's ``n`` attempts (in start order), back
    replica 0 slowed ``slow`` times (20 ms each), sent ``concurrency`` at a time; and how
    many of the answers were 200."""
    text = BALANCED.replace("BALANCER", balancer)
    with running(tmp_path, text, ["back", "front"]) as reps:
        if slow != 1.0:
            slow_down = json.dumps({"type": "slow", "factor": slow}).encode()
            assert send(reps["back"][0].port, "POST", "/_faultmesh/faults",
                        body=slow_down)[0] == 200
        port = reps["front"][0].port
        answers = burst(port, n, concurrency) if concurrency > 1 else \
            [send(port) for _ in range(n)]
        reps["front"][0].stop()
    rows = sorted(read_calls(tmp_path / "front-0.csv"), key=lambda r: float(r["start"]))
    assert len(rows) == n
    return [int(r["replica"]) for r in rows], sum(a[0] == 200 for a in answers)


@pytest.mark.slow
def test_emulator_round_robin_rotates_strictly_whatever_the_replicas_speed(tmp_path):
    picks, ok = _picks(tmp_path, "round_robin", slow=5.0, n=15)   # replica 0: 100 ms
    assert ok == 15
    first = picks[0]
    assert picks == [(first + i) % 3 for i in range(15)]   # the slow replica keeps its turn


@pytest.mark.slow
def test_emulator_random_picks_independently(tmp_path):
    picks, ok = _picks(tmp_path, "random", n=45)
    assert ok == 45
    counts = [picks.count(k) for k in range(3)]
    # Binomial(45, 1/3): mean 15, sd 3.2; a fixed seed, yet checked as a draw would be
    assert all(5 <= c <= 25 for c in counts)
    repeats = sum(a == b for a, b in zip(picks, picks[1:], strict=False))
    assert repeats >= 4   # 44 pairs, 1 in 3 repeats on average; a rotation has none
    assert any((b - a) % 3 != 1 for a, b in zip(picks, picks[1:], strict=False))


@pytest.mark.slow
def test_emulator_least_request_avoids_the_slow_replica(tmp_path):
    """Six requests at a time, replica 0 slowed 50x (1 s): its attempts stay in flight, so
    the front sends it the next only when the fast ones are as busy; round robin would send
    it 15 of 45."""
    picks, ok = _picks(tmp_path, "least_request", slow=50.0, concurrency=6, n=45)
    assert ok == 45
    assert picks.count(0) <= 6
    assert min(picks.count(1), picks.count(2)) >= 15
