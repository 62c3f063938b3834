"""A result directory read back into memory: the one input of every report and gate.

Both engines write the same files (docs/results.md); :func:`load_result` reads
them into a :class:`Result` and checks them, so a missing directory, a missing
``summary.json`` or a malformed CSV becomes one :class:`~topologies.errors.UsageError` that
names the file instead of a traceback deep inside a metric.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from topologies.errors import FaultmeshError, UsageError
from topologies.model import Topology

__all__ = ["Result", "load_result", "is_result_dir", "unfinished", "REQUIRED_COLUMNS"]

#: Columns each CSV must have (others, like calls.csv's LLM columns, are optional).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests.csv": ("request_id", "start", "end", "latency", "status", "ok"),
    "calls.csv": ("request_id", "caller", "callee", "attempt", "start", "end", "status", "ok"),
    "timeseries.csv": ("t", "service", "replicas"),
    "faults.csv": ("type", "target", "start", "end"),
}
_NUMERIC = {
    "requests.csv": ("start", "end", "latency", "status", "attempts"),
    "calls.csv": ("attempt", "start", "end", "status", "ttft", "tpot", "output_tokens",
                  "replica"),
    "timeseries.csv": ("t", "replicas", "ready_replicas", "busy", "queued", "utilization",
                       "throughput", "errors", "batch"),
    "faults.csv": ("start", "end"),
}
_BOOLEAN = {"requests.csv": ("ok", "degraded"), "calls.csv": ("ok",)}
_TRUE = {"true", "1", "yes", "t", "y", "1.0"}
_TEXT = ("error", "caller", "callee", "service", "type", "target", "parameters")
#: Text columns of the big tables, read as pandas categoricals (missing values stay NaN).
_CATEGORICAL = {"requests.csv": ("error",), "calls.csv": ("caller", "callee", "error")}
#: ``lean`` reading: the calls.csv columns the figures use, those of them read as floats
#: (the others are whole numbers), and the optional ones left out when no row has a value.
_LEAN = {"calls.csv": frozenset(("request_id", "caller", "callee", "attempt", "call", "start",
                                 "end", "status", "ok", "error", "ttft", "tpot",
                                 "output_tokens"))}
_FLOAT = {"calls.csv": ("start", "end", "ttft", "tpot", "output_tokens")}
_OPTIONAL = {"calls.csv": ("ttft", "tpot", "output_tokens")}
_BIG = 32 << 20    # files from this size on are read in chunks (_read_chunked)
_CHUNK = 200_000   # rows per chunk


def is_result_dir(path: str) -> bool:
    """Whether ``path`` is a directory holding a ``summary.json``."""
    return os.path.isfile(os.path.join(path, "summary.json"))


@dataclass
class Result:
    """One run of one scenario, as its result directory describes it.

    ``summary`` is summary.json as a dict; ``requests``, ``calls``, ``timeseries`` and
    ``faults`` are the CSV files as DataFrames (empty, with the required columns, when a
    file is absent); ``topology_text`` is topology.yaml verbatim. ``topology`` is the typed
    model, loaded on first use (None when the directory has no topology.yaml).
    """

    path: str
    summary: dict[str, Any]
    requests: pd.DataFrame
    calls: pd.DataFrame
    timeseries: pd.DataFrame
    faults: pd.DataFrame
    topology_text: str = ""
    given_topology: Topology | None = field(default=None, repr=False)

    @cached_property
    def topology(self) -> Topology | None:
        """The resolved topology that ran, or None without topology.yaml."""
        if self.given_topology is not None:
            return self.given_topology
        path = os.path.join(self.path, "topology.yaml")
        if not os.path.isfile(path):
            return None
        import topologies

        try:
            return topologies.load(path)
        except FaultmeshError:
            raise
        except Exception as exc:  # the loader should only raise TopologyError; be safe
            raise UsageError(f"{path}: cannot be read as a topology: {exc}") from exc

    # ---- the figures every metric needs -------------------------------------------------
    @property
    def engine(self) -> str:
        return str(self.summary.get("engine", "?"))

    @property
    def scenario(self) -> str:
        return str(self.summary.get("scenario") or "baseline")

    @property
    def seed(self) -> Any:
        return self.summary.get("seed")

    @property
    def name(self) -> str:
        """The topology's name."""
        return str(self.summary.get("topology") or os.path.basename(self.path))

    @property
    def label(self) -> str:
        """A short label for legends: engine/scenario/seed."""
        seed = self.seed
        return f"{self.engine}/{self.scenario}" + (f"/seed {seed}" if seed is not None else "")

    @property
    def duration(self) -> float:
        """End of the measured span (s): summary's duration, else the last request's start."""
        value = _finite(self.summary.get("duration"))
        if value is not None:
            return value
        if len(self.requests):
            return float(self.requests["start"].max()) + 1e-9
        return 0.0

    @property
    def warmup(self) -> float:
        """Start of the measured span (s): summary's warmup, else 0."""
        return _finite(self.summary.get("warmup")) or 0.0

    @property
    def span(self) -> float:
        """Length of the measured span in seconds."""
        return max(0.0, self.duration - self.warmup)

    def completed_requests(self) -> pd.DataFrame:
        """Client requests that got an answer or gave up (not still in flight at the end)."""
        return self.requests[~unfinished(self.requests)]

    def completed_calls(self) -> pd.DataFrame:
        """Call attempts that ended before the run did."""
        calls = self.calls
        done = ~unfinished(calls).to_numpy()
        k = int(done.sum())
        if done[:k].all():   # the in-flight rows are the last ones (lean reading): no copy
            return calls.iloc[:k]
        return calls[done]

    def measured_requests(self) -> pd.DataFrame:
        """Completed client requests that arrived after warmup and before the end of the run.

        A request still in flight when the run ended (error ``unfinished``) is neither a
        success nor a failure and is left out, as the engines' summaries do.
        """
        r = self.completed_requests()
        return r[(r["start"] >= self.warmup) & (r["start"] < self.duration)]

    @property
    def unfinished(self) -> int:
        """Measured requests still in flight when the run ended."""
        r = self.requests
        return int((unfinished(r) & (r["start"] >= self.warmup)).sum())

    def fault_intervals(self) -> list[tuple[float, float]]:
        """(start, end) of every applied fault, in seconds; an open end means the run's end."""
        out = []
        for start, end in zip(self.faults["start"], self.faults["end"], strict=True):
            if pd.isna(start):
                continue
            stop = self.duration if pd.isna(end) else float(end)
            out.append((float(start), max(float(start), stop)))
        return sorted(out)

    def prices(self) -> dict[str, float]:
        """USD per replica-hour of each service, from the topology (empty without one)."""
        topo = self.topology
        if topo is None:
            return {}
        return {name: float(svc.cost.per_replica_hour) for name, svc in topo.services.items()}


