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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

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

#: Columns of :func:`edge_figures`.
EDGE_COLUMNS = ["caller", "callee", "calls", "attempts", "retry_amplification", "errors"]
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
_TRUE = frozenset(("true", "1", "yes", "t", "y", "1.0"))


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


# --- small shared rules ----------------------------------------------------------------------
def percentile(values: Iterable[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of the finite values (linear interpolation); NaN if none."""
    arr = _finite(values)
    return float(np.percentile(arr, q)) if arr.size else math.nan


def latency_stats(values: Iterable[float] | np.ndarray) -> dict[str, float]:
    """mean, p50, p90, p95, p99, p999 and max of the finite values (NaN when there are none)."""
    arr = _finite(values)
    if arr.size == 0:
        return {k: math.nan for k in ("mean", *(k for k, _ in _PERCENTILES), "max")}
    q = np.percentile(arr, [q for _, q in _PERCENTILES])
    out = {"mean": float(arr.mean())}
    out.update({k: float(v) for (k, _), v in zip(_PERCENTILES, q, strict=True)})
    out["max"] = float(arr.max())
    return out


def _finite(values: Iterable[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values if isinstance(values, np.ndarray | pd.Series) else list(values),
                     dtype=float)
    return arr[np.isfinite(arr)] if arr.size else arr


def as_bool(column: pd.Series | np.ndarray) -> np.ndarray:
    """A true/false column as written by either engine (True/False, 1/0, text; empty: False)."""
    s = column if isinstance(column, pd.Series) else pd.Series(column)
    if s.dtype == bool:
        return s.to_numpy()
    if s.dtype.kind in "iuf":
        values = s.to_numpy(dtype=float)
        return np.nan_to_num(values, nan=0.0) != 0
    return _text_test(s, lambda v: v.strip().lower() in _TRUE)


def unfinished_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows (requests or call attempts) without an outcome: error ``unfinished``, or no end
    and no status."""
    mask = np.zeros(len(frame), dtype=bool)
    if "error" in frame.columns:
        mask |= _word_is(frame["error"], "unfinished")
    if "end" in frame.columns and "status" in frame.columns:
        end = _values(frame, "end")
        no_end = np.isnan(end) if end.dtype.kind == "f" else np.zeros(len(frame), bool)
        if no_end.any():
            status = _values(frame, "status")
            no_status = status == 0
            if status.dtype.kind == "f":
                no_status |= np.isnan(status)
            mask |= no_end & no_status
    return mask


def _word_is(column: pd.Series, word: str) -> np.ndarray:
    return _text_test(column, lambda v: v.strip().lower() == word)


def _text_test(column: pd.Series, test: Any) -> np.ndarray:
    """``test`` of each value's text, judged once per distinct value (missing: False)."""
    codes, names = _codes(column)
    hit = np.array([test(name) for name in names] + [False], dtype=bool)
    return hit[codes]


def _codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1: missing) and the names they stand for."""
    if isinstance(column.dtype, pd.CategoricalDtype):   # codes as stored: int8 for a few names
        return column.cat.codes.to_numpy(), [str(c) for c in column.cat.categories]
    codes, uniques = pd.factorize(column, use_na_sentinel=True)  # missing values: -1
    return codes.astype(np.int32), [str(u) for u in uniques]


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as stored (a view where possible); text read as numbers (else NaN)."""
    s = frame[column]
    if s.dtype.kind in "iuf":
        return s.to_numpy()
    if s.dtype.kind == "b":
        return s.to_numpy().astype(np.int8)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _numbers(frame: pd.DataFrame, column: str, default: float = math.nan) -> np.ndarray:
    """A column as floats (a view when it already is); ``default`` when it is absent."""
    if column not in frame.columns:
        return np.full(len(frame), default)
    values = _values(frame, column)
    return values if values.dtype.kind == "f" else values.astype(float)


def _lowest(values: np.ndarray, rows: np.ndarray) -> float:
    """The lowest value among ``rows`` (missing values ignored), 1 when there is none."""
    if not rows.any():
        return 1.0
    if values.dtype.kind in "iu":
        return float(values.min(where=rows, initial=np.iinfo(values.dtype).max))
    low = float(np.fmin.reduce(values, where=rows, initial=np.inf))
    return low if math.isfinite(low) else 1.0


def json_safe(value: Any) -> Any:
    """Figures made JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# --- edges -----------------------------------------------------------------------------------
@dataclass
class _Calls:
    """The calls.csv columns the figures use, as arrays (computed once per table)."""

    caller: np.ndarray          # integer codes, -1 missing
    caller_names: list[str]
    callee: np.ndarray
    callee_names: list[str]
    ok: np.ndarray              # bool
    open: np.ndarray            # bool: no outcome (unfinished)
    attempt: np.ndarray         # as stored (whole numbers, or floats with NaN)

    @classmethod
    def of(cls, calls: pd.DataFrame) -> _Calls:
        caller, caller_names = _codes(calls["caller"])
        callee, callee_names = _codes(calls["callee"])
        ok = as_bool(calls["ok"]) if "ok" in calls.columns else np.ones(len(calls), bool)
        attempt = (_values(calls, "attempt") if "attempt" in calls.columns
                   else np.ones(len(calls), np.int8))
        return cls(caller, caller_names, callee, callee_names, ok, unfinished_rows(calls),
                   attempt)


def edge_figures(calls: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Per edge (caller, callee) of calls.csv rows: calls asked, attempts, amplification, errors.

    Columns :data:`EDGE_COLUMNS`; ``calls`` counts the distinct ``(request_id, caller, callee,
    call)`` keys among first attempts (see the module docstring), ``errors`` the failed
    attempts that have an outcome. Rows: the client's edge first, then by caller and callee.
    ``rows``, a boolean mask, limits the rows counted (no copy of a large table).
    """
    if not len(calls) or (rows is not None and not rows.any()):
        return _edge_frame([])
    return _edges(calls, _Calls.of(calls), rows)


def _edge_frame(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("caller", "callee") else float)
                             for c in EDGE_COLUMNS})
    return pd.DataFrame(rows, columns=EDGE_COLUMNS)


