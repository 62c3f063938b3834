"""The emulator's resource faults, with real replica processes: the ``cpu`` admin fault (own
processing time divided by the CPU share left; an LLM's GPU iterations untouched) and the
memory a replica really holds by its ``memory: {base, per_request}`` spec (RSS)."""

from __future__ import annotations

import json
import statistics
import textwrap
import threading
import time

import pytest
from emulator_helpers import running, send

from chaos.emulator.replica import HeldMemory, touched
from topologies.model import Memory

__all__: list[str] = []

MiB = 1 << 20

SINGLE = """\
    version: 1
    name: single
    entry: one
    services:
      one: {workers: 4, latency: 20ms}
"""

LLM = """\
    version: 1
    name: chat
    entry: llm
    services:
      llm:
        kind: llm
        latency: 10ms
        llm:
          max_batch: 4
          prompt_tokens: 10
          output_tokens: 5
          prefill_per_token: 1ms
          step: {base: 20ms, per_sequence: 5ms}
"""


def admin(port: int, method: str, body: dict | None = None, path: str = "faults"
          ) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else b""
    status, _, out, _ = send(port, method, f"/_faultmesh/{path}", body=data)
    return status, json.loads(out)


def median_took(port: int, n: int) -> float:
    """Median seconds of ``n`` sequential requests."""
    took = []
    for _ in range(n):
        status, _, _, t = send(port)
        assert status == 200
        took.append(t)
    return statistics.median(took)


def rss(pid: int) -> int:
    """Resident bytes of process ``pid`` now (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- cpu ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_cpu_fraction_divides_own_work_time_until_cleared(tmp_path):
    with running(tmp_path, SINGLE, ["one"]) as reps:
        port = reps["one"][0].port
        send(port)  # warm the connection path
        base = median_took(port, 8)
        # 20 ms of own work plus loopback HTTP and a late-waking timer: a few ms, not 10
        assert 0.019 <= base <= 0.032, base
        assert admin(port, "POST", {"type": "cpu", "fraction": 0.5}) == \
            (200, [{"type": "cpu", "fraction": 0.5}])
        assert admin(port, "GET") == (200, [{"type": "cpu", "fraction": 0.5}])
        cut = median_took(port, 8)
        # 20 ms / 0.5 = 40 ms: the same overhead on top, so +20 ms within 6 ms
        assert 0.039 <= cut <= 0.052 and abs((cut - base) - 0.020) <= 0.006, (base, cut)
        # slow multiplies with it: 20 ms x 2 / 0.5 = 80 ms
        admin(port, "POST", {"type": "slow", "factor": 2})
        both = median_took(port, 8)
        assert 0.079 <= both <= 0.095, both
        # clearing cpu leaves slow; clearing it too brings the 20 ms back
        assert admin(port, "DELETE", path="faults/cpu") == \
            (200, [{"type": "slow", "factor": 2.0}])
        assert 0.039 <= median_took(port, 8) <= 0.052
        assert admin(port, "DELETE") == (200, [])
        assert median_took(port, 8) <= 0.032


@pytest.mark.slow
def test_cpu_fault_leaves_llm_iterations_alone_but_slows_own_work(tmp_path):
    def measure(port: int) -> tuple[float, float]:
        """(median tpot, median total seconds) of sequential requests."""
        tpots, took = [], []
        for _ in range(6):
            status, headers, _, t = send(port)
            assert status == 200
            tpots.append(float(headers["X-Faultmesh-Tpot"]))
            took.append(t)
        return statistics.median(tpots), statistics.median(took)

    with running(tmp_path, LLM, ["llm"]) as reps:
        port = reps["llm"][0].port
        send(port)
        tpot, took = measure(port)
        assert 0.024 <= tpot <= 0.032, tpot  # one decoding sequence: 20 + 5 ms a token
        admin(port, "POST", {"type": "cpu", "fraction": 0.25})
        cpu_tpot, cpu_took = measure(port)
        # the GPU's iterations as before; the 10 ms of own work takes 40 ms
        assert abs(cpu_tpot - tpot) <= 0.004, (tpot, cpu_tpot)
        assert 0.024 <= cpu_took - took <= 0.040, (took, cpu_took)
        # the control: slow does stretch the iterations (so the measure above can fail)
        admin(port, "DELETE", path="faults/cpu")
        admin(port, "POST", {"type": "slow", "factor": 2})
        slow_tpot, _ = measure(port)
        assert slow_tpot >= 1.8 * tpot, (tpot, slow_tpot)


def test_cpu_fault_with_a_bad_fraction_is_refused_naming_it(tmp_path):
    with running(tmp_path, SINGLE, ["one"]) as reps:
        port = reps["one"][0].port
        for bad in (0, -0.5, 1.5, "half", True, None):
            body = {"type": "cpu"} if bad is None else {"type": "cpu", "fraction": bad}
            status, out = admin(port, "POST", body)
            assert status == 400 and isinstance(out, dict), (bad, status, out)
            assert out["error"].startswith("fraction:"), out
        assert admin(port, "GET") == (200, [])  # nothing was set
        status, out = admin(port, "POST", {"type": "cpuu", "fraction": 0.5})
        assert status == 400 and "'cpu'" in out["error"] and out["error"].startswith("type:")
        # a whole CPU is a valid fraction (and no cut)
        assert admin(port, "POST", {"type": "cpu", "fraction": 1}) == (200, [])


# -- memory -------------------------------------------------------------------------------

BASE = """\
    version: 1
    name: mem
    entry: plain
    services:
      plain: {workers: 2}
      heavy:
        workers: 2
        memory: {base: 64Mi}
