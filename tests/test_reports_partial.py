"""A partial (interrupted) run says so everywhere (issue 8, point 8): the report's header,
the gate (exit 3 unless --allow-partial, then judged and still labelled), its JUnit XML,
the Python API, and comparison reports.

The partial run is a real simulation stopped the way Ctrl-C stops it: a KeyboardInterrupt
raised while the simulation runs (here from its progress callback, at 20 s of 60 s).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest
from sim_helpers import topo

import reports
import simulator
from faultmesh.cli import main

SIMPLE = """
    version: 1
    name: simple
    entry: gateway
    workload: {model: open, rate: 20, duration: 60, warmup: 5}
    services:
      gateway:
        workers: 20
        latency: {dist: constant, value: 2ms}
        calls: [{to: backend}]
      backend:
        workers: 20
        latency: {dist: constant, value: 20ms}
    scenarios:
      slow-backend:
        faults: [{type: latency, target: backend, start: 10s, duration: 30s, latency: 200ms}]
    slos:
      - {name: p99, metric: latency_p99, max: 1s}
      - {name: availability, metric: availability, min: 99%}
"""


class _CtrlC:
    """A progress callback that interrupts the run once simulated time reaches ``at``."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self, now: float, *_: object) -> None:
        if now >= self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(whole, partial): the same scenario run to its end, and interrupted at 20 s of 60 s."""
    root = tmp_path_factory.mktemp("partial")
    t = topo(SIMPLE)
    whole, partial = str(root / "run-a"), str(root / "run-b")   # names say nothing
    simulator.simulate(t, "slow-backend", seed=2).write(whole)
    simulator.simulate(t, "slow-backend", seed=2, progress=_CtrlC(20.0)).write(partial)
    return whole, partial


def _summary(d):
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_the_interrupted_run_is_marked_with_how_far_it_got(runs):
    whole, partial = runs
    s = _summary(partial)
    assert s["partial"] is True
    assert (s["end"], s["planned_duration"]) == (20.0, 60.0)
    assert _summary(whole)["partial"] is False
    assert _summary(whole)["planned_duration"] == 60.0
    from reports.partial import partial_text

    assert partial_text(reports.load_result(partial)) == "partial run: interrupted at 20 s of 60 s"
    assert partial_text(reports.load_result(whole)) is None


def test_gate_gives_no_verdict_on_a_partial_run_exit_3(runs, tmp_path, capsys):
    whole, partial = runs
    junit = str(tmp_path / "slo.xml")
    assert main(["gate", whole]) == 0          # the same scenario, whole, passes
    capsys.readouterr()
    assert main(["gate", partial, "--junit", junit]) == 3
    captured = capsys.readouterr()
    assert "⚠️ INCOMPLETE — 1 of 1 runs partial (interrupted): no verdict (exit 3)" in captured.out
    assert "partial run: interrupted at 20 s of 60 s" in captured.out
    assert "| slow-backend (sim, seed 2, partial) | p99 |" in captured.out
    assert "⚠️ partial (pass as it stands)" in captured.out
    assert "✅ pass" not in captured.out
    assert "--allow-partial" in captured.err
    root = ET.parse(junit).getroot()
    assert (root.get("errors"), root.get("failures")) == ("2", "0")
    suite = root.find("testsuite")
    assert suite.get("name") == "simple/slow-backend (sim, seed 2, partial)"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["partial"] == "true"
    errors = [c.find("error") for c in suite.findall("testcase")]
    assert all(e is not None and e.get("type") == "PartialRun" for e in errors)
    assert errors[0].get("message").startswith("partial run: interrupted at 20 s of 60 s")


def test_allow_partial_judges_the_run_and_keeps_the_label(runs, tmp_path, capsys):
    _, partial = runs
    junit = str(tmp_path / "slo.xml")
    assert main(["gate", partial, "--allow-partial", "--junit", junit]) == 0
    out = capsys.readouterr().out
    assert "✅ PASS — all 2 SLO checks hold" in out
    assert "| slow-backend (sim, seed 2, partial) | p99 |" in out
    assert "judged as it stands (--allow-partial)" in out
    root = ET.parse(junit).getroot()
    assert (root.get("errors"), root.get("failures")) == ("0", "0")
    suite = root.find("testsuite")
    assert "partial" in suite.get("name")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["partial"] == "true"


def test_a_partial_run_among_whole_ones_still_makes_the_gate_incomplete(runs):
    whole, partial = runs
    outcome = reports.gate([whole, partial])
    assert [r.partial for r in outcome.runs] == [False, True]
    assert outcome.incomplete and not outcome.passed and outcome.exit_code == 3
    allowed = reports.gate([whole, partial], allow_partial=True)
    assert not allowed.incomplete and allowed.passed and allowed.exit_code == 0
    assert [r.label for r in allowed.partial_runs] == ["slow-backend (sim, seed 2, partial)"]


def test_the_report_header_shows_the_partial_banner(runs, tmp_path):
    whole, partial = runs
    path = str(tmp_path / "partial.html")
    assert main(["report", partial, "-o", path]) == 0
    html = open(path, encoding="utf-8").read()
    assert "<title>PASS (partial run) · simple" in html
    banner = html[html.index('id="partial"'):]
    banner = banner[:banner.index("</p>")]
    assert "<b>Partial run</b>: interrupted at 20 s of 60 s." in banner
    assert html.index('id="partial"') < html.index('id="verdict"')
    headline = html[html.index('class="headline"'):]
    assert headline.startswith('class="headline">Partial run: interrupted at 20 s of 60 s.')
    whole_html = open(reports.write_report([whole], str(tmp_path / "whole.html"))).read()
    assert 'id="partial"' not in whole_html and "Partial run" not in whole_html


def test_the_comparison_marks_which_side_is_partial(runs, tmp_path):
    whole, partial = runs
    path = str(tmp_path / "cmp.html")
    assert main(["report", whole, partial, "-o", path]) == 0
    html = open(path, encoding="utf-8").read()
    banner = html[html.index('id="partial"'):]
    banner = banner[:banner.index("</p>")]
    assert "interrupted at 20 s of 60 s" in banner
    cards = html[html.index('id="verdict"'):html.index('id="slos"')]
    assert cards.count("PARTIAL RUN: interrupted at 20 s of 60 s") == 1
    # the partial side's label says so in every column head; the whole side's does not
    head = html[html.index('id="differences"'):]
    head = head[:head.index("</tr>")]
    assert "(partial)" in head and head.count("(partial)") == 1
    from reports.compare import run_labels

    labels = run_labels([reports.analyse(reports.load_result(d)) for d in (whole, partial)])
    assert [lab.endswith("(partial)") for lab in labels] == [False, True]


def test_an_interrupted_drain_says_so(runs, tmp_path):
    from reports.partial import partial_text

    _, partial = runs
    s = _summary(partial)
    d = tmp_path / "drain"
    d.mkdir()
    for name in os.listdir(partial):
        os.symlink(os.path.join(partial, name), d / name)
    os.unlink(d / "summary.json")
    (d / "summary.json").write_text(json.dumps({**s, "end": 63.5}))
    assert partial_text(reports.load_result(str(d))) == (
        "partial run: interrupted at 63.5 s, while draining after 60 s of arrivals")


@pytest.mark.slow
@pytest.mark.browser
def test_the_banner_is_seen_on_the_first_screen(runs, tmp_path):
    """Rendered by headless Chromium at laptop width: the amber banner stands between the
    title and the verdict, on the first screen, and the page has no errors."""
    from test_reports_browser import CHROMIUM, WIDTH, _chromium, _console_errors, _probe

    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed")
    _, partial = runs
    path = reports.write_report([partial], str(tmp_path / "partial.html"))
    data, stderr = _probe(path, tmp_path)
    assert data["errors"] == [] and _console_errors(stderr) == []
    assert data["width"] <= WIDTH
    shot = tmp_path / "top.png"
    _chromium((tmp_path / "probed.html").as_uri(), tmp_path, f"--window-size={WIDTH},400",
              f"--screenshot={shot}")
    import matplotlib.image

    top = matplotlib.image.imread(str(shot))[:400, :, :3]
    # the banner's border (#b45309) and its background (#fffbeb)
    border = ((abs(top[..., 0] - 0xb4 / 255) < 0.08) & (abs(top[..., 1] - 0x53 / 255) < 0.08)
              & (abs(top[..., 2] - 0x09 / 255) < 0.08)).sum()
    fill = ((top[..., 0] > 0.98) & (abs(top[..., 1] - 0xfb / 255) < 0.01)
            & (abs(top[..., 2] - 0xeb / 255) < 0.01)).sum()
    assert border > 2000 and fill > 20000, (border, fill)
