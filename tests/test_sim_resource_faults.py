"""The loss, cpu and memory faults in the simulator, checked against numbers worked out
independently (docs/simulation.md gives each fault's exact meaning). Seeds are fixed;
tolerances are stated per test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sim_helpers import md1_response, topo

import simulator
from simulator.faults import RTO_MAX, RTO_MIN, retransmission_delay


def expected_rto_delay(p: float, terms: int = 200) -> float:
    """Mean lateness of one segment under loss p: lost k times in a row (probability
    p^k (1 - p)) it waits RTO_MIN x (1 + 2 + ... + 2^(k-1)), each wait at most RTO_MAX."""
    total, waited = 0.0, 0.0
    for k in range(1, terms):
        waited += min(RTO_MIN * 2 ** (k - 1), RTO_MAX)
        total += p**k * (1 - p) * waited
    return total


def test_retransmission_delay_follows_the_doubling_rule():
    draws = iter([0.0, 0.0, 0.0, 0.9])   # lost, lost, lost, through (p = 0.5)
    assert retransmission_delay(0.5, lambda: next(draws)) == pytest.approx(0.2 + 0.4 + 0.8)
    assert retransmission_delay(0.5, lambda: 0.7) == 0.0
    lost = iter([0.0] * 20 + [0.9])      # the wait stops doubling at RTO_MAX
    assert retransmission_delay(0.5, lambda: next(lost)) == pytest.approx(
        sum(min(0.2 * 2**k, 120.0) for k in range(20)))
    assert expected_rto_delay(0.1) == pytest.approx(0.2 * 0.1 / (1 - 0.2))  # closed form


LOSS = """
    version: 1
    entry: a
    workload: {rate: 100, duration: 100s}
    services:
      a: {workers: 64, calls: [{to: b}]}
      b: {workers: 64, latency: 10ms}
    scenarios:
      lossy: {faults: [{type: loss, target: a->b, probability: 10%}]}
