"""Reading result-file columns the same way everywhere: booleans written as True/1/"true",
error words as text or categories, numbers with empty cells; one percentile rule (numpy's
linear interpolation) for latencies, TTFT and TPOT; NaN and infinities made JSON-safe.

Used by the one summary of both engines (``summary.py``), the per-edge figures
(``edges.py``) and the reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["percentile", "latency_stats", "as_bool", "unfinished_rows", "json_safe",
           "finite_values", "column_codes", "column_values", "column_numbers", "lowest_of"]

_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
_TRUE = frozenset(("true", "1", "yes", "t", "y", "1.0"))

def percentile(values: Iterable[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of the finite values (linear interpolation); NaN if none."""
    arr = finite_values(values)
    return float(np.percentile(arr, q)) if arr.size else math.nan


def latency_stats(values: Iterable[float] | np.ndarray) -> dict[str, float]:
    """mean, p50, p90, p95, p99, p999 and max of the finite values (NaN when there are none)."""
    arr = finite_values(values)
    if arr.size == 0:
        return {k: math.nan for k in ("mean", *(k for k, _ in _PERCENTILES), "max")}
    q = np.percentile(arr, [q for _, q in _PERCENTILES])
    out = {"mean": float(arr.mean())}
    out.update({k: float(v) for (k, _), v in zip(_PERCENTILES, q, strict=True)})
    out["max"] = float(arr.max())
    return out


def finite_values(values: Iterable[float] | np.ndarray) -> np.ndarray:
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
        end = column_values(frame, "end")
        no_end = np.isnan(end) if end.dtype.kind == "f" else np.zeros(len(frame), bool)
        if no_end.any():
            status = column_values(frame, "status")
            no_status = status == 0
            if status.dtype.kind == "f":
                no_status |= np.isnan(status)
            mask |= no_end & no_status
    return mask


def _word_is(column: pd.Series, word: str) -> np.ndarray:
    return _text_test(column, lambda v: v.strip().lower() == word)


def _text_test(column: pd.Series, test: Any) -> np.ndarray:
    """``test`` of each value's text, judged once per distinct value (missing: False)."""
    codes, names = column_codes(column)
    hit = np.array([test(name) for name in names] + [False], dtype=bool)
    return hit[codes]


def column_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1: missing) and the names they stand for."""
    if isinstance(column.dtype, pd.CategoricalDtype):   # codes as stored: int8 for a few names
        return column.cat.codes.to_numpy(), [str(c) for c in column.cat.categories]
    codes, uniques = pd.factorize(column, use_na_sentinel=True)  # missing values: -1
    return codes.astype(np.int32), [str(u) for u in uniques]


def column_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as stored (a view where possible); text read as numbers (else NaN)."""
    s = frame[column]
    if s.dtype.kind in "iuf":
        return s.to_numpy()
    if s.dtype.kind == "b":
        return s.to_numpy().astype(np.int8)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def column_numbers(frame: pd.DataFrame, column: str, default: float = math.nan) -> np.ndarray:
    """A column as floats (a view when it already is); ``default`` when it is absent."""
    if column not in frame.columns:
        return np.full(len(frame), default)
    values = column_values(frame, column)
    return values if values.dtype.kind == "f" else values.astype(float)


def lowest_of(values: np.ndarray, rows: np.ndarray) -> float:
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