"""


def test_base_memory_is_resident_from_the_start(tmp_path):
    with running(tmp_path, BASE, ["plain", "heavy"]) as reps:
        plain, heavy = reps["plain"][0], reps["heavy"][0]
        extra = rss(heavy.process.pid) - rss(plain.process.pid)
        # the same program otherwise: the difference is the 64 MiB, every page resident
        assert rss(heavy.process.pid) >= 64 * MiB
        assert 62 * MiB <= extra <= 70 * MiB, extra / MiB
        assert admin(heavy.port, "GET", path="stats")[1]["memory_held"] == 64 * MiB
        stats = admin(plain.port, "GET", path="stats")[1]
        assert stats["memory_held"] is None and stats["in_progress"] == 0


def test_memory_is_only_counted_unless_the_replica_is_asked_to_hold_it(tmp_path):
    """Without --hold-memory (every live run but a docker one with a memory fault on the
    service) the model's figure is reported and no memory is taken: a 6 GiB model must not
    take 6 GiB of the machine."""
    from chaos.emulator.launch import start_replica

    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(BASE).replace(
        "\nservices:", "\nworkload: {rate: 1/s, duration: 10s}\nservices:"))
    plain = start_replica(str(path), "plain", str(tmp_path / "p.csv"))
    heavy = start_replica(str(path), "heavy", str(tmp_path / "h.csv"))
    try:
        assert rss(heavy.process.pid) - rss(plain.process.pid) < 8 * MiB
        assert admin(heavy.port, "GET", path="stats")[1]["memory_held"] == 64 * MiB
    finally:
        plain.stop()
        heavy.stop()


PER_REQUEST = """\
    version: 1
    name: mem
    entry: one
    services:
      one:
        workers: 2
        latency: 600ms
        memory: {base: 16Mi, per_request: 8Mi}
