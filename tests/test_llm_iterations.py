"""LLM serving as iterations with chunked prefill (topologies.batching), in both engines.

The scheduler alone, then the simulator against a hand-computed schedule and the GPU's
capacity bound (prefill costs time: a replica cannot finish more prompts per second than
1 / (prompt tokens x prefill_per_token)), then the emulator's engine on the real clock
against the simulator for the same deterministic case.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from sim_helpers import topo

import simulator
from chaos.emulator.llm import BatchEngine as LiveEngine
from simulator.engine import Simulation
from topologies.batching import DECODE, DROPPED, PREFILL, IterationScheduler, Sequence
from topologies.model import Fault, LLMConfig, LLMStep, Scenario


def config(max_batch: int = 4, budget: int = 100, base: float = 0.01,
           per_sequence: float = 0.001, per_token: float = 0.0001) -> LLMConfig:
    return LLMConfig(max_batch=max_batch, max_batched_tokens=budget, prefill_per_token=per_token,
                     step=LLMStep(base=base, per_sequence=per_sequence))


def chunks(it) -> list[int]:
    return [c for _, c in it.prefill]


# -- the scheduler --------------------------------------------------------------------------

def test_a_long_prompt_is_prefilled_in_chunks_and_its_first_token_ends_the_last_chunk():
    s = IterationScheduler(config(budget=100))
    seq = Sequence(250, 3)
    s.add(seq)
    sizes, firsts = [], []
    for t in range(3):
        it = s.plan(float(t))
        sizes.append(chunks(it))
        assert it.decode == [] and it.duration == pytest.approx(0.01 + 0.0001 * sizes[-1][0])
        first, finished = s.complete(it, t + 1.0)
        firsts.append(first)
    assert sizes == [[100], [100], [50]]
    assert firsts == [[], [], [seq]] and seq.first == 3.0 and seq.admitted == 0.0
    assert seq.state == DECODE and seq.generated == 1


def test_decodes_come_first_and_the_rest_of_the_budget_goes_to_prompts_in_admission_order():
    s = IterationScheduler(config(budget=100))
    a, b = Sequence(10, 5), Sequence(20, 5)
    s.add(a)
    s.add(b)
    it = s.plan(0.0)
    assert chunks(it) == [10, 20] and it.admitted == [a, b] and it.tokens == 30
    s.complete(it, 1.0)
    c, d = Sequence(90, 5), Sequence(90, 5)
    s.add(c)
    s.add(d)
    it = s.plan(1.0)
    # a and b decode (2 tokens of the budget); c takes 90, d the last 8
    assert it.decode == [a, b] and chunks(it) == [90, 8] and it.tokens == 100
    assert it.duration == pytest.approx(0.01 + 2 * 0.001 + 98 * 0.0001)
    first, _ = s.complete(it, 2.0)
    assert first == [c] and d.prefilled == 8
    it = s.plan(2.0)
    # the partially prefilled d goes before anything new; the three decoders first
    assert it.decode == [a, b, c] and chunks(it) == [82]
    assert s.complete(it, 3.0) == ([d], [])


def test_at_most_max_batch_sequences_hold_a_place_and_the_others_wait_in_arrival_order():
    s = IterationScheduler(config(max_batch=2, budget=100))
    seqs = [Sequence(10, 2) for _ in range(4)]
    for q in seqs:
        s.add(q)
    it = s.plan(0.0)
    assert it.admitted == seqs[:2] and s.batch == 2 and list(s.waiting) == seqs[2:]
    s.complete(it, 1.0)
    it = s.plan(1.0)
    assert it.decode == seqs[:2] and it.prefill == [] and it.admitted == []
    assert s.complete(it, 2.0) == ([], seqs[:2])   # second token: done, places free
    it = s.plan(2.0)
    assert it.admitted == seqs[2:] and s.batch == 2 and not s.waiting


def test_a_waiting_sequence_takes_a_place_only_when_the_budget_leaves_it_tokens():
    s = IterationScheduler(config(max_batch=4, budget=100))
    big, small = Sequence(500, 2), Sequence(10, 2)
    s.add(big)
    s.add(small)
    it = s.plan(0.0)
    assert it.admitted == [big] and chunks(it) == [100] and list(s.waiting) == [small]
    assert small.state != PREFILL and math.isnan(small.admitted)


def test_a_one_token_output_is_done_in_the_iteration_that_finishes_its_prompt():
    s = IterationScheduler(config())
    seq = Sequence(40, 1)
    s.add(seq)
    it = s.plan(0.0)
    assert s.complete(it, 0.5) == ([seq], [seq])
    assert seq.first == seq.finished == 0.5 and s.batch == 0 and s.plan(0.5) is None


def test_a_sequence_leaves_at_the_end_of_the_iteration_of_its_last_token():
    s = IterationScheduler(config())
    seq = Sequence(10, 3)
    s.add(seq)
    ends = []
    t = 0.0
    while (it := s.plan(t)) is not None:
        t += it.duration
        first, finished = s.complete(it, t)
        ends.append((bool(first), bool(finished)))
    assert ends == [(True, False), (False, False), (False, True)]
    assert seq.finished == pytest.approx(0.011 + 2 * 0.011)


def test_a_crash_drops_every_sequence_and_a_removed_one_gets_nothing_more():
    s = IterationScheduler(config(max_batch=2))
    seqs = [Sequence(10, 5) for _ in range(3)]
    for q in seqs:
        s.add(q)
    it = s.plan(0.0)
    assert s.remove(seqs[0]) is True     # caller gone mid-iteration
    first, _ = s.complete(it, 1.0)
    assert first == [seqs[1]] and seqs[0].state == DROPPED and s.batch == 1
    lost = s.drop_all()
    assert set(map(id, lost)) == set(map(id, seqs[1:]))
    assert all(q.state == DROPPED for q in seqs) and s.batch == 0 and s.plan(1.0) is None


def test_the_budget_must_hold_a_token_for_every_place():
    with pytest.raises(ValueError, match="max_batched_tokens"):
        IterationScheduler(config(max_batch=8, budget=4))


# -- the simulator ----------------------------------------------------------------------------

CAPACITY = """
    version: 1
    name: long-prompts
    entry: llm
    workload: {{model: open, rate: {rate}, duration: {duration}, warmup: 0, timeout: 1h}}
    services:
      llm:
        kind: llm
        llm:
          max_batch: 16
          prompt_tokens: {{dist: constant, value: 2000}}
          output_tokens: {{dist: constant, value: 4}}
          prefill_per_token: {per_token}
          step: {{base: 10ms, per_sequence: 1ms}}
