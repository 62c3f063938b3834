"""What a run cost: the engine's bill from summary.json and the bill over time.

The engine accounts cost per replica-second (cold starts included) and writes it to
summary.json's ``cost`` block, which stays the figure of record. Cost over time is rebuilt
from timeseries.csv as replicas x the service's ``cost.per_replica_hour`` from topology.yaml
x the sampling interval, so it shows *when* the money went (autoscaling during a fault).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cost_breakdown", "cost_per_1k", "cost_over_time", "sampling_interval"]


def _num(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def cost_per_1k(total: float, successes: int | float) -> float:
    """USD per 1000 successful requests; NaN when nothing succeeded."""
    if not successes or math.isnan(total):
        return math.nan
    return total / (successes / 1000.0)


def cost_breakdown(summary: dict[str, Any], successes: int | None = None,
                   timeline: pd.DataFrame | None = None) -> dict[str, Any]:
    """``total``, ``per_1k``, ``wasted`` (USD) and ``by_service`` {service: USD}.

    Taken from summary.json's ``cost`` block; a figure missing there is filled from
    ``timeline`` (:func:`cost_over_time`) and ``successes`` when they are given, else NaN.
    """
    block = summary.get("cost") or {}
    by_service = {str(k): _num(v) for k, v in (block.get("by_service") or {}).items()}
    if not by_service and timeline is not None and len(timeline):
        by_service = {str(k): float(v) for k, v in timeline.groupby("service")["cost"].sum()
                      .items()}
    total = _num(block.get("total"))
    if math.isnan(total) and by_service:
        total = float(sum(v for v in by_service.values() if not math.isnan(v)))
    per_1k = _num(block.get("per_1k"))
    if math.isnan(per_1k) and successes is not None:
        per_1k = cost_per_1k(total, successes)
    return {"total": total, "per_1k": per_1k, "wasted": _num(block.get("wasted")),
            "by_service": dict(sorted(by_service.items(), key=lambda kv: -_nz(kv[1])))}


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def sampling_interval(timeseries: pd.DataFrame) -> float:
    """Seconds between timeseries samples (the median step of the distinct times)."""
    times = np.unique(timeseries["t"].dropna().to_numpy(dtype=float)) if len(timeseries) else []
    if len(times) < 2:
        return 1.0
    return float(np.median(np.diff(times)))


def cost_over_time(timeseries: pd.DataFrame, prices: dict[str, float]) -> pd.DataFrame:
    """Per sample and service: ``cost`` (USD spent in the interval) and ``cumulative`` (USD).

    Each timeseries row stands for one sampling interval; cost = replicas x price per hour /
    3600 x interval. Services without a price are left out; empty without prices.
    """
    cols = ["t", "service", "replicas", "cost", "cumulative"]
    if not prices or not len(timeseries):
        return pd.DataFrame(columns=cols)
    dt = sampling_interval(timeseries)
    ts = timeseries[timeseries["service"].isin(list(prices))].sort_values(["service", "t"])
    price = ts["service"].map(prices).astype(float)
    out = ts[["t", "service", "replicas"]].copy()
    out["cost"] = ts["replicas"].astype(float) * price / 3600.0 * dt
    out["cumulative"] = out.groupby("service")["cost"].cumsum()
    return out[cols].reset_index(drop=True)