"""


def test_loss_adds_the_expected_retransmission_time_to_each_attempt():
    """Loss 10% on a->b, b takes a fixed 10 ms and never queues (64 workers at ~1 busy): each
    attempt's request and answer are late by 0.2 p / (1 - 2p) = 25 ms on average each, so
    the mean attempt takes 10 + 50 ms; about 1 - 0.9^2 = 19% of attempts are late at all.
    Tolerance 8% on the added time (~10k attempts: the added time's standard error is ~2%),
    3 points on the share."""
    t = topo(LOSS)
    r = simulator.simulate(t, "lossy", seed=4)
    calls = r.calls[r.calls["callee"] == "b"]
    took = (calls["end"] - calls["start"]).to_numpy()
    assert calls["ok"].all()
    added = took.mean() - 0.010
    assert added == pytest.approx(2 * expected_rto_delay(0.10), rel=0.08)
    late = (took > 0.010 + 1e-9).mean()
    assert late == pytest.approx(1 - 0.9**2, abs=0.03)
    # every lateness is a sum of whole RTOs (0.2, 0.6, 1.4 ... s per segment)
    extra = np.round((took - 0.010) / 0.2, 6)
    assert np.allclose(extra, np.round(extra))
    base = simulator.simulate(t, None, seed=4).calls
    assert np.allclose((base["end"] - base["start"])[base["callee"] == "b"], 0.010)


def test_loss_behind_a_timeout_turns_each_late_segment_into_a_timeout():
    """With a 100 ms timeout, any lost segment (200 ms late at least) ends the attempt as a
    timeout: the share of timeouts is 1 - (1 - p)^2 (3 points)."""
    t = topo(LOSS.replace("calls: [{to: b}]", "calls: [{to: b, timeout: 100ms}]"))
    calls = simulator.simulate(t, "lossy", seed=5).calls
    calls = calls[calls["callee"] == "b"]
    assert (calls["error"] == "timeout").mean() == pytest.approx(1 - 0.9**2, abs=0.03)
    assert set(calls["error"].dropna().unique()) <= {"timeout", ""}


CPU = """
    version: 1
    entry: s
    workload: {rate: 20, duration: 400s}
    services:
      s: {workers: 1, latency: 10ms}
    scenarios:
      throttled: {faults: [{type: cpu, target: s, start: 100s, duration: 200s, fraction: 50%}]}
"""


def test_cpu_fraction_half_doubles_service_time_in_the_window():
    """M/D/1, lambda 20/s, D 10 ms; cpu 50% for [100 s, 300 s): D becomes 20 ms there. Exactly:
    the shortest response inside is 20 ms (outside 10 ms). On average (Pollaczek-Khinchine):
    26.7 ms inside, 11.25 ms outside; tolerance 6% (~4000 requests on each side)."""
    req = simulator.simulate(topo(CPU), "throttled", seed=6).requests
    took = req["end"] - req["start"]
    inside = (req["start"] >= 101) & (req["start"] < 299)
    outside = (req["start"] < 99) | (req["start"] >= 301)
    assert took[inside].min() == pytest.approx(0.020)
    assert took[outside].min() == pytest.approx(0.010)
    assert took[inside].mean() == pytest.approx(md1_response(20, 0.020), rel=0.06)
    assert took[outside].mean() == pytest.approx(md1_response(20, 0.010), rel=0.06)


def test_cpu_fault_leaves_llm_iterations_alone():
    """An LLM's iterations run on its GPU: a cpu fault on an LLM without own processing
    changes nothing, draw for draw; a slow fault (which does slow iterations) does."""
    text = """
        version: 1
        entry: llm
        workload: {rate: 2, duration: 60s}
        services:
          llm: {kind: llm, llm: {max_batch: 4, prompt_tokens: 50, output_tokens: 20}}
        scenarios:
          cpu: {faults: [{type: cpu, target: llm, start: 10s, duration: 30s, fraction: 25%}]}
          slow: {faults: [{type: slow, target: llm, start: 10s, duration: 30s, factor: 4}]}
    """
    t = topo(text)
    base = simulator.simulate(t, None, seed=7).requests
    cut = simulator.simulate(t, "cpu", seed=7).requests
    slowed = simulator.simulate(t, "slow", seed=7).requests
    assert np.array_equal(base["end"].to_numpy(), cut["end"].to_numpy())
    assert (slowed["end"] - slowed["start"]).mean() > 1.5 * (base["end"] - base["start"]).mean()


MEMORY = """
    version: 1
    entry: s
    workload: {model: closed, users: USERS, think: 100ms, duration: 30s}
    services:
      s: {workers: 8, latency: 1s, restart: 2s, memory: {base: 100Mi, per_request: 10Mi}}
    scenarios:
      limit: {faults: [{type: memory, target: s, start: 10s, duration: 10s, limit: 125Mi}]}
"""


def _ooms(users: int) -> tuple[list[dict], object]:
    r = simulator.simulate(topo(MEMORY.replace("USERS", str(users))), "limit", seed=8)
    rows = [dict(row, parameters=json.loads(row["parameters"]))
            for row in r.faults.to_dict("records")]
    return [row for row in rows if "oom_kill" in row["parameters"]], r


def test_memory_limit_crossed_at_a_known_load_oom_kills_and_records_each_kill():
    """100Mi + 10Mi per request in progress against a 125Mi limit: 3 requests in progress
    cross it (130Mi), 2 do not (120Mi). 3 closed users (think 100 ms, 1 s each) keep 3 in
    progress: the replica is OOM-killed when the window opens at 10 s, and again each time it
    is back (restart 2 s) and the 3 users' next requests arrive (within one think time),
    so 5 kills in [10 s, 20 s); each is a faults.csv row from the kill to the restart."""
    ooms, r = _ooms(3)
    starts = [row["start"] for row in ooms]
    assert len(ooms) == 5, ooms
    assert starts[0] == pytest.approx(10.0)
    for prev, row in zip(ooms, ooms[1:], strict=False):
        assert 0.0 <= row["start"] - prev["end"] <= 0.1 + 1e-9
    for row in ooms:
        assert row["type"] == "memory" and row["target"] == "s"
        assert row["end"] - row["start"] == pytest.approx(2.0)
        assert row["parameters"] == {"limit": 125 * 2**20, "oom_kill": 0}
        assert 10.0 <= row["start"] < 20.0
    # the requests in progress at each kill fail as a kill fails them: reset
    killed = r.requests[r.requests["error"] == "reset"]
    assert len(killed) == 3 * 5
    assert np.isin(np.round(killed["end"].to_numpy(), 9), np.round(starts, 9)).all()


def test_memory_below_the_limit_kills_nothing():
    """2 closed users never have more than 2 requests in progress (120Mi < 125Mi): no OOM
    kill, every request answered; only the fault's own row is in faults.csv."""
    ooms, r = _ooms(2)
    assert ooms == [] and len(r.faults) == 1
    assert r.requests["ok"].all()


@pytest.mark.parametrize("fault", [
    "{type: loss, target: a->b, probability: 5%}",
    "{type: cpu, target: b, fraction: 50%}",
    "{type: memory, target: b, limit: 256Mi}",
])
def test_the_live_engine_refuses_them_up_front(tmp_path, fault):
    """The process runtime cannot apply these (they act on containers): exit 2 with one line,
    before anything starts."""
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(LOSS).replace("{type: loss, target: a->b, probability: 10%}", fault)
                    .replace("latency: 10ms}", "latency: 10ms, memory: {base: 64Mi}}"))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(path), "--scenario",
                          "lossy", "--out", str(out)], capture_output=True, text=True,
                         timeout=60)
    kind = fault.split(",")[0].split()[-1]
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == (f"faultmesh live: fault type '{kind}' acts on containers: "
                                  "run it with --runtime docker")
    assert not out.exists()