def _edges(calls: pd.DataFrame, c: _Calls, rows: np.ndarray | None) -> pd.DataFrame:
    valid = (c.caller >= 0) & (c.callee >= 0)
    if rows is not None:
        valid &= np.asarray(rows, dtype=bool)
    if not valid.any():
        return _edge_frame([])
    n_callee = max(len(c.callee_names), 1)
    n_edges = max(len(c.caller_names), 1) * n_callee
    edge = np.multiply(c.caller, n_callee, dtype=np.int16 if n_edges < 2 ** 15 else np.int32)
    edge += c.callee
    first = valid & (c.attempt == _lowest(c.attempt, valid))
    attempts = np.bincount(edge[valid], minlength=n_edges)
    failed = valid & ~c.ok & ~c.open
    errors = np.bincount(edge[failed], minlength=n_edges)
    del failed, valid
    asked = np.bincount(_distinct_first_edges(calls, edge, first), minlength=n_edges)
    out = []
    for e in np.flatnonzero(attempts):
        a, b = c.caller_names[e // n_callee], c.callee_names[e % n_callee]
        out.append((a != "client", a, b, int(asked[e]), int(attempts[e]),
                    attempts[e] / asked[e] if asked[e] else math.nan, int(errors[e])))
    out.sort(key=lambda r: r[:3])
    return _edge_frame([r[1:] for r in out])


def _distinct_first_edges(calls: pd.DataFrame, edge: np.ndarray, first: np.ndarray
                          ) -> np.ndarray:
    """The edge of each distinct (request, edge, call site) key among first attempts.

    Each key is packed into one integer, built in place (a million-call run's summary is
    computed while the simulation still holds its records: temporaries are kept few)."""
    e = edge[first]
    if not e.size:
        return e
    rid = calls["request_id"]
    if rid.dtype.kind in "iu":
        key = rid.to_numpy()[first].astype(np.int64, copy=False)
    else:
        key = pd.factorize(rid[first], use_na_sentinel=False)[0].astype(np.int64, copy=False)
    if "call" in calls.columns:
        site = _values(calls, "call")[first]
        if site.dtype.kind == "f":
            site = np.nan_to_num(site, nan=0.0).astype(np.int64)
    else:
        site = np.zeros(e.size, np.int8)
    key -= key.min()
    s_min = int(site.min())
    n_e, n_s = int(e.max()) + 1, int(site.max()) - s_min + 1
    if (int(key.max()) + 1) * n_e * n_s >= 2 ** 62:   # too wide to pack: pandas does it
        keys = pd.DataFrame({"r": key, "e": e, "s": site}).drop_duplicates()
        return keys["e"].to_numpy()
    key *= n_e
    key += e
    key *= n_s
    key += site
    key -= s_min
    del site
    key.sort()   # distinct keys by sorting: faster than hashing
    distinct = np.empty(key.size, dtype=bool)
    distinct[0] = True
    np.not_equal(key[1:], key[:-1], out=distinct[1:])
    key = key[distinct]
    del distinct
    key //= n_s
    key %= n_e
    return key


def worst_amplification(edges: pd.DataFrame) -> float:
    """The highest ``retry_amplification`` of an edge table; NaN without any."""
    if not len(edges):
        return math.nan
    values = edges["retry_amplification"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else math.nan


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
    start = _numbers(requests, "start")
    in_win = (start >= warmup) & (start < stop)
    open_ = unfinished_rows(requests) & in_win
    measured = in_win & ~open_
    ok = as_bool(requests["ok"]) & measured
    degraded = (as_bool(requests["degraded"]) & ok if "degraded" in requests.columns
                else np.zeros(len(requests), bool))
    n, n_open, n_ok = int(in_win.sum()), int(open_.sum()), int(ok.sum())
    answered = n - n_open
    latency = _numbers(requests, "latency")[ok]

    # calls of the measured requests (a mask: no copy of a large table)
    c = _Calls.of(calls)
    sel = _calls_of(requests, measured, calls)
    edges = _edges(calls, c, sel)

    # timeseries widths inside the window
    ts = _weighted_timeseries(timeseries, warmup, stop)

    services: dict[str, Any] = {}
    by_service: dict[str, float] = {}
    code_of = {name: i for i, name in enumerate(c.callee_names)}
    lowest = _lowest(c.attempt, sel)
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
        c_lat = _numbers(calls, "end")[good] - _numbers(calls, "start")[good]
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
            ttft = _numbers(calls, "ttft")[good]
            tpot = _finite(_numbers(calls, "tpot")[good])
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
    t = _numbers(timeseries, "t")
    frame = pd.DataFrame({
        "service": timeseries["service"].astype(str).to_numpy(), "t": t,
        "replicas": np.nan_to_num(_numbers(timeseries, "replicas"), nan=0.0),
        "ready": _numbers(timeseries, "ready_replicas"),
        "utilization": _numbers(timeseries, "utilization"),
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
