"""The HTML report and the comparison report, as files a user opens."""

from __future__ import annotations

import os
import re

import pytest
from test_reports_fixtures import MINI_TOPOLOGY, write_run

import reports
from faultmesh.cli import main
from faultmesh.commands._finish import finish_run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = write_run(str(tmp_path_factory.mktemp("html") / "run"))
    path = reports.write_report([d])
    return d, path, open(path, encoding="utf-8").read()


def test_report_is_written_in_the_result_directory(report):
    d, path, _ = report
    assert path == os.path.join(d, "report.html")
    assert oct(os.stat(path).st_mode & 0o044) == oct(0o044)  # readable by others, like any file


def test_report_opens_with_the_verdict_score_and_how_it_is_computed(report):
    _, _, html = report
    verdict = html.index('id="verdict"')
    assert verdict < html.index('id="slos"') < html.index('id="graph"') < html.index(
        'id="latency"')
    assert ">FAIL<" in html[verdict:verdict + 400]
    assert "3 of 5 SLOs violated" in html
    assert "score = 40 × SLOs met + 30 × availability under fault" in html
    # the score worked out by hand (tests/test_reports_fixtures.py's mini run): 2 of 5 SLOs
    # hold, 0.4 x 40 = 16; 90 % under fault is the floor, 0; back in 5 s, 115/120 x 15 =
    # 14.375; gateway, the one service not faulted, is hit, 0: 30.375 -> 30.4, headline 30
    assert '<div class="score"><b>30</b>' in html
    assert "<td>2 of 5 hold</td><td class=\"num\">0.40</td>" in html
    assert "<td>5 s (0 s full, 120 s or never scores 0)</td><td class=\"num\">0.96</td>" in html
    assert "<td>1 of 1 other services hit</td><td class=\"num\">0.00</td>" in html
    assert '<tr><th colspan="4">resilience score</th><th class="num">30.4</th></tr>' in html
    for row in ("chat p99", "fault availability", "steady p99"):
        assert f"<td>{row}</td>" in html


def test_report_is_self_contained_with_every_figure_inline(report):
    _, _, html = report
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<link" not in html and "<script src" not in html
    figures = set(re.findall(r'data-figure="([\w-]+)"', html))
    assert figures == {"call-graph", "latency", "throughput", "services", "llm", "cascade",
                       "cost"}
    assert "<style>" in html


def test_report_sections_carry_units_cascade_cost_and_topology(report):
    _, _, html = report
    for label in ("latency (s)", "requests (req/s)", "error rate (%)", "utilization (%)",
                  "queued (requests)", "replicas (count)", "time to first token (s)",
                  "time per output token (ms)", "cumulative cost (USD)",
                  "time since start of run (s)"):
        assert label in html, label
    assert "Cascade timeline" in html and "<td>llm</td>" in html
    assert "$0.146" in html  # cost total from summary.json
    assert "name: mini" in html  # the resolved topology text
    assert "1.02x" in html  # retry amplification: the worst edge, gateway -> llm


def test_report_of_a_run_without_faults_or_slos(tmp_path):
    d = write_run(str(tmp_path / "calm"), fault=False, topology=MINI_TOPOLOGY.split("slos:")[0])
    html = open(reports.write_report([d]), encoding="utf-8").read()
    assert ">NO SLOs<" in html
    assert "No faults in this run" in html


def test_finish_run_finalizes_and_writes_the_report(tmp_path):
    d = write_run(str(tmp_path / "run"))
    summary = finish_run(d)
    assert summary["resilience"]["recovery_time"] == 5.0
    assert os.path.isfile(os.path.join(d, "report.html"))
    d2 = write_run(str(tmp_path / "quiet"))
    finish_run(d2, report=False)
    assert not os.path.exists(os.path.join(d2, "report.html"))


def test_comparison_report_labels_runs_and_tabulates_differences(tmp_path, capsys):
    sim = write_run(str(tmp_path / "sim"), engine="sim", seed=3)
    live = write_run(str(tmp_path / "live"), engine="live", seed=3, slow=2.0)
    assert main(["report", sim, live]) == 0
    path = os.path.join(str(tmp_path), "compare-report.html")
    assert f"wrote {path}" in capsys.readouterr().out
    html = open(path, encoding="utf-8").read()
    assert "sim/brownout/seed 3" in html and "live/brownout/seed 3" in html
    assert "Δ vs first" in html
    # p99 doubles (1 s -> 2 s) in the live run: +1 s (+100%)
    assert re.search(r"latency p99</td><td class=\"num\">1 s</td><td class=\"num\">2 s</td>"
                     r"<td class=\"num delta\">\+1 s \(\+100%\)</td>", html)
    assert len(re.findall(r'data-figure="cmp-', html)) == 3 and 'data-figure="cdf"' in html


def test_comparison_of_replications_with_equal_labels_adds_the_directory(tmp_path):
    a = write_run(str(tmp_path / "rep-1"))
    b = write_run(str(tmp_path / "rep-2"))
    out = str(tmp_path / "cmp.html")
    assert reports.write_report([a, b], out) == out
    html = open(out, encoding="utf-8").read()
    assert "sim/brownout/seed 1 (rep-1)" in html and "sim/brownout/seed 1 (rep-2)" in html


def test_comparison_shows_not_applicable_slos_as_such_not_as_passes(tmp_path):
    base = write_run(str(tmp_path / "base"), fault=False)
    faulted = write_run(str(tmp_path / "faulted"))
    out = str(tmp_path / "cmp.html")
    reports.write_report([base, faulted], out)
    html = open(out, encoding="utf-8").read()
    # the baseline has no fault window: its one fault-window SLO (fault availability) is n/a
    # and not counted
    assert "(1 n/a)" in html
    assert re.search(r'<td class="num">n/a</td>', html)


HOSTILE = "<script>alert(1)</script> & <b>co</b>"


def test_topology_text_is_escaped_in_the_report(tmp_path):
    """Descriptions (topology, service, scenario) and SLO names are the user's text: the page
    shows them as text, never as markup (a shared report.html must not run a script)."""
    text = MINI_TOPOLOGY.replace(
        "name: mini\n", f"name: mini\ndescription: '{HOSTILE}'\n").replace(
        "  gateway:\n", f"  gateway:\n    description: '{HOSTILE}'\n").replace(
        "  brownout:\n", f"  brownout:\n    description: '{HOSTILE}'\n").replace(
        "{name: chat p99,", "{name: 'chat p99 <script>alert(1)</script> &',")
    from topologies import loads

    topo = loads(text)   # the text is a valid topology, descriptions and all
    assert topo.services["gateway"].description == HOSTILE
    d = write_run(str(tmp_path / "run"), topology=text)
    html = open(reports.write_report([d]), encoding="utf-8").read()
    assert "<script>alert(1)</script>" not in html and "<b>co</b>" not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # every occurrence of the text is the escaped one: three descriptions in the topology's
    # YAML, the SLO's name in its table row and in the YAML
    assert html.count("alert(1)") == html.count(escaped) >= 5
    assert f"{escaped} &amp; &lt;b&gt;co&lt;/b&gt;" in html
    assert f"<td>chat p99 {escaped} &amp;</td>" in html
