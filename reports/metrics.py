"""Request-level metrics: latency percentiles, availability, error rate, throughput, LLM timings.

Every function takes DataFrames shaped like the result files (requests.csv, calls.csv,
timeseries.csv) and returns plain numbers or small DataFrames, so each can be checked on a
hand-made table with a known answer.

Conventions (the same in the HTML report, the SLO evaluation and the gate):

* a request belongs to the 5 s window in which it **arrived** (its ``start``); windows are
  aligned at t = 0 (``[0, 5)``, ``[5, 10)``, ...);
* latency statistics cover successful requests (degraded answers included), as the engines'
  summaries do: failures are counted by the error rate, not mixed into latency;
  percentiles are numpy's linear interpolation between order statistics;
* a request still in flight when the run ended is neither a success nor a failure and is
  left out (``Result.measured_requests``);
* a request succeeded when ``ok`` is true; a degraded answer (``degraded`` true) is a
  success unless ``count_degraded`` is False;
* throughput is successful requests per second of the span considered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from topologies import summary

__all__ = [
    "WINDOW",
    "PERCENTILES",
    "percentile",
    "latency_stats",
    "successes",
    "success_latency",
    "availability",
    "error_rate",
    "throughput",
    "window_index",
    "windowed",
    "in_intervals",
    "llm_stats",
    "llm_windowed",
    "service_series",
]

WINDOW = 5.0
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def percentile(values: Iterable[float] | pd.Series, q: float) -> float:
    """The ``q``-th percentile (0-100) of the finite values, NaN when there are none
    (summary.json's function, :func:`topologies.summary.percentile`)."""
    return summary.percentile(pd.Series(values, dtype=float).to_numpy(), q)


def latency_stats(latencies: Iterable[float] | pd.Series) -> dict[str, float]:
    """mean, p50, p90, p95, p99, p999 and max of latencies in seconds (NaN when empty), as
    summary.json's ``latency`` block (:func:`topologies.summary.latency_stats`)."""
    return summary.latency_stats(pd.Series(latencies, dtype=float).to_numpy())


def successes(requests: pd.DataFrame, count_degraded: bool = True) -> pd.Series:
    """Boolean per request: answered successfully (degraded counts unless told not)."""
    ok = requests["ok"].astype(bool)
    if not count_degraded and "degraded" in requests.columns:
        ok = ok & ~requests["degraded"].astype(bool)
    return ok


def success_latency(requests: pd.DataFrame) -> pd.Series:
    """Latencies (s) of the successful requests, degraded answers included."""
    return requests.loc[successes(requests), "latency"]


def availability(requests: pd.DataFrame, count_degraded: bool = True) -> float:
    """Share of requests answered successfully; NaN when there are no requests."""
    if len(requests) == 0:
        return math.nan
    return float(successes(requests, count_degraded).mean())


def error_rate(requests: pd.DataFrame, count_degraded: bool = True) -> float:
    """Share of requests that failed (1 - availability); NaN when there are no requests."""
    a = availability(requests, count_degraded)
    return math.nan if math.isnan(a) else 1.0 - a


def throughput(requests: pd.DataFrame, seconds: float, count_degraded: bool = True) -> float:
    """Successful requests per second over ``seconds`` of arrivals; NaN for an empty span."""
    if seconds <= 0:
        return math.nan
    return float(successes(requests, count_degraded).sum()) / seconds


def window_index(times: pd.Series, width: float = WINDOW, origin: float = 0.0) -> pd.Series:
    """The window each time falls in: ``floor((t - origin) / width)``."""
    return np.floor((times.astype(float) - origin) / width).astype(int)


def windowed(requests: pd.DataFrame, start: float, end: float, width: float = WINDOW,
             count_degraded: bool = True) -> pd.DataFrame:
    """Per-window figures of client requests arriving in ``[start, end)``.

    Windows are aligned at t = 0. Columns: ``t`` (window start, s), ``t_mid``, ``requests``,
    ``ok``, ``errors``, ``error_rate``, ``throughput`` (successes/s), ``error_throughput``
    (failures/s), ``mean``, ``p50``, ``p90``, ``p99`` (latency, s). Empty windows are kept
    with zero counts and NaN latencies, so gaps show.
    """
    first = math.floor(start / width)
    last = math.ceil(end / width)
    index = np.arange(first, max(first, last))
    r = requests[(requests["start"] >= start) & (requests["start"] < end)]
    w = window_index(r["start"], width)
    good = successes(r, count_degraded)
    rows = []
    groups = {k: g for k, g in r.groupby(w)} if len(r) else {}
    for k in index:
        g = groups.get(k)
        lo, hi = max(start, k * width), min(end, (k + 1) * width)
        seconds = max(hi - lo, 1e-9)
        n = 0 if g is None else len(g)
        ok = 0 if g is None else int(good.loc[g.index].sum())
        lat = latency_stats(success_latency(g)) if g is not None else latency_stats([])
        rows.append({
            "t": k * width, "t_mid": (lo + hi) / 2, "requests": n, "ok": ok, "errors": n - ok,
            "error_rate": (n - ok) / n if n else math.nan,
            "throughput": ok / seconds, "error_throughput": (n - ok) / seconds,
            "mean": lat["mean"], "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"],
        })
    return pd.DataFrame(rows, columns=["t", "t_mid", "requests", "ok", "errors", "error_rate",
                                       "throughput", "error_throughput", "mean", "p50", "p90",
                                       "p99"])


