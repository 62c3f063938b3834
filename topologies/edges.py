"""Retry amplification per edge, from calls.csv rows: how many calls the topology asked
for on each ``caller->callee`` edge (the client's included), how many attempts were made,
their ratio and the failed attempts. The summary figure is the worst edge: an average over
every edge hides a retry storm on one (summary.py's docstring has the counting rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .columns import as_bool, column_codes, column_values, lowest_of, unfinished_rows

__all__ = ["EDGE_COLUMNS", "CallColumns", "edge_figures", "edges_of", "worst_amplification"]

#: Columns of :func:`edge_figures`.
EDGE_COLUMNS = ["caller", "callee", "calls", "attempts", "retry_amplification", "errors"]

@dataclass
class CallColumns:
    """The calls.csv columns the figures use, as arrays (computed once per table)."""

    caller: np.ndarray          # integer codes, -1 missing
    caller_names: list[str]
    callee: np.ndarray
    callee_names: list[str]
    ok: np.ndarray              # bool
    open: np.ndarray            # bool: no outcome (unfinished)
    attempt: np.ndarray         # as stored (whole numbers, or floats with NaN)

    @classmethod
    def of(cls, calls: pd.DataFrame) -> CallColumns:
        caller, caller_names = column_codes(calls["caller"])
        callee, callee_names = column_codes(calls["callee"])
        ok = as_bool(calls["ok"]) if "ok" in calls.columns else np.ones(len(calls), bool)
        attempt = (column_values(calls, "attempt") if "attempt" in calls.columns
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
    return edges_of(calls, CallColumns.of(calls), rows)


def _edge_frame(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("caller", "callee") else float)
                             for c in EDGE_COLUMNS})
    return pd.DataFrame(rows, columns=EDGE_COLUMNS)


def edges_of(calls: pd.DataFrame, c: CallColumns, rows: np.ndarray | None) -> pd.DataFrame:
    valid = (c.caller >= 0) & (c.callee >= 0)
    if rows is not None:
        valid &= np.asarray(rows, dtype=bool)
    if not valid.any():
        return _edge_frame([])
    n_callee = max(len(c.callee_names), 1)
    n_edges = max(len(c.caller_names), 1) * n_callee
    edge = np.multiply(c.caller, n_callee, dtype=np.int16 if n_edges < 2 ** 15 else np.int32)
    edge += c.callee
    first = valid & (c.attempt == lowest_of(c.attempt, valid))
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
        site = column_values(calls, "call")[first]
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
