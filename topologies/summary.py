"""summary.json, computed once for both engines from the result tables.

The simulator and the live engine write the same result files; :func:`summarize_run` turns
those tables (requests.csv, calls.csv, timeseries.csv as pandas DataFrames — in memory, or
read back with ``pandas.read_csv``) plus a few facts only the engine knows
(:class:`RunFacts`) into the summary dict. A difference between a simulated and a live
summary is therefore a difference in behaviour, never in bookkeeping.

Rules:

* **Window.** Statistics cover client requests that *arrived* in ``[warmup, duration)``,
  where ``duration`` is when arrivals stopped (cut to the time reached when the run was
  interrupted earlier). The run then drains until every such request has an outcome (the
  client gives up after ``workload.timeout``: status 504, error ``client_timeout``), so the
  time reached (``end``) may be later than ``duration``. Call figures cover the attempts made
  for the requests counted in availability (whenever those attempts ran).
* **Availability** = successful / requests in the window. Only an interrupted run
  (``partial``) may leave requests without an outcome (error ``unfinished``, or no end and no
  status): they are counted in ``requests`` and ``unfinished`` and then left out of
  availability, error rate and every call figure, because they neither succeeded nor failed.
* **Latency** percentiles cover successful requests (degraded answers included), numpy's
  linear interpolation between order statistics (the p50 of 1..100 is 50.5), the same
  function for requests, calls, TTFT and TPOT.
* **Utilization** of a service = busy unit-seconds / (capacity x ready-replica-seconds) over
  the window, from timeseries.csv: each interval's ``utilization`` (busy unit-seconds over
  the capacity-seconds of its ready replicas) weighted by its ``ready_replicas`` x the part
  of the interval inside the window, so an interval with no replica ready weighs nothing. An
  interval runs from its ``t`` to the service's next ``t`` (the last one: as long as the
  usual interval).
* **Cost.** Replica-seconds per service inside the window come from the engine when it knows
  them exactly (``RunFacts.replica_seconds``: every replica from its start, cold start
  included, to its stop), else from timeseries ``replicas`` x interval widths (a service
  without timeseries rows: its configured replicas for the whole window). ``by_service`` =
  replica-seconds x ``cost.per_replica_hour`` / 3600; ``per_1k`` is per 1000 successful
  requests. ``wasted`` (work whose result nobody used) is the engine's figure
  (``RunFacts.wasted_cost``); an engine that cannot measure it reports 0 and
  ``wasted_measured: false``.
* **Services** (callees in calls.csv): ``calls`` (attempts), ``errors`` (failed attempts),
  ``retries`` (attempts after the first), ``latency_p99`` (``end - start`` of successful
  attempts), ``replicas_mean`` (time-weighted) and ``replicas_max`` over the window,
  ``cost``, ``short_circuited`` (calls failed fast by an open breaker, when the engine counts
  them) and, for LLM services, ``ttft_p50``, ``ttft_p99``, ``tpot_mean``, ``tpot_p99`` of
  successful attempts.
* **Edges** (:func:`edge_figures`), keyed ``caller->callee`` (``client->entry`` included):
  ``calls`` = calls the topology asked for, the distinct ``(request_id, caller, callee,
  call)`` keys among first attempts (``attempt`` equal to the lowest attempt number; the
  ``call`` column, the caller's call site, when present, so two calls on one edge count
  twice); ``attempts`` = every attempt; ``retry_amplification`` = attempts / calls;
  ``errors`` = failed attempts. A caller retried makes its calls again under the same key,
  so nested retries multiply: 2 client tries x 3 tries each on gateway->llm is 6 llm
  attempts for 1 call asked (6.0x on that edge).
* ``resilience.retry_amplification`` is the **worst edge's** amplification
  (:func:`worst_amplification`): an average over every edge would hide a retry storm on one.

NaN and infinities are written as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .columns import (
    as_bool,
    column_numbers,
    finite_values,
    json_safe,
    latency_stats,
    lowest_of,
    percentile,
    unfinished_rows,
)
from .edges import EDGE_COLUMNS, CallColumns, edge_figures, edges_of, worst_amplification

__all__ = [
    "RunFacts",
    "summarize_run",
    "edge_figures",
    "worst_amplification",
    "latency_stats",
    "percentile",
    "as_bool",
    "unfinished_rows",
    "json_safe",
    "EDGE_COLUMNS",
]



@dataclass(frozen=True)
class RunFacts:
    """What only the engine knows about a run; the rest comes from the result tables.

    ``end`` is the run time reached (s); ``duration`` when arrivals stopped (default: the
    topology's ``workload.duration``). ``partial``: the run was interrupted. The optional
    exact figures are per service name and cover the measured window
    ``[warmup, min(duration, end))``: ``replica_seconds`` (replica lifetimes, cold starts
    included), ``wasted_cost`` (USD of work whose result was not used), ``short_circuited``
    (calls an open circuit breaker failed fast). Leave them None when unknown.
    """

    engine: str
    end: float
    scenario: str | None = None
    seed: Any = None
    duration: float | None = None
    partial: bool = False
    notes: Sequence[str] = ()
    replica_seconds: Mapping[str, float] | None = None
    wasted_cost: Mapping[str, float] | None = None
    short_circuited: Mapping[str, int] | None = field(default=None)


# --- the summary -----------------------------------------------------------------------------
def summarize_run(topology: Any, requests: pd.DataFrame, calls: pd.DataFrame,
                  timeseries: pd.DataFrame, facts: RunFacts) -> dict[str, Any]:
    """summary.json of a run (before ``reports.finalize`` adds resilience and SLO verdicts).

    ``topology`` is the resolved :class:`~topologies.model.Topology` that ran;
    ``requests``, ``calls`` and ``timeseries`` have the columns of requests.csv, calls.csv
    and timeseries.csv (``pandas.read_csv`` of the files is fine: true/false as
    True/False, 1/0 or text, empty cells as NaN); ``facts`` are the engine's (see
    :class:`RunFacts`). Returns a JSON-safe dict (no NaN: ``None``) with the figures of the
    module docstring. An engine that wrote its result files calls it as::

        read = [pd.read_csv(os.path.join(out, f"{name}.csv"))
                for name in ("requests", "calls", "timeseries")]
        summary = summarize_run(topology, *read, RunFacts(
            engine="live", end=time_reached, duration=arrivals_stopped_at,
            scenario=scenario.name, seed=seed, partial=interrupted, notes=notes))

    and writes ``json.dumps(summary)``; the simulator passes its in-memory tables and its
    exact replica-seconds, wasted cost and short-circuits.
    """
    if not len(calls):   # no calls at all: the columns the figures read, empty
        calls = pd.DataFrame({c: pd.Series(dtype=float) for c in (
            "request_id", "caller", "callee", "attempt", "start", "end", "status", "ok")})
    duration = float(topology.workload.duration if facts.duration is None else facts.duration)
    end = float(facts.end)
    stop = min(duration, end)
    warmup = min(float(topology.workload.warmup), stop)
    span = stop - warmup

    # requests
    start = column_numbers(requests, "start")
    in_win = (start >= warmup) & (start < stop)
    open_ = unfinished_rows(requests) & in_win
    measured = in_win & ~open_
    ok = as_bool(requests["ok"]) & measured
    degraded = (as_bool(requests["degraded"]) & ok if "degraded" in requests.columns
                else np.zeros(len(requests), bool))
    n, n_open, n_ok = int(in_win.sum()), int(open_.sum()), int(ok.sum())
    answered = n - n_open
    latency = column_numbers(requests, "latency")[ok]

    # calls of the measured requests (a mask: no copy of a large table)
    c = CallColumns.of(calls)
    sel = _calls_of(requests, measured, calls)
    edges = edges_of(calls, c, sel)

    # timeseries widths inside the window
    ts = _weighted_timeseries(timeseries, warmup, stop)

    services: dict[str, Any] = {}
    by_service: dict[str, float] = {}
    code_of = {name: i for i, name in enumerate(c.callee_names)}
    lowest = lowest_of(c.attempt, sel)
    for name, spec in topology.services.items():
        rows = ts.get(name)
        if facts.replica_seconds is not None:
            rs = float(facts.replica_seconds.get(name, 0.0))
        elif rows is not None:
            rs = float((rows["replicas"] * rows["w"]).sum())
        else:
            rs = float(spec.replicas) * span
        by_service[name] = rs * float(spec.cost.per_replica_hour) / 3600.0
        m = sel & (c.callee == code_of.get(name, -2))
        good = np.flatnonzero(m & c.ok)
        c_lat = column_numbers(calls, "end")[good] - column_numbers(calls, "start")[good]
        entry: dict[str, Any] = {
            "utilization": _utilization(rows),
            "calls": int(m.sum()),
            "errors": int((m & ~c.ok & ~c.open).sum()),
            "retries": int((m & (c.attempt > lowest)).sum()),
            "latency_p99": percentile(c_lat, 99),
            "replicas_mean": (float((rows["replicas"] * rows["w"]).sum() / rows["w"].sum())
                              if rows is not None else math.nan),
            "replicas_max": (int(rows["replicas"].max()) if rows is not None
                             else int(spec.replicas)),
            "cost": by_service[name],
        }
        if facts.short_circuited is not None:
            entry["short_circuited"] = int(facts.short_circuited.get(name, 0))
        if getattr(spec, "llm", None) is not None:
            ttft = column_numbers(calls, "ttft")[good]
            tpot = finite_values(column_numbers(calls, "tpot")[good])
            entry["ttft_p50"] = percentile(ttft, 50)
            entry["ttft_p99"] = percentile(ttft, 99)
            entry["tpot_mean"] = float(tpot.mean()) if tpot.size else math.nan
            entry["tpot_p99"] = percentile(tpot, 99)
        services[name] = entry

    total = float(sum(by_service.values()))
    wasted_by = {name: float((facts.wasted_cost or {}).get(name, 0.0))
                 for name in topology.services}
    wasted = float(sum(wasted_by.values()))
    summary = {
        "engine": facts.engine,
        "topology": topology.name,
        "scenario": facts.scenario,
        "seed": facts.seed,
        "duration": stop,
        "warmup": warmup,
        "end": end,
        "planned_duration": duration,   # what a partial run fell short of
        "partial": bool(facts.partial),
        "requests": n,
        "ok": n_ok,
        "degraded": int(degraded.sum()),
        "unfinished": n_open,
        "availability": n_ok / answered if answered else math.nan,
        "error_rate": 1.0 - n_ok / answered if answered else math.nan,
        "throughput": n_ok / span if span > 0 else math.nan,
        "latency": latency_stats(latency),
        "cost": {"total": total,
                 "per_1k": total / (n_ok / 1000.0) if n_ok else math.nan,
                 "wasted": wasted,
                 "wasted_share": wasted / total if total else 0.0,
                 "wasted_measured": facts.wasted_cost is not None,
                 "by_service": by_service,
                 "wasted_by_service": wasted_by},
        "services": services,
        "edges": {f"{r.caller}->{r.callee}": {"calls": int(r.calls), "attempts": int(r.attempts),
                                               "retry_amplification": float(
                                                   r.retry_amplification),
                                               "errors": int(r.errors)}
                  for r in edges.itertuples(index=False)},
        "resilience": {"retry_amplification": worst_amplification(edges)},
        "notes": list(facts.notes),
    }
    return json_safe(summary)


def _calls_of(requests: pd.DataFrame, keep: np.ndarray, calls: pd.DataFrame) -> np.ndarray:
    """Which calls.csv rows belong to the requests marked in ``keep``."""
    rid = requests["request_id"]
    c_rid = calls["request_id"]
    if rid.dtype.kind in "iu" and c_rid.dtype.kind in "iu":
        r = rid.to_numpy()
        c = c_rid.to_numpy()
        if len(r) and r[0] == 0 and r[-1] == len(r) - 1 and np.array_equal(r, np.arange(len(r))):
            # request_id is the row number
            if len(c) and c.min() >= 0 and c.max() < len(r):
                return keep[c]
            inside = (c >= 0) & (c < len(r))
            out = np.zeros(len(c), dtype=bool)
            out[inside] = keep[c[inside]]
            return out
        return np.isin(c, r[keep])
    return c_rid.isin(set(rid[keep])).to_numpy(dtype=bool)


def _weighted_timeseries(timeseries: pd.DataFrame, lo: float, hi: float
                         ) -> dict[str, pd.DataFrame]:
    """Per service: its rows overlapping [lo, hi) with ``w``, the seconds of each inside."""
    if not len(timeseries) or "service" not in timeseries.columns or hi <= lo:
        return {}
    t = column_numbers(timeseries, "t")
    frame = pd.DataFrame({
        "service": timeseries["service"].astype(str).to_numpy(), "t": t,
        "replicas": np.nan_to_num(column_numbers(timeseries, "replicas"), nan=0.0),
        "ready": column_numbers(timeseries, "ready_replicas"),
        "utilization": column_numbers(timeseries, "utilization"),
    })
    frame = frame[np.isfinite(t)]
    out = {}
    for name, rows in frame.groupby("service", sort=False):
        rows = rows.sort_values("t", kind="stable")
        times = rows["t"].to_numpy()
        steps = np.diff(times)
        usual = float(np.median(steps)) if steps.size else 1.0
        nxt = np.append(times[1:], times[-1] + usual)
        w = np.clip(np.minimum(nxt, hi) - np.maximum(times, lo), 0.0, None)
        rows = rows.assign(w=w)[w > 0]
        if len(rows):
            ready = rows["ready"].to_numpy()
            ready = np.where(np.isnan(ready), rows["replicas"].to_numpy(), ready)
            out[str(name)] = rows.assign(ready=ready)
    return out


def _utilization(rows: pd.DataFrame | None) -> float:
    if rows is None:
        return math.nan
    u = rows["utilization"].to_numpy()
    have = np.isfinite(u)
    weight = (rows["ready"].to_numpy() * rows["w"].to_numpy())[have]
    return float((u[have] * weight).sum() / weight.sum()) if weight.sum() > 0 else math.nan
