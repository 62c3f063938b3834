"""The self-contained HTML report: one file, inline CSS and SVG figures, no network needed.

``write_report([dir])`` renders one run (templates/report.html.j2) to ``dir/report.html``;
``write_report([dir1, dir2, ...])`` renders a comparison (templates/compare.html.j2) to
``compare-report.html`` next to the first directory. The page opens with the verdict.
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any

import pandas as pd

from topologies.errors import UsageError
from topologies.files import atomic_write_text

from .analysis import Analysis, analyse
from .finalize import readable
from .formatting import format_metric, format_seconds, format_usd
from .partial import interruption, partial_text, run_notes
from .result import load_result

__all__ = ["render_run", "render_comparison", "write_report", "report_path", "headline",
           "environment"]

_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.2f} %"


@cache
def environment() -> Any:
    """The jinja2 environment of the report templates (autoescaping HTML)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(seconds=format_seconds, pct=_pct, usd=format_usd,
                       metric=lambda metric, value: format_metric(metric, value))
    return env


def _css() -> str:
    with open(os.path.join(_TEMPLATES, "style.css"), encoding="utf-8") as fh:
        return fh.read()


def verdict(a: Analysis) -> tuple[str, str]:
    """(word, css class): PASS, FAIL, or NO SLOs."""
    if not a.slos:
        return "NO SLOs", "none"
    return ("PASS", "pass") if a.passed else ("FAIL", "fail")


def headline(a: Analysis) -> str:
    """One sentence a newcomer reads first: what failed, how bad, how far it spread."""
    parts = []
    partial = partial_text(a.result)
    if partial:   # first: every figure after it describes only the part that ran
        parts.append(partial[0].upper() + partial[1:] + ".")
    failed = [s for s in a.slos if not s.passed]
    judged = [s for s in a.slos if not s.skipped]
    na = f" ({len(a.slos) - len(judged)} not applicable)" if len(judged) < len(a.slos) else ""
    if a.slos:
        if failed:
            shown = "; ".join(f"{s.name} {format_metric(s.metric, s.value)} vs "
                              f"{'≤' if s.op == 'max' else '≥'} "
                              f"{format_metric(s.metric, s.limit)}" for s in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            parts.append(f"{len(failed)} of {len(judged)} SLOs violated{na} ({shown}{more}).")
        else:
            parts.append(f"All {len(judged)} SLOs hold{na}.")
    parts.append(f"Availability {_pct(a.availability)}, p99 {format_seconds(a.latency['p99'])}.")
    if a.intervals:
        rec = a.recovery_time
        parts.append("Never recovered after the last fault." if math.isinf(rec) else
                     "Recovery unknown (no pre-fault baseline)." if math.isnan(rec) else
                     f"Back to baseline {format_seconds(rec)} after the last fault.")
        parts.append("Blast radius: " + (", ".join(a.blast_radius) if a.blast_radius else
                                         "none beyond the faulted service") + ".")
    else:
        parts.append("No faults in this run.")
    return " ".join(parts)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if len(frame) else []


def _edge_rows(a: Analysis) -> tuple[list[dict[str, Any]], str]:
    """The per-edge rows, the worst edge flagged when it retried at all, and its label."""
    rows = _rows(a.edges)
    worst = ""
    for row in rows:
        row["worst"] = (row["retry_amplification"] == a.retry_amplification
                        and a.retry_amplification > 1.0 and not worst)
        if row["worst"]:
            worst = f"{row['caller']} → {row['callee']}"
    return rows, worst


def _cards(a: Analysis) -> list[tuple[str, str]]:
    return [
        ("requests measured", f"{a.requests:,}"),
        ("availability", _pct(a.availability)),
        ("throughput", format_metric("throughput", a.throughput)),
        ("latency p50", format_seconds(a.latency["p50"])),
        ("latency p99", format_seconds(a.latency["p99"])),
        ("recovery time", format_seconds(a.recovery_time) if a.intervals else "no faults"),
        ("retry amplification", format_metric("retry_amplification", a.retry_amplification)),
        ("cost per 1k successful", format_usd(a.cost["per_1k"])),
    ]


def render_run(a: Analysis) -> str:
    """The HTML of a one-run report."""
    from .plots import run_figures

    figures = run_figures(a)
    figures.setdefault("llm", "")
    figures.setdefault("cascade", "")
    figures.setdefault("cost", "")
    word, cls = verdict(a)
    faults = a.result.faults.to_dict("records") if len(a.result.faults) else []
    edges, worst = _edge_rows(a)
    toc = [("slos", "SLOs"), ("graph", "Blast radius"), ("latency", "Latency"),
           ("throughput", "Throughput"), ("services", "Services"), ("llm", "LLM"),
           ("cascade", "Cascade"), ("cost", "Cost"), ("faults", "Faults"),
           ("topology", "Topology")]
    return environment().get_template("report.html.j2").render(
        r=a.result, a=a, css=_css(), figures=figures, verdict_word=word, verdict_class=cls,
        headline=headline(a), cards=_cards(a), impact=_rows(a.impact), llm=_rows(a.llm),
        timeline=_rows(a.timeline), edges=edges, worst_edge=worst, faults=faults, toc=toc,
        partial=interruption(a.result), notes=run_notes(a.result))


def render_comparison(analyses: list[Analysis]) -> str:
    """The HTML of a comparison report over several runs."""
    from .compare import comparison_context

    return environment().get_template("compare.html.j2").render(
        css=_css(), **comparison_context(analyses))


def report_path(result_dirs: list[str], out: str | None = None) -> str:
    """Where :func:`write_report` writes: ``out``, else ``DIR/report.html`` for one
    directory, ``compare-report.html`` in the first directory's parent for several."""
    if out:
        return out
    dirs = [os.fspath(d) for d in result_dirs]
    if len(dirs) == 1:
        return os.path.join(dirs[0], "report.html")
    return os.path.join(os.path.dirname(os.path.abspath(dirs[0])), "compare-report.html")


def write_report(result_dirs: list[str], out: str | None = None) -> str:
    """Render the report of one result directory, or a comparison of several; return its path.

    Default ``out``: ``DIR/report.html`` for one directory, ``compare-report.html`` in the
    first directory's parent for several.
    """
    dirs = [os.fspath(d) for d in result_dirs]
    if not dirs:
        raise UsageError("no result directory given")
    results = [load_result(d) for d in dirs]
    analyses = [analyse(r) for r in results]
    html = render_run(analyses[0]) if len(dirs) == 1 else render_comparison(analyses)
    path = report_path(dirs, out)
    atomic_write_text(path, html)
    readable(path)
    return path