"""


def served(r, duration: float) -> float:
    c = r.calls
    return float(((c["callee"] == "llm") & (c["status"] == 200) & (c["end"] <= duration)).sum()
                 / duration)


def test_prefill_time_bounds_a_replicas_throughput():
    """2000-token prompts at 1 ms per token: at most 0.5 prompts per second of GPU time, so
    at 3 requests/s offered one replica serves <= 0.5/s and the rest queue (the old model,
    prefill in parallel beside decoding, served 2.9/s)."""
    duration = 120.0
    r = simulator.simulate(topo(CAPACITY.format(rate=3, duration=duration, per_token="1ms")),
                           seed=1)
    assert 0.4 <= served(r, duration) <= 0.5 + 0.01
    ttft = r.calls["ttft"].dropna()
    assert ttft.median() > 20          # long queueing for a place and for the budget
    ts = r.timeseries[r.timeseries["service"] == "llm"]
    assert ts[(ts["t"] >= duration - 10) & (ts["t"] < duration)]["queued"].min() > 100
    assert ts["batch"].max() <= 16


HAND = """
    version: 1
    name: hand
    entry: llm
    workload: {{model: closed, users: 2, duration: {duration}, warmup: 0}}
    services:
      llm:
        kind: llm
        llm:
          max_batch: 8
          max_batched_tokens: 2048
          prompt_tokens: {{dist: constant, value: 1500}}
          output_tokens: {{dist: constant, value: 3}}
          prefill_per_token: 0.1ms
          step: {{base: 10ms, per_sequence: 1ms}}
