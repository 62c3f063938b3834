"""The result of a run: pandas tables, the summary figures, and the result directory.

``Result.write(dir)`` writes DESIGN's result directory (summary.json, requests.csv,
calls.csv, timeseries.csv, faults.csv, topology.yaml), each file atomically.

Statistics cover requests that arrive in [warmup, end). A request still in flight at the end
has status 0 and error ``unfinished``: it is counted in ``requests`` and ``unfinished`` but
is neither a success nor a failure, so it is left out of availability. Latency figures are
those of successful requests (degraded answers included).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from topologies.files import atomic_write, atomic_write_text

from .cost import replica_seconds, used_attempts
from .errors import E_UNFINISHED, ERRORS

if TYPE_CHECKING:
    from .engine import Simulation

__all__ = ["Result", "REQUEST_COLUMNS", "CALL_COLUMNS", "TIMESERIES_COLUMNS", "FAULT_COLUMNS"]

REQUEST_COLUMNS = ["request_id", "start", "end", "latency", "status", "ok", "degraded",
                   "attempts", "error"]
CALL_COLUMNS = ["request_id", "caller", "callee", "replica", "attempt", "start", "end",
                "status", "ok", "error", "ttft", "tpot", "output_tokens", "call"]
TIMESERIES_COLUMNS = ["t", "service", "replicas", "ready_replicas", "busy", "queued",
                      "utilization", "throughput", "errors", "batch"]
FAULT_COLUMNS = ["type", "target", "start", "end", "parameters"]


def _clean(value: Any) -> Any:
    """JSON-safe figures: numpy numbers to Python, NaN to null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def _percentiles(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {k: math.nan for k in ("mean", "p50", "p90", "p95", "p99", "p999", "max")}
    q = np.percentile(x, [50, 90, 95, 99, 99.9])
    return {"mean": float(x.mean()), "p50": q[0], "p90": q[1], "p95": q[2], "p99": q[3],
            "p999": q[4], "max": float(x.max())}


@dataclass
class Result:
    """What one simulated run produced: tables, summary and the topology that ran."""

    requests: pd.DataFrame
    calls: pd.DataFrame
    timeseries: pd.DataFrame
    faults: pd.DataFrame
    summary: dict[str, Any]
    topology: Any = field(repr=False)
    call_cost: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    call_used: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))

    @classmethod
    def from_simulation(cls, sim: Simulation, end: float, partial: bool) -> Result:
        rec = sim.rec
        names = sim.names
        # The recorder's columns are viewed, not copied (np.frombuffer); the frames are built
        # with copy=False so each column stays its own block: a million-request run keeps one
        # copy of its records, not two.
        # requests
        r_start = _view(rec.r_start)
        r_end = _view(rec.r_end)
        r_status = _view(rec.r_status)
        r_error = _view(rec.r_error)
        r_ok = r_status == 200
        n_req = r_start.size
        c_request = _view(rec.c_request)
        attempts = np.bincount(c_request, minlength=n_req) if n_req else np.zeros(0, int)
        requests = pd.DataFrame({
            "request_id": np.arange(n_req),
            "start": r_start, "end": r_end, "latency": r_end - r_start,
            "status": r_status, "ok": r_ok, "degraded": _view(rec.r_degraded).astype(bool) & r_ok,
            "attempts": attempts[:n_req],
            "error": pd.Categorical.from_codes(r_error, ERRORS),
        }, copy=False)
        del attempts
        # calls
        n_calls = c_request.size
        c_status = _view(rec.c_status)
        c_error = _view(rec.c_error)
        ttft = np.full(n_calls, np.nan)
        tpot = np.full(n_calls, np.nan)
        tokens = np.zeros(n_calls, dtype=np.int64)
        has_tokens = np.zeros(n_calls, dtype=bool)
        if rec.llm:
            idx = np.fromiter(rec.llm.keys(), dtype=np.int64, count=len(rec.llm))
            vals = np.array(list(rec.llm.values()), dtype=float).reshape(-1, 3)
            ttft[idx], tpot[idx] = vals[:, 0], vals[:, 1]
            tokens[idx] = vals[:, 2].astype(np.int64)
            has_tokens[idx] = True
            del idx, vals
        c_ok = c_status == 200
        calls = pd.DataFrame({
            "request_id": c_request,
            "caller": pd.Categorical.from_codes(_view(rec.c_caller), names),
            "callee": pd.Categorical.from_codes(_view(rec.c_callee), names),
            "replica": _view(rec.c_replica),
            "attempt": _view(rec.c_attempt),
            "start": _view(rec.c_start),
            "end": _view(rec.c_end),
            "status": c_status, "ok": c_ok,
            "error": pd.Categorical.from_codes(c_error, ERRORS),
            "ttft": ttft, "tpot": tpot,
            "output_tokens": pd.arrays.IntegerArray(tokens, ~has_tokens),
            "call": _view(rec.c_site),
        }, copy=False)
        del ttft, tpot, tokens, has_tokens
        ts = pd.DataFrame(sim.timeseries, columns=TIMESERIES_COLUMNS)
        fault_rows = [[t, target, s, end if e is None else min(e, end), json.dumps(p)]
                      for t, target, s, e, p in rec.faults]
        faults = pd.DataFrame(fault_rows, columns=FAULT_COLUMNS)
        # used work (cost)
        r_done = r_ok | (r_error == E_UNFINISHED)
        used = used_attempts(_view(rec.c_parent), c_ok | (c_error == E_UNFINISHED), c_request,
                             r_done if n_req else np.zeros(1, bool))
        del r_done
        call_cost = _view(rec.c_cost)
        summary = _summary(sim, end, partial, requests, calls, ts, call_cost, used)
        return cls(requests, calls, ts, faults, summary, sim.topology, call_cost, used)

    def write(self, directory: str) -> str:
        """Write the result directory; returns its path."""
        os.makedirs(directory, exist_ok=True)
        for name, df in (("requests.csv", self.requests), ("calls.csv", self.calls),
                         ("timeseries.csv", self.timeseries), ("faults.csv", self.faults)):
            atomic_write(os.path.join(directory, name),
                         lambda fh, df=df: _write_csv(fh, df))
        atomic_write_text(os.path.join(directory, "topology.yaml"), _dump(self.topology))
        atomic_write_text(os.path.join(directory, "summary.json"),
                          json.dumps(_clean(self.summary), indent=2) + "\n")
        return directory


