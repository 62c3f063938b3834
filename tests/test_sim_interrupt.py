"""Ctrl-C and progress as a user at a terminal meets them: an interrupted `faultmesh sim`
still leaves its results, marked partial, and a long run shows how far it has got."""

from __future__ import annotations

import json
import re
import signal

import pytest
from sim_helpers import long_sim_running


def _run_until_progress_then_interrupt(tmp_path, *options):
    """Start a long run, wait (bounded) until it reports progress, then press Ctrl-C."""
    proc, out, err = long_sim_running(tmp_path, *options)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    return proc.returncode, err.read_text(), out


def test_ctrl_c_leaves_partial_results_and_exit_130(tmp_path):
    code, stderr, out = _run_until_progress_then_interrupt(tmp_path)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    assert 0 < summary["duration"] < 20000
    assert (out / "requests.csv").stat().st_size > 1000


def test_an_interrupted_run_still_gets_its_verdicts_and_a_report_flagged_partial(tmp_path):
    code, stderr, out = _run_until_progress_then_interrupt(tmp_path, "--seed", "0")
    assert code == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and "resilience" in summary
    page = (out / "report.html").read_text()
    assert "<b>Partial run</b>: interrupted at" in page and "(partial run)" in page


@pytest.mark.slow
def test_long_runs_show_progress_in_simulated_seconds(tmp_path):
    _, stderr, _ = _run_until_progress_then_interrupt(tmp_path)
    assert re.search(r"[0-9,]+/20,000 s simulated \(\d+%\), [0-9,]+ requests", stderr), \
        stderr[-300:]


def test_an_interrupt_between_two_appends_of_a_row_loses_only_that_row():
    from simulator.recorder import Recorder

    rec = Recorder()
    rid = rec.request_start(0.0)
    rec.call_start(rid, -1, 0, 1, 1, 0.0)
    rec.r_start.append(1.0)        # a second request cut short after its first column
    rec.c_request.append(rid)      # and a call attempt after its first column
    rec.llm[1] = (0.1, 0.01, 5)
    rec.trim()
    assert rec.n_requests == 1 and rec.n_calls == 1
    assert len(rec.r_end) == len(rec.r_start) and len(rec.c_cost) == len(rec.c_request)
    assert 1 not in rec.llm