def unfinished(frame: pd.DataFrame) -> pd.Series:
    """Rows (requests or call attempts) still in flight when the run ended.

    Marked ``error == "unfinished"`` by the engines; a row with no end, no answer (status 0)
    and, for requests, no latency is read the same way.
    """
    mask = pd.Series(False, index=frame.index)
    if "error" in frame.columns:
        error = frame["error"]
        if isinstance(error.dtype, pd.CategoricalDtype):
            # judge each category once; code -1 (missing) picks the appended False
            hit = np.array([str(c).strip().lower() == "unfinished"
                            for c in error.cat.categories] + [False])
            mask |= pd.Series(hit[error.cat.codes.to_numpy()], index=frame.index)
        else:
            mask |= error.map(lambda e: str(e).strip().lower() == "unfinished")
    if "end" in frame.columns and "status" in frame.columns:
        mask |= frame["end"].isna() & (frame["status"].fillna(0) == 0)
    return mask.astype(bool)


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def load_result(result_dir: str, topology: Topology | None = None, *,
                lean: bool = False) -> Result:
    """Read and check a result directory.

    ``topology`` overrides the directory's topology.yaml (notebooks, tests). Raises
    :class:`UsageError` naming the offending file when the directory is not a readable result.

    ``lean`` (what finalize uses on million-row runs) keeps calls.csv small: only the columns
    the figures use (``replica`` left out, the LLM columns only when some call has a value),
    and its whole-number columns as integers (int16 or wider) rather than floats. The
    figures computed from it are the same.
    """
    result_dir = os.fspath(result_dir)
    if not os.path.isdir(result_dir):
        raise UsageError(f"{result_dir}: no such result directory")
    summary_path = os.path.join(result_dir, "summary.json")
    if not os.path.isfile(summary_path):
        raise UsageError(f"{summary_path}: missing; {result_dir} is not a faultmesh result "
                         "directory (run `faultmesh sim` or `faultmesh live` to make one)")
    try:
        with open(summary_path, encoding="utf-8") as fh:
            summary = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{summary_path}: not valid JSON ({exc})") from exc
    if not isinstance(summary, dict):
        raise UsageError(f"{summary_path}: expected a JSON object at the top level")
    frames = {name: _read_csv(result_dir, name, required=(name == "requests.csv"), lean=lean)
              for name in REQUIRED_COLUMNS}
    text = ""
    topo_path = os.path.join(result_dir, "topology.yaml")
    if os.path.isfile(topo_path):
        with open(topo_path, encoding="utf-8") as fh:
            text = fh.read()
    return Result(result_dir, summary, frames["requests.csv"], frames["calls.csv"],
                  frames["timeseries.csv"], frames["faults.csv"], text, topology)