_TIMES = ("start", "end", "latency")
_CHUNK = 250_000   # rows formatted and written at a time: the text of a whole big table
#                    would cost several times the table itself


def _view(column: Any) -> np.ndarray:
    """A recorder column (``array.array``) as a numpy array sharing its memory."""
    return np.frombuffer(column, dtype=np.dtype(column.typecode))


def _write_csv(fh: Any, df: pd.DataFrame) -> None:
    """``df`` as CSV without its index, formatted and written ``_CHUNK`` rows at a time."""
    n = len(df)
    if n <= _CHUNK:
        _for_csv(df).to_csv(fh, index=False)
        return
    for i in range(0, n, _CHUNK):
        _for_csv(df.iloc[i:i + _CHUNK]).to_csv(fh, index=False, header=i == 0)


def _for_csv(df: pd.DataFrame) -> pd.DataFrame:
    """Times written with microsecond resolution (formatted here: much faster than pandas'
    own float formatting on a million rows); missing times stay empty."""
    cols = [c for c in _TIMES if c in df.columns and df[c].dtype.kind == "f"]
    if not cols or len(df) == 0:
        return df
    out = df.copy(deep=False)
    for c in cols:
        values = df[c].to_numpy()
        out[c] = pd.Series(["" if v != v else "%.6f" % v for v in values.tolist()],  # noqa: UP031
                           index=df.index, dtype=object)
    return out


def _dump(topology: Any) -> str:
    import topologies

    dump = getattr(topologies, "dump", None)
    if dump is not None:
        return dump(topology)
    import dataclasses

    import yaml

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                    if f.name != "source"}
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return "# topologies.dump() unavailable: raw model\n" + yaml.safe_dump(plain(topology),
                                                                            sort_keys=False)


