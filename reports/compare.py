"""Several runs side by side: scenarios, replications, or sim against live.

Runs are labelled ``engine/scenario/seed`` from summary.json (the directory name is added
when two labels would be equal, and `` (partial)`` when the run was interrupted, so every
column, legend and card says which side is not whole). The first run is the reference: the
table of differences gives each figure per run and its change against the first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .formatting import format_metric, format_value
from .metrics import success_latency
from .partial import interruption, is_partial, run_notes
from .plots import PALETTE, new_figure, to_svg

if TYPE_CHECKING:
    from .analysis import Analysis

__all__ = ["run_labels", "difference_rows", "slo_matrix", "comparison_figures",
           "comparison_context"]

# (label, unit, getter): units of formatting.format_value; "n" a plain number
_FIGURES: list[tuple[str, str, Callable[[Analysis], float]]] = [
    ("requests measured", "n", lambda a: float(a.requests)),
    ("availability", "%", lambda a: a.availability),
    ("error rate", "%", lambda a: 1 - a.availability),
    ("throughput (req/s)", "n", lambda a: a.throughput),
    ("latency mean", "s", lambda a: a.latency["mean"]),
    ("latency p50", "s", lambda a: a.latency["p50"]),
    ("latency p90", "s", lambda a: a.latency["p90"]),
    ("latency p99", "s", lambda a: a.latency["p99"]),
    ("latency p99.9", "s", lambda a: a.latency["p999"]),
    ("latency max", "s", lambda a: a.latency["max"]),
    ("recovery time", "s", lambda a: a.recovery_time),
    ("retry amplification", "x", lambda a: a.retry_amplification),
    ("cost total", "USD", lambda a: a.cost["total"]),
    ("cost per 1k successful", "USD", lambda a: a.cost["per_1k"]),
    ("cost wasted", "USD", lambda a: a.cost["wasted"]),
    ("resilience score", "n", lambda a: a.score),
]


def run_labels(analyses: list[Analysis]) -> list[str]:
    """engine/scenario/seed per run, made unique with the directory name when needed, and
    `` (partial)`` after the label of an interrupted run."""
    labels = [a.result.label for a in analyses]
    if len(set(labels)) < len(labels):
        # the part of each path that differs: "rep-1", or "replicas=4/llm-brownout/seed-0"
        # for the runs of a sweep, whose directories end alike
        labels = [f"{lab} ({part})" for lab, part in
                  zip(labels, _distinct_parts([a.result.path for a in analyses]), strict=True)]
    return [f"{lab} (partial)" if is_partial(a.result) else lab
            for lab, a in zip(labels, analyses, strict=True)]


def _distinct_parts(paths: list[str]) -> list[str]:
    """The path components that tell the directories apart (common head and tail dropped)."""
    parts = [os.path.abspath(p).split(os.sep) for p in paths]
    if len({tuple(p) for p in parts}) < len(parts):
        return [os.path.basename(os.path.normpath(p)) for p in paths]
    shortest = min(len(p) for p in parts)
    head = 0
    while head < shortest - 1 and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head - 1 and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    return ["/".join(p[head:len(p) - tail]) for p in parts]


def _fmt(kind: str, value: float) -> str:
    return format_value(kind, value) if kind != "n" or value != value else f"{value:,.4g}"


def _delta(kind: str, value: float, base: float) -> str:
    if any(isinstance(x, float) and (math.isnan(x) or math.isinf(x)) for x in (value, base)):
        return "" if value == base else "changed"
    diff = value - base
    if diff == 0:
        return "="
    sign = "+" if diff > 0 else "−"
    if kind == "%":
        return f"{sign}{abs(diff) * 100:.2f} pp"
    text = sign + _fmt(kind, abs(diff))  # +$0.05, −1.2 s
    if base:
        text += f" ({diff / abs(base):+.0%})"
    return text


def difference_rows(analyses: list[Analysis]) -> list[dict[str, Any]]:
    """One row per figure: ``label``, ``values`` (formatted, per run), ``deltas`` vs run 1."""
    rows = []
    for label, kind, get in _FIGURES:
        raw = [get(a) for a in analyses]
        rows.append({"label": label, "values": [_fmt(kind, v) for v in raw],
                     "deltas": [""] + [_delta(kind, v, raw[0]) for v in raw[1:]]})
    rows.append({"label": "blast radius",
                 "values": [", ".join(a.blast_radius) or "none" for a in analyses],
                 "deltas": [""] + ["=" if a.blast_radius == analyses[0].blast_radius
                                   else "changed" for a in analyses[1:]]})
    return rows


def slo_matrix(analyses: list[Analysis]) -> list[dict[str, Any]]:
    """One row per SLO (by name, window): its limit and, per run, value and pass/fail."""
    keys: list[tuple[str, str]] = []
    for a in analyses:
        for s in a.slos:
            if (s.name, s.window) not in keys:
                keys.append((s.name, s.window))
    rows = []
    for name, window in keys:
        cells, limit = [], ""
        for a in analyses:
            match = next((s for s in a.slos if (s.name, s.window) == (name, window)), None)
            if match is None:
                cells.append(None)
                continue
            limit = ("≤ " if match.op == "max" else "≥ ") + format_metric(match.metric,
                                                                          match.limit)
            cells.append({"value": "n/a" if match.skipped else format_metric(match.metric,
                                                                             match.value),
                          "passed": match.passed, "skipped": match.skipped})
        rows.append({"name": name, "window": window, "limit": limit, "cells": cells})
    return rows


def _overlay(analyses: list[Analysis], labels: list[str], column: str, ylabel: str,
             scale: float, name: str) -> str:
    fig, (ax,) = new_figure(height=3.4)
    for i, (a, label) in enumerate(zip(analyses, labels, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        w = a.windows
        ax.plot(w["t_mid"], w[column] * scale, color=colour, marker=".", label=label)
        for lo, hi in a.intervals:
            ax.axvspan(lo, hi if hi > lo else lo + 0.5, color=colour, alpha=0.08, lw=0)
    ax.set_xlabel("time since start of run (s)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return to_svg(fig, name)


def _cdf(analyses: list[Analysis], labels: list[str]) -> str:
    fig, (ax,) = new_figure(height=3.4)
    for i, (a, label) in enumerate(zip(analyses, labels, strict=True)):
        lat = success_latency(a.result.measured_requests()).dropna().to_numpy(dtype=float)
        lat = np.sort(lat)
        if lat.size:
            ax.plot(lat, np.arange(1, lat.size + 1) / lat.size * 100,
                    color=PALETTE[i % len(PALETTE)], label=label, drawstyle="steps-post")
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("successful requests at or below (%)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        ax.set_xscale("log")
    return to_svg(fig, "cdf")


def comparison_figures(analyses: list[Analysis], labels: list[str]) -> dict[str, str]:
    """Overlays: p99 over time, throughput, error rate, and the latency distribution."""
    return {
        "p99": _overlay(analyses, labels, "p99", "latency p99 (s)", 1.0, "cmp-p99"),
        "throughput": _overlay(analyses, labels, "throughput", "successful (req/s)", 1.0,
                               "cmp-throughput"),
        "errors": _overlay(analyses, labels, "error_rate", "error rate (%)", 100.0,
                           "cmp-errors"),
        "cdf": _cdf(analyses, labels),
    }


def comparison_context(analyses: list[Analysis]) -> dict[str, Any]:
    """Everything compare.html.j2 shows."""
    labels = run_labels(analyses)
    runs = []
    for i, (a, label) in enumerate(zip(analyses, labels, strict=True)):
        word = "NO SLOs" if not a.slos else ("PASS" if a.passed else "FAIL")
        runs.append({"label": label, "colour": PALETTE[i % len(PALETTE)], "verdict": word,
                     "cls": {"PASS": "pass", "FAIL": "fail"}.get(word, "none"),
                     "score": a.score, "path": a.result.path, "topology": a.result.name,
                     "slos_failed": sum(not s.passed for s in a.slos),
                     "slos": sum(not s.skipped for s in a.slos),
                     "slos_na": sum(s.skipped for s in a.slos),
                     "partial": interruption(a.result), "notes": run_notes(a.result)})
    return {"runs": runs, "labels": labels, "rows": difference_rows(analyses),
            "slo_rows": slo_matrix(analyses), "figures": comparison_figures(analyses, labels)}
