"""Benchmark: reports.resilience.recovery_time on large request tables.

recovery_time bins the requests after the last fault into 5 s windows once and walks the
bins. The definition it replaced selected each window's requests from the whole table
(quadratic in the run's length: about 4 s at a million requests). This script builds
synthetic requests.csv tables (steady traffic, a 60 s fault, a recovery over 2 minutes), times the
one-pass function at 100k and 1M requests, and, as the baseline measured in the same run,
that per-window rescan at 100k requests; it checks both give the same value.

    .venv/bin/python benchmarks/recovery_time.py
    .venv/bin/python benchmarks/recovery_time.py --million 2000000 --repeat 5
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from reports import metrics  # noqa: E402
from reports.resilience import (  # noqa: E402
    RECOVERY_ERROR_FLOOR,
    RECOVERY_TOLERANCE,
    recovery_time,
    request_baseline,
)

RATE = 250.0          # requests per second: a million requests is 4000 s


def table(n: int, seed: int = 1) -> tuple[pd.DataFrame, float, tuple[float, float]]:
    """n requests at RATE per second; slow and failing during a 60 s fault a quarter into the
    run, healing over the next 120 s. Returns the table, its duration and the fault."""
    rng = np.random.default_rng(seed)
    duration = n / RATE
    start = np.sort(rng.uniform(0, duration, n))
    lo = duration / 4
    hi = lo + 60.0
    hurt = np.where((start >= lo) & (start < hi), 1.0,
                    np.where(start >= hi, np.clip(1 - (start - hi) / 120.0, 0, 1), 0.0))
    ok = rng.uniform(size=n) > 0.005 + 0.3 * hurt
    latency = rng.lognormal(np.log(0.2), 0.4, n) * (1 + 4 * hurt)
    return pd.DataFrame({"request_id": np.arange(n), "start": start, "latency": latency,
                         "ok": ok, "degraded": np.zeros(n, bool)}), duration, (lo, hi)


def rescan(requests: pd.DataFrame, intervals: list[tuple[float, float]], warmup: float,
           duration: float, width: float = metrics.WINDOW) -> float:
    """The replaced definition: every window selects its requests from the whole table."""
    base = request_baseline(requests, intervals, warmup, duration)
    end = max(hi for _, hi in intervals)
    max_err = max(base.error_rate * (1 + RECOVERY_TOLERANCE),
                  base.error_rate + RECOVERY_ERROR_FLOOR)
    max_p99 = base.p99 * (1 + RECOVERY_TOLERANCE)
    after = requests[(requests["start"] >= end) & (requests["start"] < duration)]
    k_of = metrics.window_index(after["start"], width, origin=end)
    good = metrics.successes(after)
    within = []
    for k in range(math.ceil((duration - end) / width)):
        g = after[k_of == k]
        if not len(g):
            within.append(False)
            continue
        err = 1.0 - float(good.loc[g.index].mean())
        p99 = metrics.percentile(metrics.success_latency(g), 99)
        within.append(err <= max_err + 1e-12 and p99 <= max_p99 + 1e-12)
    for k, ok in enumerate(within):
        if ok and (k + 1 == len(within) or within[k + 1]):
            return k * width
    return math.inf


def best(fn, repeat: int) -> tuple[float, float]:
    """(value, best wall time in seconds) of ``repeat`` calls."""
    times, value = [], math.nan
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=100_000, help="baseline size (rows)")
    ap.add_argument("--million", type=int, default=1_000_000, help="large size (rows)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    small, d_small, f_small = table(args.small)
    large, d_large, f_large = table(args.million)
    warm = 30.0
    v_ref, t_ref = best(lambda: rescan(small, [f_small], warm, d_small), args.repeat)
    v_small, t_small = best(lambda: recovery_time(small, [f_small], warm, d_small), args.repeat)
    v_large, t_large = best(lambda: recovery_time(large, [f_large], warm, d_large), args.repeat)
    if v_small != v_ref:
        raise SystemExit(f"values differ at {args.small:,} rows: {v_small} vs {v_ref}")
    print(f"recovery_time (s): {v_small:g} at {args.small:,} rows, {v_large:g} at "
          f"{args.million:,}")
    print(f"{'':34} {'rows':>10} {'seconds':>9}")
    print(f"{'per-window rescan (baseline)':34} {args.small:>10,} {t_ref:>9.4f}")
    print(f"{'one pass':34} {args.small:>10,} {t_small:>9.4f}")
    print(f"{'one pass':34} {args.million:>10,} {t_large:>9.4f}")
    print(f"one pass at {args.million:,} / rescan at {args.small:,}: {t_large / t_ref:.2f}x; "
          f"one pass {args.million:,} / {args.small:,}: {t_large / t_small:.1f}x for "
          f"{args.million / args.small:.0f}x the rows")


if __name__ == "__main__":
    main()
