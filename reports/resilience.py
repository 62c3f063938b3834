"""How a topology takes a fault: recovery time, retry amplification, blast radius, cascade.

Definitions (docs/reports.md repeats them for users):

* **pre-fault baseline** — client requests (for recovery) or calls to a service (for blast
  radius) that arrived after warmup and before the first fault started. When the first
  fault starts during warmup, the warmup is used too; with no such traffic at all there is no
  baseline and the figures are NaN ("unknown").
* latencies are those of successful requests, as everywhere in the reports; requests and
  calls still in flight when the run ended are left out (see ``Result.completed_requests``).
* **recovery_time** — seconds from the end of the last fault to the start of the first 5 s
  window (windows aligned at that end) in which the error rate is at most
  ``max(1.1 x baseline, baseline + 1 percentage point)`` and p99 latency at most
  1.1 x baseline p99, *and* the next window holds too (when there is one), so one lucky
  window is not recovery. A window with no arrivals has not recovered. No faults: 0. A fault
  lasting to the end of the run, or a run that never gets back: ``inf`` (written ``null``
  with ``"recovered": false`` in summary.json) — never the remaining time, which would let a
  short tail pass a ``recovery_time`` SLO it did not meet.
* **retry_amplification** — per edge ``caller->callee`` (the client's call to the entry service
  included): call attempts made (rows of calls.csv) divided by the calls the topology asked
  for, the distinct ``(request_id, caller, callee[, call])`` keys among first attempts
  (``attempt`` equal to the file's lowest attempt number; ``call`` is the caller's call site,
  when the engine writes it). Retries of a caller re-run its calls with first attempts under
  the same key, so nested retries multiply as they do in production: 2 client tries x 3 tries
  each on gateway->llm is 6 llm attempts for 1 asked. The run's figure is the **worst edge**,
  never an average that would let the healthy edges hide a storm on one. One computation,
  :func:`topologies.edges.edge_figures`, serves this module and summary.json's ``edges``.
* **blast radius** — services whose calls, while a fault was active, had an error rate at
  least ``max(1 pp, 50 %)`` above their baseline, or a p99 at least 25 % (and 1 ms) above it,
  over at least 5 calls. An instantaneous fault (a kill with no duration) counts as active
  for one 5 s window.
* **cascade timeline** — for each service of the blast radius, every **episode** in which it
  crossed one of those thresholds: 5 s windows (aligned at t = 0, from the first fault's
  start on, with at least 3 calls) that crossed, consecutive ones joined into one episode
  and a gap of a single quiet window bridged (one unlucky window inside a long brownout does
  not split it). An episode of a single window that neither overlaps a fault nor starts
  within one window after one ends is dropped as noise: with a handful of calls per window
  one window above 1.25 x p99 happens by chance. ``first`` is the start of the first
  episode, ``last`` the end of the last; services ordered by ``first``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from topologies.edges import edge_figures, worst_amplification

from .metrics import (
    WINDOW,
    error_rate,
    in_intervals,
    percentile,
    success_latency,
    successes,
    window_index,
)

__all__ = [
    "RECOVERY_TOLERANCE",
    "RECOVERY_ERROR_FLOOR",
    "BLAST_ERROR_RISE",
    "BLAST_ERROR_RATIO",
    "BLAST_LATENCY_RATIO",
    "BLAST_MIN_CALLS",
    "Baseline",
    "active_intervals",
    "baseline_span",
    "request_baseline",
    "recovery_time",
    "retry_amplification",
    "edge_amplification",
    "service_impact",
    "blast_radius",
    "cascade_timeline",
    "crossing_episodes",
]

RECOVERY_TOLERANCE = 0.10
RECOVERY_ERROR_FLOOR = 0.01
BLAST_ERROR_RISE = 0.01
BLAST_ERROR_RATIO = 1.5
BLAST_LATENCY_RATIO = 1.25
BLAST_LATENCY_FLOOR = 0.001
BLAST_MIN_CALLS = 5
CASCADE_MIN_CALLS = 3


@dataclass(frozen=True)
class Baseline:
    """Pre-fault error rate and p99 latency (s) of client requests."""

    error_rate: float
    p99: float
    requests: int


def active_intervals(intervals: list[tuple[float, float]], width: float = WINDOW
                     ) -> list[tuple[float, float]]:
    """Fault intervals, an instantaneous one (start == end) stretched over one window."""
    return [(lo, hi if hi > lo else lo + width) for lo, hi in intervals]


def baseline_span(intervals: list[tuple[float, float]], warmup: float, duration: float
                  ) -> tuple[float, float]:
    """[start, end) of the pre-fault baseline: warmup to the first fault (see module doc)."""
    if not intervals:
        return warmup, duration
    first = min(lo for lo, _ in intervals)
    return (warmup, first) if first > warmup else (0.0, first)


def request_baseline(requests: pd.DataFrame, intervals: list[tuple[float, float]],
                     warmup: float, duration: float, count_degraded: bool = True
                     ) -> Baseline | None:
    """Error rate and p99 of client requests before the first fault; None without any."""
    lo, hi = baseline_span(intervals, warmup, duration)
    base = requests[(requests["start"] >= lo) & (requests["start"] < hi)]
    if not len(base):
        return None
    return Baseline(error_rate(base, count_degraded), percentile(success_latency(base), 99),
                    len(base))


def recovery_time(requests: pd.DataFrame, intervals: list[tuple[float, float]], warmup: float,
                  duration: float, width: float = WINDOW, count_degraded: bool = True) -> float:
    """Seconds from the end of the last fault until the system is back at its baseline.

    0 without faults; ``inf`` when it never gets back within the run; NaN without a baseline.
    """
    if not intervals:
        return 0.0
    base = request_baseline(requests, intervals, warmup, duration, count_degraded)
    if base is None:
        return math.nan
    end = max(hi for _, hi in intervals)
    if end >= duration:
        return math.inf
    max_err = max(base.error_rate * (1 + RECOVERY_TOLERANCE),
                  base.error_rate + RECOVERY_ERROR_FLOOR)
    max_p99 = base.p99 * (1 + RECOVERY_TOLERANCE)
    n_windows = math.ceil((duration - end) / width)
    # one pass: bin the requests after the fault once, then walk the windows
    start = requests["start"].to_numpy(dtype=float)
    after = (start >= end) & (start < duration)
    k = np.floor((start[after] - end) / width).astype(np.int64)
    keep = k < n_windows
    k = k[keep]
    good = successes(requests, count_degraded).to_numpy()[after][keep]
    answered = successes(requests).to_numpy()[after][keep]
    latency = requests["latency"].to_numpy(dtype=float)[after][keep]
    arrivals = np.bincount(k, minlength=n_windows)
    succeeded = np.bincount(k, weights=good, minlength=n_windows)
    has_latency = answered & ~np.isnan(latency)
    k_lat, lat = k[has_latency], latency[has_latency]
    order = np.argsort(k_lat, kind="stable")
    k_lat, lat = k_lat[order], lat[order]
    bounds = np.searchsorted(k_lat, np.arange(n_windows + 1))
    within = np.zeros(n_windows, dtype=bool)
    for w in range(n_windows):
        if not arrivals[w] or bounds[w] == bounds[w + 1]:
            continue   # no arrivals, or no successful latency: not back
        err = 1.0 - succeeded[w] / arrivals[w]
        p99 = float(np.percentile(lat[bounds[w]:bounds[w + 1]], 99))
        within[w] = err <= max_err + 1e-12 and p99 <= max_p99 + 1e-12
    for w in range(n_windows):
        if within[w] and (w + 1 == n_windows or within[w + 1]):
            return w * width
    return math.inf


def retry_amplification(calls: pd.DataFrame, rows: np.ndarray | None = None) -> float:
    """The worst edge's attempts made divided by calls asked; NaN without calls.

    ``rows`` (a boolean mask) restricts the calls.csv rows counted without copying them.
    """
    return worst_amplification(edge_figures(calls, rows))


def edge_amplification(calls: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Per edge: ``caller``, ``callee``, ``calls`` (asked), ``attempts``,
    ``retry_amplification``, ``errors`` (failed attempts); :func:`topologies.edges.edge_figures`.
    """
    return edge_figures(calls, rows)


