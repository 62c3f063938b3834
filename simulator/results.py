"""The result of a run: pandas tables, the summary figures, and the result directory.

``Result.write(dir)`` writes the result directory (docs/results.md) (summary.json, requests.csv,
calls.csv, timeseries.csv, faults.csv, topology.yaml), each file atomically.

The summary is :func:`topologies.summary.summarize_run` of these tables (the same function
the live engine uses, so both engines count alike), given what only the simulator knows
exactly: replica-seconds from every replica's span, the price of work nobody used, and the
calls breakers short-circuited.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from topologies.files import atomic_write, atomic_write_text
from topologies.summary import RunFacts, json_safe, summarize_run

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
        summary = summarize_run(sim.topology, requests, calls, ts,
                                _facts(sim, end, partial, requests, calls, call_cost, used))
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
                          json.dumps(json_safe(self.summary), indent=2) + "\n")
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


def _facts(sim: Simulation, end: float, partial: bool, requests: pd.DataFrame,
           calls: pd.DataFrame, call_cost: np.ndarray, used: np.ndarray) -> RunFacts:
    """What the simulator knows exactly, over the measured window [warmup, min(duration, end)):
    replica-seconds from each replica's span, the price of the work nobody used (attempts of
    requests that arrived in the window), and breaker short-circuits."""
    reached = max(float(end), float(sim.env.now))   # the drain may run past ``duration``
    stop = min(sim.duration, reached)
    warmup = min(float(sim.topology.workload.warmup), stop)
    rs = replica_seconds(sim.rec.replica_spans, len(sim.services), warmup, stop)
    start = requests["start"].to_numpy()
    in_win = (start >= warmup) & (start < stop)
    c_req = calls["request_id"].to_numpy()
    wasted = (in_win[c_req] if c_req.size else np.zeros(0, bool)) & ~used
    callee = calls["callee"].cat.codes.to_numpy()
    wasted_cost = np.bincount(callee[wasted], weights=call_cost[wasted],
                              minlength=len(sim.names))
    return RunFacts(
        engine="sim", end=reached, scenario=sim.scenario.name, seed=sim.seed,
        duration=sim.duration, partial=partial,
        replica_seconds={name: float(rs[svc.index]) for name, svc in sim.services.items()},
        wasted_cost={name: float(wasted_cost[svc.index]) for name, svc in sim.services.items()},
        short_circuited={name: sum(e.short_circuited for e in sim.edges_into[name])
                         for name in sim.services})