def in_intervals(times: pd.Series, intervals: list[tuple[float, float]]) -> pd.Series:
    """Boolean per time: inside any ``[start, end)`` interval."""
    mask = pd.Series(False, index=times.index)
    for lo, hi in intervals:
        mask |= (times >= lo) & (times < hi)
    return mask


def llm_stats(calls: pd.DataFrame) -> pd.DataFrame:
    """Per LLM service: calls with token timings, time to first token and time per output token.

    Rows are calls.csv attempts with a ``ttft`` value. Columns: ``service``, ``calls``,
    ``ttft_p50``, ``ttft_p90``, ``ttft_p99``, ``tpot_p50``, ``tpot_p90``, ``tpot_p99`` (s),
    ``output_tokens_mean``.
    """
    cols = ["service", "calls", "ttft_p50", "ttft_p90", "ttft_p99", "tpot_p50", "tpot_p90",
            "tpot_p99", "output_tokens_mean"]
    if "ttft" not in calls.columns:
        return pd.DataFrame(columns=cols)
    c = calls[calls["ttft"].notna()]
    rows = []
    for service, g in c.groupby("callee"):
        tpot = g["tpot"] if "tpot" in g.columns else pd.Series(dtype=float)
        toks = g["output_tokens"] if "output_tokens" in g.columns else pd.Series(dtype=float)
        rows.append({
            "service": service, "calls": len(g),
            **{f"ttft_{k}": percentile(g["ttft"], PERCENTILES[k]) for k in ("p50", "p90", "p99")},
            **{f"tpot_{k}": percentile(tpot, PERCENTILES[k]) for k in ("p50", "p90", "p99")},
            "output_tokens_mean": float(toks.mean()) if toks.notna().any() else math.nan,
        })
    return pd.DataFrame(rows, columns=cols)


def llm_windowed(calls: pd.DataFrame, width: float = WINDOW) -> pd.DataFrame:
    """Per LLM service and window (by call start): p50/p99 of ttft and tpot, in seconds."""
    cols = ["service", "t", "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99"]
    if "ttft" not in calls.columns:
        return pd.DataFrame(columns=cols)
    c = calls[calls["ttft"].notna()]
    if not len(c):
        return pd.DataFrame(columns=cols)
    tpot = c["tpot"] if "tpot" in c.columns else pd.Series(math.nan, index=c.index)
    c = c.assign(_w=window_index(c["start"], width), _tpot=tpot)
    rows = []
    for (service, k), g in c.groupby(["callee", "_w"]):
        rows.append({"service": service, "t": k * width,
                     "ttft_p50": percentile(g["ttft"], 50), "ttft_p99": percentile(g["ttft"], 99),
                     "tpot_p50": percentile(g["_tpot"], 50),
                     "tpot_p99": percentile(g["_tpot"], 99)})
    return pd.DataFrame(rows, columns=cols)


def service_series(timeseries: pd.DataFrame, column: str) -> pd.DataFrame:
    """One column of timeseries.csv pivoted to time x service (NaN where a service is silent)."""
    if column not in timeseries.columns or not len(timeseries):
        return pd.DataFrame()
    return timeseries.pivot_table(index="t", columns="service", values=column, aggfunc="mean")