def _call_figures(calls: pd.DataFrame) -> tuple[int, float, float]:
    if not len(calls):
        return 0, math.nan, math.nan
    err = 1.0 - float(calls["ok"].astype(bool).mean())
    return len(calls), err, percentile(calls["end"] - calls["start"], 99)


def _crossed(err_b: float, p99_b: float, err: float, p99: float) -> list[str]:
    reasons = []
    base_err = 0.0 if math.isnan(err_b) else err_b
    if not math.isnan(err) and err - base_err >= max(BLAST_ERROR_RISE,
                                                     (BLAST_ERROR_RATIO - 1) * base_err):
        reasons.append("error_rate")
    if (not math.isnan(p99) and not math.isnan(p99_b) and p99 >= BLAST_LATENCY_RATIO * p99_b
            and p99 - p99_b >= BLAST_LATENCY_FLOOR):
        reasons.append("p99")
    return reasons


def service_impact(calls: pd.DataFrame, intervals: list[tuple[float, float]], warmup: float,
                   duration: float) -> pd.DataFrame:
    """Per service (callee): baseline vs during-fault error rate and p99 of its calls.

    Columns: ``service``, ``baseline_calls``, ``baseline_error_rate``, ``baseline_p99``,
    ``fault_calls``, ``fault_error_rate``, ``fault_p99``, ``error_rise`` (percentage points
    as a fraction), ``p99_ratio``, ``affected`` (bool), ``reason`` ("error_rate", "p99",
    both joined by "+", or "").
    """
    cols = ["service", "baseline_calls", "baseline_error_rate", "baseline_p99", "fault_calls",
            "fault_error_rate", "fault_p99", "error_rise", "p99_ratio", "affected", "reason"]
    if not len(calls):
        return pd.DataFrame(columns=cols)
    lo, hi = baseline_span(intervals, warmup, duration)
    active = active_intervals(intervals)
    during = in_intervals(calls["start"], active) if intervals else pd.Series(False,
                                                                            index=calls.index)
    before = (calls["start"] >= lo) & (calls["start"] < hi)
    rows = []
    for service in sorted(calls["callee"].dropna().unique()):
        mine = calls["callee"] == service
        nb, eb, pb = _call_figures(calls[mine & before])
        nf, ef, pf = _call_figures(calls[mine & during])
        reasons = _crossed(eb, pb, ef, pf) if nf >= BLAST_MIN_CALLS else []
        rows.append({
            "service": service, "baseline_calls": nb, "baseline_error_rate": eb,
            "baseline_p99": pb, "fault_calls": nf, "fault_error_rate": ef, "fault_p99": pf,
            "error_rise": (ef - (0.0 if math.isnan(eb) else eb)) if nf else math.nan,
            "p99_ratio": pf / pb if nf and pb and not math.isnan(pb) else math.nan,
            "affected": bool(reasons), "reason": "+".join(reasons),
        })
    return pd.DataFrame(rows, columns=cols)