def _summary(sim: Simulation, end: float, partial: bool, requests: pd.DataFrame,
             calls: pd.DataFrame, ts: pd.DataFrame, call_cost: np.ndarray,
             used: np.ndarray) -> dict[str, Any]:
    topo = sim.topology
    warmup = min(float(topo.workload.warmup), end)
    span = max(end - warmup, 1e-12)
    start = requests["start"].to_numpy()
    in_win = (start >= warmup) & (start < end)
    ok = requests["ok"].to_numpy() & in_win
    unfinished = in_win & (requests["error"].cat.codes.to_numpy() == E_UNFINISHED)
    n = int(in_win.sum())
    n_ok = int(ok.sum())
    answered = n - int(unfinished.sum())
    lat = requests["latency"].to_numpy()[ok]
    # calls whose request arrived in the window
    c_req = calls["request_id"].to_numpy()
    c_in = in_win[c_req] if c_req.size else np.zeros(0, bool)
    # cost
    rs = replica_seconds(sim.rec.replica_spans, len(sim.services), warmup, end)
    by_service = {}
    wasted_by = {}
    callee_codes = calls["callee"].cat.codes.to_numpy()
    wasted_mask = c_in & ~used
    for name, svc in sim.services.items():
        by_service[name] = rs[svc.index] * svc.spec.cost.per_replica_hour / 3600.0
        wasted_by[name] = float(call_cost[wasted_mask & (callee_codes == svc.index)].sum())
    total = float(sum(by_service.values()))
    wasted = float(sum(wasted_by.values()))
    services: dict[str, Any] = {}
    c_ok = calls["ok"].to_numpy()
    c_lat = (calls["end"] - calls["start"]).to_numpy()
    c_attempt = calls["attempt"].to_numpy()
    for name, svc in sim.services.items():
        m = c_in & (callee_codes == svc.index)
        mine = ts[(ts["service"] == name) & (ts["t"] >= warmup) & (ts["t"] < end)]
        ready = mine["ready_replicas"].to_numpy()
        cap_seconds = float((np.maximum(ready, 1) * svc.capacity).sum())
        work = float((mine["utilization"].to_numpy() * np.maximum(ready, 1) * svc.capacity).sum())
        good = c_lat[m & c_ok]
        entry = {
            "utilization": work / cap_seconds if cap_seconds else math.nan,
            "calls": int(m.sum()),
            "errors": int((m & ~c_ok & (calls["error"].cat.codes.to_numpy() != E_UNFINISHED))
                          .sum()),
            "retries": int((m & (c_attempt > 1)).sum()),
            "latency_p99": float(np.percentile(good, 99)) if good.size else math.nan,
            "replicas_mean": float(mine["replicas"].mean()) if len(mine) else math.nan,
            "replicas_max": int(mine["replicas"].max()) if len(mine) else svc.spec.replicas,
            "cost": by_service[name],
            "short_circuited": sum(e.short_circuited for e in sim.edges_into[name]),
        }
        if svc.spec.llm is not None:
            ttft = calls["ttft"].to_numpy()[m & c_ok]
            tpot = calls["tpot"].to_numpy()[m & c_ok]
            tpot = tpot[~np.isnan(tpot)]
            entry["ttft_p50"] = float(np.percentile(ttft, 50)) if ttft.size else math.nan
            entry["ttft_p99"] = float(np.percentile(ttft, 99)) if ttft.size else math.nan
            entry["tpot_mean"] = float(tpot.mean()) if tpot.size else math.nan
            entry["tpot_p99"] = float(np.percentile(tpot, 99)) if tpot.size else math.nan
        services[name] = entry
    return {
        "engine": "sim",
        "topology": topo.name,
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "duration": float(end),
        "warmup": warmup,
        "partial": bool(partial),
        "requests": n,
        "ok": n_ok,
        "degraded": int((ok & requests["degraded"].to_numpy()).sum()),
        "unfinished": int(unfinished.sum()),
        "availability": n_ok / answered if answered else math.nan,
        "error_rate": 1.0 - n_ok / answered if answered else math.nan,
        "throughput": n_ok / span,
        "latency": _percentiles(lat),
        "cost": {"total": total,
                 "per_1k": total / (n_ok / 1000.0) if n_ok else math.nan,
                 "wasted": wasted,
                 "wasted_share": wasted / total if total else 0.0,
                 "by_service": by_service,
                 "wasted_by_service": wasted_by},
        "services": services,
    }
