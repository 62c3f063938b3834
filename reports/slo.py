"""SLO evaluation: the value of each SLO metric over a window of a run, and its verdict.

A metric is computed from the result files (requests.csv, calls.csv, timeseries.csv), with
the conventions of :mod:`reports.metrics`, over one of three windows:

* ``all`` — requests that arrived after warmup and before the run's end;
* ``fault`` — those that arrived while a fault was active (faults.csv's actual windows);
* ``steady`` — those that arrived while no fault was active.

``cost_total`` and ``cost_per_1k`` over ``all`` take summary.json's bill; over ``fault`` or
``steady`` they are rebuilt from timeseries replicas x price. ``recovery_time`` is a
whole-run figure whatever the window. An SLO over an empty window (``fault`` in a run with no
faults) is skipped: not applicable, so it neither passes nor fails the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from topologies.errors import UsageError
from topologies.model import SLO, SLO_METRICS

from .cost import cost_breakdown, cost_over_time, cost_per_1k
from .formatting import format_metric, json_number
from .metrics import (
    availability,
    error_rate,
    in_intervals,
    latency_stats,
    success_latency,
    successes,
    throughput,
)
from .resilience import active_intervals, recovery_time, retry_amplification
from .result import Result

__all__ = ["SLOResult", "metric_value", "evaluate_slos", "window_requests", "window_calls",
           "window_seconds", "slo_label"]


@dataclass(frozen=True)
class SLOResult:
    """The verdict of one SLO on one run: measured ``value`` against ``limit``."""

    name: str
    metric: str
    op: str
    limit: float
    value: float
    passed: bool
    window: str = "all"
    scenario: str = "baseline"
    skipped: bool = False
    reason: str = ""

    @property
    def note(self) -> str:
        """Why a skipped SLO was not judged."""
        if not self.skipped:
            return ""
        return self.reason or f"not applicable: the run has no {self.window} window"

    @property
    def description(self) -> str:
        """``latency_p99 <= 3.00 s`` (plus the window when not the whole run)."""
        sign = "<=" if self.op == "max" else ">="
        text = f"{self.metric} {sign} {format_metric(self.metric, self.limit)}"
        return text + (f" ({self.window} window)" if self.window != "all" else "")

    @property
    def message(self) -> str:
        """One line for a failure: measured value, limit and window."""
        if self.skipped:
            return f"{self.name}: {self.note}"
        verdict = "holds" if self.passed else "violated"
        return (f"{self.name}: {self.metric} = {format_metric(self.metric, self.value)}, "
                f"limit {self.op} {format_metric(self.metric, self.limit)}"
                f"{'' if self.window == 'all' else f' ({self.window} window)'}: {verdict}")

    def to_dict(self) -> dict[str, Any]:
        """The summary.json form: name, metric, limit, op, value, pass, window."""
        out = {"name": self.name, "metric": self.metric, "limit": self.limit, "op": self.op,
               "value": json_number(self.value), "pass": self.passed, "window": self.window}
        if self.skipped:
            out["skipped"] = True
        return out


def slo_label(slo: SLO) -> str:
    """An SLO's name, or ``metric op limit`` when it has none."""
    if slo.name:
        return slo.name
    sign = "<=" if slo.op == "max" else ">="
    base = f"{slo.metric} {sign} {format_metric(slo.metric, slo.limit)}"
    return base + (f" ({slo.window})" if slo.window != "all" else "")


def window_requests(result: Result, window: str) -> pd.DataFrame:
    """Measured client requests that arrived in the window (``all``, ``fault``, ``steady``)."""
    r = result.measured_requests()
    if window == "all":
        return r
    during = in_intervals(r["start"], active_intervals(result.fault_intervals()))
    if window == "fault":
        return r[during]
    if window == "steady":
        return r[~during]
    raise UsageError(f"unknown SLO window {window!r} (use all, fault or steady)")


def window_calls(result: Result, window: str, requests: pd.DataFrame | None = None
                 ) -> np.ndarray:
    """Boolean mask of calls.csv rows made for the window's measured requests (``requests``
    when already selected). Over ``all``, a calls table whose request ids match no request
    counts whole."""
    calls = result.calls
    if requests is None:
        requests = window_requests(result, window)
    mask = calls["request_id"].isin(requests["request_id"]).to_numpy(dtype=bool)
    if window == "all" and not mask.any():
        mask = np.ones(len(calls), dtype=bool)
    return mask