def _read_csv(result_dir: str, name: str, *, required: bool, lean: bool = False
              ) -> pd.DataFrame:
    path = os.path.join(result_dir, name)
    columns = REQUIRED_COLUMNS[name]
    if not os.path.isfile(path):
        if required:
            raise UsageError(f"{path}: missing; every result directory has one")
        return _coerce(pd.DataFrame({c: pd.Series(dtype=float) for c in columns}), name, path)
    lean = lean and name in _LEAN
    try:
        # text columns typed up front: a mostly-empty `error` column would otherwise be
        # guessed chunk by chunk (mixed types) on large runs; the big tables' repeated names
        # are read as categories (a byte per row, not a string object)
        frame = None
        if os.path.getsize(path) >= _BIG:
            frame = _read_chunked(path, name, lean)
        if frame is None:
            usecols = (lambda c: c in _LEAN[name]) if lean else None
            frame = pd.read_csv(path, keep_default_na=True, dtype=_text_dtypes(name),
                                usecols=usecols)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: empty file (expected a header line: "
                         f"{', '.join(columns)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: malformed CSV ({str(exc).strip().splitlines()[0]})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(expected at least {', '.join(columns)})")
    frame = _coerce(frame, name, path, lean=lean)
    if lean:
        empty = [c for c in _OPTIONAL.get(name, ()) if c in frame.columns
                 and not frame[c].notna().any()]
        frame = frame.drop(columns=empty)
        # calls still in flight at the end moved last (the others keep their order), so the
        # completed calls are a slice of the table rather than a copy
        late = unfinished(frame).to_numpy()
        if late.any() and not late[len(late) - int(late.sum()):].all():
            order = np.concatenate([np.flatnonzero(~late), np.flatnonzero(late)])
            frame = frame.take(order).reset_index(drop=True)
    return frame


class _Irregular(Exception):
    """A big file the chunked reader does not handle (it is then read the ordinary way)."""


