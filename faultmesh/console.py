"""What the run commands print on the console: one unit style for every engine.

Latencies read in milliseconds below a second and in seconds (two decimals) above, shares in
percent, money in dollars; ``sim`` and ``live`` print the same table of runs from their
summaries, and replications print means with their 95% intervals, rounded, in the figure's
own unit. (The HTML report has its own, wordier, formats in :mod:`reports.formatting`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_latency", "format_share", "format_usd", "format_rate", "run_table",
           "replications_table", "failed_slos"]

# |x| below this (or below this share of the mean, for an interval) is float noise, not a
# figure: the spread of a run that every seed reproduces exactly comes out as ~1e-16
_NOISE = 1e-9


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _clean(x: float, ref: float | None = None) -> float:
    """``x`` with float noise made 0 (relative to ``ref`` when given, else absolute)."""
    scale = abs(ref) if ref else 1.0
    return 0.0 if abs(x) < _NOISE * scale or abs(x) < 1e-12 else x


def format_latency(seconds: float | None) -> str:
    """``0.0123`` -> ``12ms``, ``0.0032`` -> ``3.2ms``, ``1.844`` -> ``1.84s``; ``-`` if none."""
    if _missing(seconds):
        return "-"
    assert seconds is not None
    if math.isinf(seconds):
        return "never"
    return _number(seconds, _latency_spec(seconds))


def format_share(fraction: float | None) -> str:
    """A fraction as a percentage with two decimals: ``0.99123`` -> ``99.12%``."""
    if _missing(fraction):
        return "-"
    assert fraction is not None
    pct = 100 * fraction
    if pct and abs(pct) < 0.005:  # would read 0.00%: keep its first digit
        return f"{pct:.1g}%"
    return f"{pct:.2f}%"


def format_usd(dollars: float | None) -> str:
    """Dollars: cents from $1 up, three significant digits below (``$0.0412``, ``$0.41``)."""
    if _missing(dollars):
        return "-"
    assert dollars is not None
    if dollars == 0 or abs(dollars) >= 1:
        return f"${dollars:,.2f}"
    digits = 2 - math.floor(math.log10(abs(dollars)))
    text = f"{dollars:.{digits}f}".rstrip("0")
    return "$" + (text + "0" if len(text.partition(".")[2]) < 2 else text)


# (factor, decimals, prefix, suffix): how a figure and its interval are written
_Spec = tuple[float, int, str, str]


def _latency_spec(seconds: float) -> _Spec:
    ms = abs(seconds) * 1000
    if ms < 10:
        return (1000.0, 1, "", "ms")
    if round(ms) < 1000:
        return (1000.0, 0, "", "ms")
    return (1.0, 2, "", "s")


def _usd_spec(dollars: float) -> _Spec:
    if dollars == 0 or abs(dollars) >= 1:
        return (1.0, 2, "$", "")
    return (1.0, max(2, 1 - math.floor(math.log10(abs(dollars)))), "$", "")


def _number(x: float, spec: _Spec) -> str:
    factor, decimals, prefix, suffix = spec
    return f"{prefix}{x * factor:.{decimals}f}{suffix}"


def _interval(half: float, spec: _Spec) -> str:
    """The half-width in the mean's unit and decimals; one significant digit more when
    those decimals would round a real spread to zero."""
    factor, decimals, prefix, suffix = spec
    value = half * factor
    if value and round(value, decimals) == 0:
        decimals = -math.floor(math.log10(abs(value)))
    return f"{prefix}{value:.{decimals}f}{suffix}"


def format_rate(per_second: float | None) -> str:
    """Requests per second with one decimal."""
    return "-" if _missing(per_second) else f"{per_second:.1f}"


def failed_slos(summary: Mapping[str, Any]) -> list[str]:
    """Names of the SLOs a run's summary judged violated."""
    return [s.get("name") or s.get("metric", "?") for s in summary.get("slos", [])
            if s.get("pass") is False]


def _slo_cell(summary: Mapping[str, Any]) -> str:
    judged = [s for s in summary.get("slos", []) if s.get("pass") is not None]
    if not judged:
        return "-"
    return f"{sum(1 for s in judged if s['pass'])}/{len(judged)}"


def run_table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """One line per run (name, summary.json): requests, availability, p50, p99, throughput,
    cost, cost per 1000 answers, wasted share and SLOs held."""
    head = f"{'run':<28} {'requests':>9} {'avail':>8} {'p50':>8} {'p99':>8} {'rps':>7} " \
           f"{'cost':>9} {'$/1k':>9} {'wasted':>7} {'SLOs':>6}"
    lines = [head]
    for name, s in rows:
        lat = s.get("latency") or {}
        cost = s.get("cost") or {}
        # an engine that cannot measure wasted work says so; 0% would be a claim
        wasted = cost.get("wasted_share") if cost.get("wasted_measured", True) else None
        lines.append(
            f"{name[:28]:<28} {s.get('requests', 0):>9} {format_share(s.get('availability')):>8} "
            f"{format_latency(lat.get('p50')):>8} {format_latency(lat.get('p99')):>8} "
            f"{format_rate(s.get('throughput')):>7} {format_usd(cost.get('total')):>9} "
            f"{format_usd(cost.get('per_1k')):>9} {format_share(wasted):>7} "
            f"{_slo_cell(s):>6}")
    return "\n".join(lines)


# replications.json figure -> (label, how its mean is written)
_FIGURES: dict[str, tuple[str, Any]] = {
    "availability": ("availability", lambda m: (100.0, 2, "", "%")),
    "throughput": ("throughput", lambda m: (1.0, 1, "", " req/s")),
    "latency_mean": ("latency mean", _latency_spec),
    "latency_p50": ("latency p50", _latency_spec),
    "latency_p99": ("latency p99", _latency_spec),
    "cost_total": ("cost", _usd_spec),
    "cost_per_1k": ("cost per 1k", _usd_spec),
    "cost_wasted": ("cost wasted", _usd_spec),
}


def replications_table(aggregate: Mapping[str, Any]) -> str:
    """Means with their 95% confidence half-widths, rounded, in each figure's unit:
    ``availability   99.12% ± 0.08%``, ``latency p99    1.84s ± 0.05s``."""
    lines = [f"{'figure':<14} mean ± 95% CI   (n={aggregate['runs']})"]
    for key, f in aggregate["figures"].items():
        label, spec_of = _FIGURES.get(key, (key, lambda m: (1.0, 3, "", "")))
        mean, half = f.get("mean"), f.get("ci95")
        if _missing(mean):
            lines.append(f"{label:<14} -")
            continue
        mean = _clean(mean)
        spec = spec_of(mean)
        shown = _number(mean, spec)
        if _missing(half):
            shown += " (one run: no interval)"
        else:
            shown += f" ± {_interval(_clean(half, mean), spec)}"
        lines.append(f"{label:<14} {shown}")
    return "\n".join(lines)
