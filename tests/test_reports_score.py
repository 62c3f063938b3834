"""The resilience score against values worked out by hand (reports/score.py's formula):

    score = 40 x SLOs met + 30 x availability under fault + 15 x recovery + 15 x containment
"""

from __future__ import annotations

import math
import os

import pandas as pd
import pytest
from test_reports_fixtures import write_run

import reports
from reports.score import resilience_score


def test_every_part_worked_out_by_hand():
    # 4 of 5 SLOs: 0.8 x 40 = 32; 97 % under fault: (0.97 - 0.90) / 0.10 = 0.7, x 30 = 21;
    # recovered in 30 s: 1 - 30/120 = 0.75, x 15 = 11.25; 1 of 4 other services hit:
    # 1 - 1/4 = 0.75, x 15 = 11.25; total 75.5
    score, parts = resilience_score(slos_passed=4, slos_total=5, fault_availability=0.97,
                                    recovery_time=30.0, spread=1, others=4)
    assert score == 75.5
    assert {p.key: round(p.points, 6) for p in parts} == {
        "slos": 32.0, "availability": 21.0, "recovery": 11.25, "containment": 11.25}


@pytest.mark.parametrize("kwargs, want", [
    # no SLOs count as all met (40); 100 % under fault (30); 0 s recovery (15); no fault
    # spread (15): the full 100
    (dict(slos_passed=0, slos_total=0, fault_availability=1.0, recovery_time=0.0, spread=0,
          others=0), 100.0),
    # below the 90 % floor scores 0, never negative; never recovered scores 0; all others
    # hit scores 0: 2 of 4 SLOs is all that is left, 20
    (dict(slos_passed=2, slos_total=4, fault_availability=0.5, recovery_time=math.inf,
          spread=3, others=3), 20.0),
    # recovery past the 120 s horizon scores 0 and unknown (NaN) too; 99 % under fault:
    # 0.9 x 30 = 27; 1 of 2 SLOs: 20; half the others hit: 7.5 -> 54.5
    (dict(slos_passed=1, slos_total=2, fault_availability=0.99, recovery_time=240.0,
          spread=1, others=2), 54.5),
    (dict(slos_passed=1, slos_total=2, fault_availability=0.99, recovery_time=math.nan,
          spread=1, others=2), 54.5),
])
def test_edges_of_each_part(kwargs, want):
    assert resilience_score(**kwargs)[0] == pytest.approx(want, abs=0.05)


def _half_answered(directory: str) -> str:
    """The mini run (tests/test_reports_fixtures.py) with half of its 10 failures answered:
    requests 255, 265, ..., 295 succeed at their first llm attempt (no retry)."""
    d = write_run(directory)
    healed = set(range(255, 300, 10))
    req_path, calls_path = os.path.join(d, "requests.csv"), os.path.join(d, "calls.csv")
    req = pd.read_csv(req_path)
    mask = req["request_id"].isin(healed)
    req.loc[mask, ["status", "ok", "error"]] = [200, True, ""]
    req.to_csv(req_path, index=False)
    calls = pd.read_csv(calls_path)
    calls = calls[~(calls["request_id"].isin(healed) & (calls["attempt"] == 2))].copy()
    calls.loc[calls["request_id"].isin(healed), ["status", "ok"]] = [200, True]
    calls.to_csv(calls_path, index=False)
    return d


def test_score_of_a_hand_built_run_worked_out_by_hand(tmp_path):
    """The mini run, half of its failures answered: 5 of the 100 requests that arrive in the
    fault window [20 s, 30 s) fail, 5 of the 500 measured.

    * SLOs: chat p99 1 s <= 3 s pass; availability 495/500 = 99 % >= 99 % pass; fault
      availability 95 % < 99 % fail; steady p99 500 ms > 150 ms fail; recovery 5 s <= 60 s
      pass: 3 of 5, 0.6 x 40 = 24
    * availability under fault 95 %: (0.95 - 0.90) / 0.10 = 0.5, x 30 = 15
    * recovery 5 s: 1 - 5/120 = 115/120, x 15 = 14.375
    * containment: llm is the faulted service; gateway, the only other one, is hit (its p99
      during the fault is 1 s against 0.1 s before): 1 - 1/1 = 0, x 15 = 0
    * score 24 + 15 + 14.375 + 0 = 53.375, shown as 53.4 (53 in the page's headline)
    """
    d = _half_answered(str(tmp_path / "half"))
    a = reports.analyse(reports.load_result(d))
    parts = {p.key: p for p in a.score_parts}
    assert parts["slos"].detail == "3 of 5 hold" and parts["slos"].points == pytest.approx(24)
    assert parts["availability"].fraction == pytest.approx(0.5)
    assert parts["availability"].points == pytest.approx(15)
    assert parts["recovery"].points == pytest.approx(14.375)
    assert parts["containment"].detail == "1 of 1 other services hit"
    assert parts["containment"].points == 0
    assert a.score == 53.4
    html = open(reports.write_report([d]), encoding="utf-8").read()
    assert '<div class="score"><b>53</b>' in html
    assert '<tr><th colspan="4">resilience score</th><th class="num">53.4</th></tr>' in html