"""

# Two users at t=0 (A then B), then A again when its answer comes:
#   it1 0      - 0.2148  A 1500 + B 548 prompt tokens: 10 ms + 2048 x 0.1 ms; A's first token
#   it2 0.2148 - 0.3210  A decodes, B's last 952: 10 + 1 + 95.2 ms; B's first token
#   it3 0.3210 - 0.3330  A, B decode: 12 ms; A's third token, done (tpot (0.333-0.2148)/2)
#   it4 0.3330 - 0.3440  B decodes (A's next request arrives as it starts): B done
#   it5 0.3440 - 0.5040  A2's 1500 tokens: 10 + 150 ms; ttft 0.504 - 0.333 = 0.171
HAND_TTFT = [0.2148, 0.321, 0.171]
HAND_TPOT = [(0.333 - 0.2148) / 2, (0.344 - 0.321) / 2]


def test_simulator_follows_the_hand_computed_iteration_schedule():
    r = simulator.simulate(topo(HAND.format(duration=3)), seed=0)
    c = r.calls.sort_index()
    assert c["ttft"].head(3).to_numpy() == pytest.approx(HAND_TTFT, abs=1e-9)
    assert c["tpot"].head(2).to_numpy() == pytest.approx(HAND_TPOT, abs=1e-9)
    assert c["end"].head(2).to_numpy() == pytest.approx([0.333, 0.344], abs=1e-9)


def test_slow_fault_stretches_iterations_of_requests_already_generating():
    """One user, 11 tokens: ttft 10 + 150 ms, then 10 steps of 11 ms. slow x3 from 0.2 s on
    (the first request is decoding then) triples its later steps."""
    text = HAND.format(duration=1).replace("users: 2", "users: 1").replace(
        "value: 3}", "value: 11}")
    r = simulator.simulate(topo(text), Scenario("s", faults=(
        Fault("slow", "llm", start=0.2, duration=10, factor=3),)), seed=0)
    first = r.calls.sort_index().iloc[0]
    assert first["ttft"] == pytest.approx(0.16)
    # steps starting at 0.16 (11 ms, before the fault), 0.171 and 0.182 (11 ms), then 33 ms:
    # the step that starts at 0.193 is normal, those from 0.204 on are slowed
    assert first["end"] == pytest.approx(0.16 + 4 * 0.011 + 6 * 0.033)


def test_batch_counts_places_and_the_busy_meter_integrates_them_and_a_kill_empties_it():
    # (users think 10 ms, so that after the kill their refused requests do not spin)
    text = HAND.format(duration=5).replace(
        "users: 2", "users: 3, think: {dist: constant, value: 10ms}")
    sim = Simulation(topo(text), Scenario("k", faults=(
        Fault("kill", "llm", start=2.0, replicas=1),)), seed=0)
    svc = sim.services["llm"]
    sim.env.run(until=1.0)
    engine = svc.replicas[0].engine
    assert engine.batch == len(engine.members) == svc.busy_meter.level
    assert 1 <= engine.batch <= 3
    # the meter's integral is the place-seconds held: those of finished sequences (their
    # cost) plus those held so far by the members
    held = svc.work_done + sum(1.0 - s.admitted for s in engine.members)
    assert svc.busy_meter.total(1.0) == pytest.approx(held, rel=1e-12)
    assert 1.5 < held <= 3.0
    sim.env.run(until=2.5)
    assert svc.busy_meter.level == 0 and engine.dead and engine.batch == 0


# -- the emulator's engine on the real clock -------------------------------------------------

def live_config(text: str) -> LLMConfig:
    return topo(text).services["llm"].llm


async def _two_at_once(cfg: LLMConfig) -> list:
    engine = LiveEngine(cfg)
    engine.start()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        a = asyncio.ensure_future(engine.generate(1500, 3))
        b = asyncio.ensure_future(engine.generate(1500, 3))
        ga, gb = await asyncio.gather(a, b)
        return [ga.first - t0, gb.first - t0, ga.tpot, gb.tpot]
    finally:
        await engine.stop()


def test_emulator_engine_matches_the_simulators_ttft_for_the_same_case():
    """Two requests at once on the real clock: ttft and tpot within 15 ms of the
    simulator's for the same deterministic case (timer and loop overhead are ~1 ms per
    iteration)."""
    sim = simulator.simulate(topo(HAND.format(duration=1)), seed=0).calls.sort_index()
    want = [*sim["ttft"].head(2), *sim["tpot"].head(2)]
    got = asyncio.run(_two_at_once(live_config(HAND.format(duration=1))))
    assert got == pytest.approx(want, abs=0.015)


async def _offer(cfg: LLMConfig, rate: float, seconds: float) -> tuple[int, int]:
    engine = LiveEngine(cfg)
    engine.start()
    done = 0

    async def one() -> None:
        nonlocal done
        await engine.generate(2000, 4)
        done += 1

    tasks = []
    t0 = time.monotonic()
    try:
        for k in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, t0 + k / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
        return done, engine.waiting
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop()


@pytest.mark.slow
def test_emulator_engine_has_the_same_capacity_bound():
    """2000-token prompts at 0.05 ms per token (0.1 s of prefill each: at most 10/s, and
    10 ms of base per iteration of <= 2048 tokens makes it ~9.1/s) offered at 30/s for 3 s:
    at most ~27 finish, the rest wait; the simulator gives the same bound."""
    seconds, rate = 3.0, 30.0
    text = CAPACITY.format(rate=rate, duration=seconds, per_token="0.05ms")
    done, waiting = asyncio.run(_offer(live_config(text), rate, seconds))
    bound = seconds * 2048 / 2000 / (0.01 + 2048 * 0.00005)
    assert 0.7 * bound <= done <= bound + 1
    assert waiting > 30
    r = simulator.simulate(topo(text), seed=0)
    assert served(r, seconds) * seconds <= bound + 1
