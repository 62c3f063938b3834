"""Replications: the same run under several seeds, summarised as means with 95% confidence
intervals (Student t with n - 1 degrees of freedom)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["t_quantile_975", "aggregate", "FIGURES"]

# two-sided 95% quantiles of Student's t, df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

FIGURES = (("availability", ("availability",)), ("throughput", ("throughput",)),
           ("latency_mean", ("latency", "mean")), ("latency_p50", ("latency", "p50")),
           ("latency_p99", ("latency", "p99")), ("cost_total", ("cost", "total")),
           ("cost_per_1k", ("cost", "per_1k")), ("cost_wasted", ("cost", "wasted")))


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    # Cornish-Fisher expansion, accurate to 1e-3 beyond 30 degrees of freedom
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return math.nan if value is None else float(value)


def aggregate(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation and 95% CI half-width of each figure over the runs."""
    out: dict[str, Any] = {"runs": len(summaries),
                           "seeds": [s.get("seed") for s in summaries], "figures": {}}
    for name, path in FIGURES:
        xs = [v for v in (_get(s, path) for s in summaries) if not math.isnan(v)]
        n = len(xs)
        mean = sum(xs) / n if n else math.nan
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
        half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        out["figures"][name] = {"mean": mean, "sd": sd, "ci95": half,
                                "low": mean - half, "high": mean + half, "n": n}
    return out