def crossing_episodes(windows: list[int], intervals: list[tuple[float, float]],
                      width: float = WINDOW) -> list[tuple[float, float]]:
    """The episodes of a service's crossing windows (window indices, ascending).

    Consecutive windows form one episode, a gap of one quiet window is bridged, and a lone
    window away from every fault (see the module docstring) is dropped as noise. Returns
    ``(start, end)`` in seconds, ``end`` the end of the episode's last crossing window.
    """
    runs: list[list[int]] = []
    for k in windows:
        if runs and k - runs[-1][-1] <= 2:
            runs[-1].append(k)
        else:
            runs.append([k])
    near = [(lo, hi + width) for lo, hi in active_intervals(intervals, width)]
    episodes = []
    for run in runs:
        lo, hi = run[0] * width, (run[-1] + 1) * width
        if len(run) == 1 and not any(lo < f_hi and hi > f_lo for f_lo, f_hi in near):
            continue   # a lone crossing far from any fault: chance, not the cascade
        episodes.append((lo, hi))
    return episodes


def cascade_timeline(calls: pd.DataFrame, intervals: list[tuple[float, float]], warmup: float,
                     duration: float, services: list[str] | None = None,
                     width: float = WINDOW) -> pd.DataFrame:
    """When each service crossed its blast thresholds, every episode, services in order.

    Columns: ``service``, ``first`` (start of its first episode, s), ``last`` (end of its
    last episode), ``episodes`` (list of ``(start, end)``, see :func:`crossing_episodes`),
    ``metric`` (what crossed first), ``value`` and ``baseline`` of it.
    ``services`` limits the timeline (default: every service).
    """
    cols = ["service", "first", "last", "episodes", "metric", "value", "baseline"]
    if not len(calls) or not intervals:
        return pd.DataFrame(columns=cols)
    start = min(lo for lo, _ in intervals)
    lo, hi = baseline_span(intervals, warmup, duration)
    before = calls[(calls["start"] >= lo) & (calls["start"] < hi)]
    after = calls[(calls["start"] >= math.floor(start / width) * width)
                  & (calls["start"] < duration)]
    after = after.assign(_w=window_index(after["start"], width))
    names = services if services is not None else sorted(calls["callee"].dropna().unique())
    rows = []
    for service in names:
        _, eb, pb = _call_figures(before[before["callee"] == service])
        mine = after[after["callee"] == service]
        crossings = {}
        for k, g in mine.groupby("_w"):
            if len(g) < CASCADE_MIN_CALLS:
                continue
            _, e, p = _call_figures(g)
            reasons = _crossed(eb, pb, e, p)
            if reasons:
                metric = reasons[0]
                crossings[int(k)] = (metric, e if metric == "error_rate" else p)
        episodes = crossing_episodes(sorted(crossings), intervals, width)
        if episodes:
            metric, value = crossings[round(episodes[0][0] / width)]
            rows.append({"service": service, "first": episodes[0][0],
                         "last": episodes[-1][1], "episodes": episodes, "metric": metric,
                         "value": value, "baseline": (0.0 if math.isnan(eb) else eb)
                         if metric == "error_rate" else pb})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["first", "service"], kind="stable").reset_index(drop=True)


def blast_radius(impact: pd.DataFrame, timeline: pd.DataFrame | None = None) -> list[str]:
    """Affected services, in the order the cascade reached them (then by name)."""
    affected = list(impact.loc[impact["affected"].astype(bool), "service"]) if len(impact) else []
    order = {s: i for i, s in enumerate(timeline["service"])} if timeline is not None else {}
    return sorted(affected, key=lambda s: (order.get(s, len(order)), s))