def _count_rows(path: str) -> int:
    """Data lines of a CSV file (lines after the header; a last line without newline counts)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n") - 1


def _read_chunked(path: str, name: str, lean: bool) -> pd.DataFrame | None:
    """A big CSV read ``_CHUNK`` rows at a time into columns allocated once for all rows.

    pandas' own reader keeps every piece of the file until it joins them: twice the table at
    its peak. Returns None for files this does not handle (then read the ordinary way).
    """
    n = _count_rows(path)
    dtype = _text_dtypes(name)
    numeric = {c: float for c in _NUMERIC.get(name, ()) if not lean or c in _FLOAT.get(name, ())}
    usecols = (lambda c: c in _LEAN[name]) if lean else None
    lazy = set(_OPTIONAL.get(name, ())) if lean else set()
    arrays: dict[str, np.ndarray | None] = {}
    categories: dict[str, dict[str, int]] = {}
    pos = 0
    try:
        reader = pd.read_csv(path, keep_default_na=True, dtype={**numeric, **dtype},
                             usecols=usecols, chunksize=_CHUNK)
    except ValueError:
        return None
    with reader:
        try:
            for chunk in reader:
                m = len(chunk)
                if pos + m > n:
                    raise _Irregular
                for col in chunk.columns:
                    _store(arrays, categories, col, chunk[col], n, pos, m, col in lazy)
                pos += m
        except (_Irregular, ValueError):
            return None
    if pos != n:
        return None
    data: dict[str, Any] = {}
    for col, values in arrays.items():
        if col in categories:
            names = sorted(categories[col])
            new_code = np.empty(len(names) + 1, dtype=np.int32)
            new_code[[categories[col][c] for c in names]] = np.arange(len(names))
            new_code[-1] = -1
            # as pandas' reader makes them: sorted names (no names: an object index)
            index = pd.Index(names, dtype="str") if names else pd.Index([], dtype=object)
            values = pd.Categorical.from_codes(new_code[values],
                                               dtype=pd.CategoricalDtype(index))
        elif values is None:
            values = np.full(n, np.nan)
        data[col] = values
    return pd.DataFrame(data, copy=False)


def _store(arrays: dict[str, np.ndarray | None], categories: dict[str, dict[str, int]],
           col: str, column: pd.Series, n: int, pos: int, m: int, lazy: bool) -> None:
    """Put one chunk of one column into its all-rows array (allocated on first use)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        table = categories.setdefault(col, {})
        code = np.array([table.setdefault(str(c), len(table))
                         for c in column.cat.categories] + [-1], dtype=np.int32)
        values = code[column.cat.codes.to_numpy()]
    else:
        values = column.to_numpy()
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
            raise _Irregular
    acc = arrays.get(col)
    if acc is None:
        if lazy and values.dtype.kind == "f" and np.isnan(values).all():
            arrays[col] = None   # all missing so far: no memory until a value shows up
            return
        acc = np.empty(n, dtype=values.dtype)
        if col in arrays:        # lazily skipped so far: those rows are missing
            acc[:pos] = np.nan
        arrays[col] = acc
    elif values.dtype != acc.dtype:
        if values.dtype.kind == "b" or acc.dtype.kind == "b":
            raise _Irregular
        common = np.result_type(acc.dtype, values.dtype)
        if common != acc.dtype:
            acc = arrays[col] = acc.astype(common)
    acc[pos:pos + m] = values


def _text_dtypes(name: str) -> dict[str, Any]:
    """read_csv's ``dtype`` for the text columns (those absent from a file are ignored)."""
    categorical = _CATEGORICAL.get(name, ())
    return {c: ("category" if c in categorical else str) for c in _TEXT}


def _coerce(frame: pd.DataFrame, name: str, path: str, *, lean: bool = False) -> pd.DataFrame:
    for col in _NUMERIC.get(name, ()):
        if col in frame.columns:
            try:
                values = pd.to_numeric(frame[col], errors="raise")
            except (ValueError, TypeError) as exc:
                raise UsageError(f"{path}: column {col} must hold numbers ({exc})") from exc
            if lean and col not in _FLOAT.get(name, ()) and values.dtype.kind in "iu":
                frame[col] = _small_int(values)
            else:
                frame[col] = values.astype(float)
    if lean:
        for col in ("request_id", "call"):
            if col in frame.columns and frame[col].dtype.kind in "iu":
                frame[col] = _small_int(frame[col])
    for col in _BOOLEAN.get(name, ()):
        if col in frame.columns:
            frame[col] = _as_bool(frame[col])
    for col in ("caller", "callee", "service", "target", "type", "error"):
        if col in frame.columns and not isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
            if col != "error":
                frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    return frame


def _small_int(values: pd.Series) -> pd.Series:
    """Whole numbers in the narrowest of int16, int32, int64 that holds them."""
    if not len(values):
        return values
    lo, hi = int(values.min()), int(values.max())
    for kind in (np.int16, np.int32):
        info = np.iinfo(kind)
        if info.min <= lo and hi <= info.max:
            return values.astype(kind)
    return values.astype(np.int64)


def _as_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    return column.map(lambda v: str(v).strip().lower() in _TRUE if not pd.isna(v) else False
                      ).astype(bool)
