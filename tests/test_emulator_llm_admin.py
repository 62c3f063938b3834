"""The emulator's LLM batching headers and its admin API (``errors``, ``slow`` faults)."""

from __future__ import annotations

import json

import pytest
from emulator_helpers import burst, read_calls, running, send

LLM = """\
    version: 1
    name: chat
    entry: app
    services:
      app:
        calls:
          - {to: llm, timeout: 5s}
      llm:
        kind: llm
        llm:
          max_batch: 4
          prompt_tokens: 100
          output_tokens: 11
          prefill_per_token: 1ms
          step: {base: 20ms, per_sequence: 5ms}
"""


@pytest.mark.slow
def test_llm_ttft_and_tpot_follow_prefill_and_step_times(tmp_path):
    with running(tmp_path, LLM, ["llm", "app"]) as reps:
        status, headers, body, took = send(reps["llm"][0].port)
        assert status == 200 and len(body) == 4 * 11
        # prefill 100 x 1 ms in an iteration of base 20 ms: 0.12 s (the real clock on a
        # busy 2-core machine adds tens of ms, never takes any away)
        assert 0.12 <= float(headers["X-Faultmesh-Ttft"]) <= 0.2
        assert 0.025 <= float(headers["X-Faultmesh-Tpot"]) <= 0.035
        assert headers["X-Faultmesh-Output-Tokens"] == "11"
        # four at once decode together: steps of 20 + 5 x 4 = 40 ms; one that arrived
        # before the others also waits for the iteration prefilling their prompts, at most
        # (20 + 5 + 300 x 1 ms + 9 x 40 ms) / 10 = 68.5 ms
        answers = burst(reps["llm"][0].port, 4, 4)
        tpots = sorted(float(a[1]["X-Faultmesh-Tpot"]) for a in answers)
        assert 0.035 <= tpots[0] <= 0.05 and tpots[-1] <= 0.075, tpots
        send(reps["app"][0].port)
        reps["app"][0].stop()
    (row,) = read_calls(tmp_path / "app-0.csv")
    assert row["output_tokens"] == "11" and 0.12 <= float(row["ttft"]) <= 0.2


@pytest.mark.slow
def test_llm_batch_is_capped_at_max_batch(tmp_path):
    text = LLM.replace("max_batch: 4", "max_batch: 1")
    with running(tmp_path, text, ["llm"]) as reps:
        answers = burst(reps["llm"][0].port, 2, 2)
    # one waits for the other's ~350 ms generation before its prefill starts
    assert max(float(a[1]["X-Faultmesh-Ttft"]) for a in answers) >= 0.4


SINGLE = """\
    version: 1
    name: single
    entry: one
    services:
      one: {workers: 4, latency: 50ms}
"""


def admin(port: int, method: str, body: dict | None = None, path: str = "faults"):
    data = json.dumps(body).encode() if body is not None else b""
    status, _, out, _ = send(port, method, f"/_faultmesh/{path}", body=data)
    return status, json.loads(out)


def test_admin_errors_fault_answers_injected_errors_until_cleared(tmp_path):
    with running(tmp_path, SINGLE, ["one"]) as reps:
        port = reps["one"][0].port
        assert admin(port, "POST", {"type": "errors", "rate": 1.0, "status": 503})[0] == 200
        status, headers, _, took = send(port)
        assert status == 503 and headers["X-Faultmesh-Error"] == "injected" and took < 0.04
        assert admin(port, "POST", {"type": "errors", "rate": 2})[0] == 400
        assert admin(port, "DELETE") == (200, [])
        assert send(port)[0] == 200


def test_admin_slow_fault_multiplies_own_processing_time(tmp_path):
    with running(tmp_path, SINGLE, ["one"]) as reps:
        port = reps["one"][0].port
        assert admin(port, "POST", {"type": "slow", "factor": 4}) == \
            (200, [{"type": "slow", "factor": 4.0}])
        assert 0.2 <= send(port)[3] <= 0.3
        admin(port, "DELETE", path="faults/slow")
        assert 0.05 <= send(port)[3] <= 0.12


def test_admin_health_and_stats(tmp_path):
    with running(tmp_path, SINGLE, ["one"]) as reps:
        port = reps["one"][0].port
        assert admin(port, "GET", path="health") == (200, {"service": "one", "replica": 0})
        send(port)
        status, stats = admin(port, "GET", path="stats")
    assert status == 200 and stats["ok"] == 1 and stats["in_flight"] == 0
    assert stats["workers"] == 4 and stats["queued"] == 0
