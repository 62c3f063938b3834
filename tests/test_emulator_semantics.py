"""The emulator keeps the simulator's semantics: queue bounds without concurrency, the order
of the rate limit and the errors fault, work time extended by a pause, utilization."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import threading
import time

import pytest
from emulator_helpers import burst, running, send

from chaos.emulator.clock import FREEZE_GAP, work_sleep


def test_queue_bounds_the_wait_for_a_worker_without_concurrency(tmp_path):
    text = """\
        version: 1
        name: q
        entry: one
        services:
          one: {workers: 1, queue: 1, latency: 300ms}
    """
    with running(tmp_path, text, ["one"]) as reps:
        answers = burst(reps["one"][0].port, 4, 4)
    # one works, one waits, two find the queue full at once
    assert sorted(a[0] for a in answers) == [200, 200, 503, 503]
    rejected = [a for a in answers if a[0] == 503]
    assert all(a[1]["X-Faultmesh-Error"] == "rejected" and a[3] < 0.2 for a in rejected)


@pytest.mark.slow
def test_queue_timeout_bounds_the_wait_for_a_worker_without_concurrency(tmp_path):
    text = """\
        version: 1
        name: qt
        entry: one
        services:
          one: {workers: 1, queue_timeout: 100ms, latency: 400ms}
    """
    with running(tmp_path, text, ["one"]) as reps:
        answers = burst(reps["one"][0].port, 3, 3)
    assert sorted(a[0] for a in answers) == [200, 503, 503]
    dropped = [a for a in answers if a[0] == 503]
    assert all(a[1]["X-Faultmesh-Error"] == "queue_timeout" and 0.09 <= a[3] < 0.35
               for a in dropped)


def test_the_rate_limit_comes_before_the_errors_fault(tmp_path):
    text = """\
        version: 1
        name: order
        entry: one
        services:
          one: {rate_limit: 2/s}
    """
    with running(tmp_path, text, ["one"]) as reps:
        port = reps["one"][0].port
        fault = json.dumps({"type": "errors", "rate": 1.0, "status": 503}).encode()
        assert send(port, "POST", "/_faultmesh/faults", body=fault)[0] == 200
        answers = [send(port) for _ in range(10)]
    errors = [a[1]["X-Faultmesh-Error"] for a in answers]
    # a burst of 2 tokens (and maybe one more refilled) passes to the fault; the rest 429
    assert 2 <= errors.count("injected") <= 3
    assert errors.count("rate_limited") == 10 - errors.count("injected")


@pytest.mark.slow
def test_a_pause_extends_work_in_progress_by_the_frozen_time(tmp_path):
    text = """\
        version: 1
        name: pause
        entry: one
        services:
          one: {latency: 1s}
    """
    with running(tmp_path, text, ["one"]) as reps:
        rep = reps["one"][0]
        out: list[tuple] = []
        t0 = time.perf_counter()
        thread = threading.Thread(
            target=lambda: out.append((*send(rep.port), time.perf_counter())))
        thread.start()
        time.sleep(0.5)
        os.kill(rep.process.pid, signal.SIGSTOP)
        time.sleep(2.0)
        os.kill(rep.process.pid, signal.SIGCONT)
        thread.join(10)
    assert out and out[0][0] == 200
    took = out[0][4] - t0
    # 0.5 s of work, 2 s frozen, then the other 0.5 s: ~3 s (a plain sleep ends at ~2.5 s)
    assert 2.9 <= took <= 3.4, took


@pytest.mark.slow
def test_a_long_loop_stall_counts_as_frozen_without_sigcont():
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = loop.create_task(work_sleep(0.5))
        await asyncio.sleep(0.1)
        time.sleep(FREEZE_GAP + 0.5)  # the loop does not run: as under docker pause
        await task
        return loop.time() - t0

    took = asyncio.run(scenario())
    # 0.1 s of work, a 1 s stall not counted, the remaining 0.4 s: ~1.5 s
    assert 1.45 <= took <= 1.7, took


def test_a_short_loop_stall_is_not_frozen_time():
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = loop.create_task(work_sleep(0.5))
        await asyncio.sleep(0.1)
        time.sleep(FREEZE_GAP / 4)   # ordinary loop lag: work goes on during it
        await task
        return loop.time() - t0

    took = asyncio.run(scenario())
    assert 0.49 <= took <= 0.6, took


@pytest.mark.slow
def test_llm_utilization_integrates_batch_places_over_max_batch(tmp_path):
    text = """\
        version: 1
        name: util
        entry: llm
        services:
          llm:
            kind: llm
            llm:
              max_batch: 4
              prompt_tokens: {dist: constant, value: 10}
              output_tokens: {dist: constant, value: 120}
              prefill_per_token: 0.1ms
              step: {base: 25ms, per_sequence: 0ms}
    """
    with running(tmp_path, text, ["llm"]) as reps:
        status, _, _, took = send(reps["llm"][0].port)   # one place held for ~3 s
        assert status == 200 and 2.9 <= took <= 3.6
        time.sleep(1.1)
    with open(tmp_path / "llm-0.csv.ts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    util = [float(r["utilization"]) for r in rows]
    # one busy place of 4: 0.25 in each second fully inside the generation, less in the
    # seconds it starts and ends in (a row is its own interval's mean)
    assert sum(0.24 <= u <= 0.26 for u in util) >= 2, (util, took)
    assert all(u <= 0.26 for u in util), util
    assert max(int(r["busy"]) for r in rows) == 1