"""


@pytest.mark.slow
def test_each_request_in_progress_holds_its_memory_queued_ones_too(tmp_path):
    n = 6
    with running(tmp_path, PER_REQUEST, ["one"]) as reps:
        rep = reps["one"][0]
        pid, port = rep.process.pid, rep.port
        send(port)  # warm up: the request path's own memory is resident before we look
        before = rss(pid)
        assert admin(port, "GET", path="stats")[1]["memory_held"] == 16 * MiB
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(send(port)[0]))
                   for _ in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 2
        while admin(port, "GET", path="stats")[1]["in_progress"] < n:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stats = admin(port, "GET", path="stats")[1]
        during = rss(pid)
        # 2 working, 4 waiting for a worker: all 6 in progress (the simulator's ``active``)
        assert stats["in_progress"] == n and stats["waiting_workers"] == n - 2
        assert stats["memory_held"] == 16 * MiB + n * 8 * MiB
        rise = during - before
        assert (n * 8 - 2) * MiB <= rise <= (n * 8 + 6) * MiB, rise / MiB
        for t in threads:
            t.join(10)
        assert answers == [200] * n
        after = rss(pid)
        assert abs(after - before) <= 4 * MiB, (before / MiB, after / MiB)
        assert admin(port, "GET", path="stats")[1]["memory_held"] == 16 * MiB


def test_memory_is_freed_for_refused_requests_too(tmp_path):
    text = PER_REQUEST.replace("workers: 2", "workers: 2\n        queue: 0")
    with running(tmp_path, text, ["one"]) as reps:
        port = reps["one"][0].port
        admin(port, "POST", {"type": "errors", "rate": 1.0, "status": 503})
        for _ in range(5):
            assert send(port)[0] == 503
        stats = admin(port, "GET", path="stats")[1]
        assert stats["in_progress"] == 0 and stats["memory_held"] == 16 * MiB


def test_touched_memory_is_resident_and_given_back():
    import os

    pid = os.getpid()
    before = rss(pid)
    block = touched(32 * MiB)
    assert block is not None and len(block) == 32 * MiB
    assert rss(pid) - before >= 31 * MiB
    block.close()
    assert rss(pid) - before <= 2 * MiB
    assert touched(0) is None


def test_held_memory_counts_requests_in_progress_and_frees_their_blocks():
    import os

    held = HeldMemory(Memory(base=8 * MiB, per_request=4 * MiB))
    before = rss(os.getpid())
    held.start()
    blocks = [held.take() for _ in range(3)]
    assert held.in_progress == 3 and held.held == 20 * MiB
    assert rss(os.getpid()) - before >= 19 * MiB
    for b in blocks:
        held.give(b)
    assert all(b is not None and b.closed for b in blocks)
    assert held.in_progress == 0 and held.held == 8 * MiB
    held.close()
    assert rss(os.getpid()) - before <= 2 * MiB
    assert HeldMemory(None).held is None and HeldMemory(None).take() is None


@pytest.mark.slow
def test_holding_a_mebibyte_per_request_costs_the_request_path_little(tmp_path, capsys):
    text = """\
        version: 1
        name: cost
        entry: bare
        services:
          bare: {workers: 4}
          held:
            workers: 4
            memory: {per_request: 1Mi}
    """
    # what the replica's loop spends per request: map, write every page, unmap
    held = HeldMemory(Memory(per_request=MiB))
    held.start()
    loop_side = []
    for _ in range(300):
        t0 = time.perf_counter()
        held.give(held.take())
        loop_side.append(time.perf_counter() - t0)
    held.close()
    # end to end: the same empty request to a replica without and with 1 MiB per request
    with running(tmp_path, text, ["bare", "held"]) as reps:
        bare, with_memory = reps["bare"][0].port, reps["held"][0].port
        for port in (bare, with_memory):
            median_took(port, 20)
        a, b = [], []
        for _ in range(300):  # interleaved, so machine noise hits both alike
            a.append(send(bare)[3])
            b.append(send(with_memory)[3])
    added = statistics.median(b) - statistics.median(a)
    loop_us = statistics.median(loop_side) * 1e6
    with capsys.disabled():
        print(f"\n1 MiB per request: hold + free {loop_us:.0f} µs median in process; request "
              f"median {statistics.median(a) * 1e3:.3f} ms bare, "
              f"{statistics.median(b) * 1e3:.3f} ms with memory: added {added * 1e6:+.0f} µs")
    # kernel page zeroing, a few hundred µs per MiB on a slow VM; well under a millisecond
    assert loop_us < 800, loop_us
    assert added < 0.0008, added