def window_seconds(result: Result, window: str) -> float:
    """Seconds of the measured span that belong to the window."""
    lo, hi = result.warmup, result.duration
    merged: list[list[float]] = []
    for a, b in active_intervals(result.fault_intervals()):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    faulted = sum(b - a for a, b in merged)
    if window == "fault":
        return faulted
    if window == "steady":
        return result.span - faulted
    return result.span


def _window_cost(result: Result, window: str) -> float:
    if window == "all":
        return cost_breakdown(result.summary, timeline=cost_over_time(
            result.timeseries, result.prices()))["total"]
    timeline = cost_over_time(result.timeseries, result.prices())
    if not len(timeline):
        return math.nan
    t = timeline[(timeline["t"] >= result.warmup) & (timeline["t"] < result.duration)]
    during = in_intervals(t["t"], active_intervals(result.fault_intervals()))
    return float(t.loc[during if window == "fault" else ~during, "cost"].sum())


def metric_value(result: Result, metric: str, window: str = "all",
                 count_degraded: bool = True) -> float:
    """The value of an SLO metric over a window of the run, in base units (NaN: unknown)."""
    if metric not in SLO_METRICS:
        raise UsageError(f"unknown SLO metric {metric!r} (one of {', '.join(SLO_METRICS)})")
    if metric == "recovery_time":
        return recovery_time(result.completed_requests(), result.fault_intervals(), result.warmup,
                             result.duration, count_degraded=count_degraded)
    reqs = window_requests(result, window)
    if metric.startswith("latency_"):
        return latency_stats(success_latency(reqs))[metric.removeprefix("latency_")]
    if metric == "availability":
        return availability(reqs, count_degraded)
    if metric == "error_rate":
        return error_rate(reqs, count_degraded)
    if metric == "throughput":
        return throughput(reqs, window_seconds(result, window), count_degraded)
    if metric == "retry_amplification":
        return retry_amplification(result.calls, window_calls(result, window, reqs))
    if metric == "cost_total":
        return _window_cost(result, window)
    # cost_per_1k
    if window == "all":
        block = result.summary.get("cost") or {}
        if isinstance(block.get("per_1k"), int | float):
            return float(block["per_1k"])
    return cost_per_1k(_window_cost(result, window), int(successes(reqs, count_degraded).sum()))


def evaluate_slos(result: Result, slos: tuple[SLO, ...] | list[SLO] | None = None
                  ) -> list[SLOResult]:
    """Every SLO of the run's topology (or ``slos``) measured on the run and judged.

    An SLO whose window is empty (``window: fault`` in a run without faults, ``steady`` in a
    run faulted throughout), or a latency SLO over a window without one successful request,
    is not applicable: ``skipped``, and it does not fail the run.
    """
    if slos is None:
        topo = result.topology
        slos = topo.slos if topo is not None else ()
    out = []
    for slo in slos:
        if (slo.window != "all" and slo.metric != "recovery_time"
                and window_seconds(result, slo.window) <= 0):
            out.append(SLOResult(slo_label(slo), slo.metric, slo.op, float(slo.limit), math.nan,
                                 True, slo.window, result.scenario, skipped=True))
            continue
        value = metric_value(result, slo.metric, slo.window, slo.count_degraded)
        if math.isnan(value) and slo.metric.startswith("latency_"):
            # Latency is measured on successful requests; when none succeeded there is no
            # latency to judge (availability and error_rate SLOs judge that run).
            where = "the run" if slo.window == "all" else f"the {slo.window} window"
            out.append(SLOResult(slo_label(slo), slo.metric, slo.op, float(slo.limit), value,
                                 True, slo.window, result.scenario, skipped=True,
                                 reason=f"not applicable: no successful requests in {where}"))
            continue
        out.append(SLOResult(slo_label(slo), slo.metric, slo.op, float(slo.limit), value,
                             slo.holds(value), slo.window, result.scenario))
    return out
