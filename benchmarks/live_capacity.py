"""Benchmark: the highest rate a live run sustains, with one load process and with
`--load-workers 2`.

A 3-service topology (gateway -> retriever -> ranker, a few ms of emulated work each, wide
worker pools, so the machine and not the model is the limit) runs live at rising rates, each
a short run (`--duration`, default 8 s). A rate is *sustained* when the load achieved at least
95 % of its target (load.json's rate_ratio) and the client's p99 latency after the first
second stayed under 100 ms. A rising ladder of rates (`--start`, then `--step` more), both
settings run at each rung in turn so that both see the same (shared) machine; a failed rate
is run once more, and a setting stops at its first rate that fails twice. No rung starts
after `--budget` seconds. Prints every run, each setting's highest sustained rate, and the
ratio of 2 workers' to one process's.

    .venv/bin/python benchmarks/live_capacity.py               # ~6 minutes
    .venv/bin/python benchmarks/live_capacity.py --start 150 --step 25 --budget 200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

TOPOLOGY = """\
version: 1
name: capacity-3
entry: gateway
workload: {{model: open, rate: {rate}/s, duration: {duration}s, warmup: 1s, timeout: 5s}}
services:
  gateway:
    workers: 256
    latency: {{dist: constant, value: 2ms}}
    calls:
      - {{to: retriever, timeout: 2s}}
  retriever:
    workers: 256
    latency: {{dist: constant, value: 3ms}}
    calls:
      - {{to: ranker, timeout: 2s}}
  ranker:
    workers: 256
    latency: {{dist: constant, value: 2ms}}
"""

#: A rate is sustained at this share of its target or above.
MIN_RATIO = 0.95
#: ... with the client's p99 latency (after the first second) under this many seconds.
MAX_P99 = 0.100


def run_once(rate: float, workers: int, duration: float, base: str) -> dict[str, float]:
    """One live run at ``rate`` requests/s (``faultmesh live`` in a process of its own, as
    a user runs it); its rate ratio and p99 (after 1 s)."""
    path = os.path.join(base, f"cap-{workers}-{rate:g}.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(TOPOLOGY.format(rate=rate, duration=duration))
    out = os.path.join(base, f"out-{workers}-{rate:g}-{time.monotonic_ns()}")
    subprocess.run([sys.executable, "-m", "faultmesh", "live", path, "--out", out,
                    "--no-report", "--load-workers", str(workers)], check=True,
                   stdout=subprocess.DEVNULL, timeout=120 + 2 * duration,
                   env={**os.environ, "FAULTMESH_PROGRESS": "off"})
    with open(os.path.join(out, "load.json"), encoding="utf-8") as fh:
        load = json.load(fh)
    with open(os.path.join(out, "requests.csv"), encoding="utf-8") as fh:
        lat = sorted(float(r["latency"]) if r["latency"] else float("inf")
                     for r in csv.DictReader(fh) if float(r["start"]) >= 1.0)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("inf")
    busiest = max((p.get("cpu_share") or 0.0 for p in load.get("processes") or []),
                  default=load.get("cpu_share") or 0.0)
    return {"ratio": float(load.get("rate_ratio") or 0.0), "p99": p99,
            "requests": float(load["requests"]), "cpu": float(busiest)}


def ladder(settings: tuple[int, ...], start: float, step: float, duration: float,
           budget: float, base: str) -> dict[int, float]:
    """The highest rate each load setting sustains: a rising ladder (``start``, then
    ``step`` more each time), the settings interleaved at each rate so that both see the
    same machine. A failed rate is run once more (the machine is shared: one stall can
    spoil a p99); a setting is done at its first rate that fails twice."""
    until = time.monotonic() + budget
    best = {w: 0.0 for w in settings}
    live = list(settings)
    rate = start
    while live and time.monotonic() < until:
        for workers in list(live):
            for attempt in (1, 2):
                r = run_once(rate, workers, duration, base)
                ok = r["ratio"] >= MIN_RATIO and r["p99"] < MAX_P99
                print(f"  load workers {workers}: {rate:6.0f}/s  achieved/target "
                      f"{r['ratio']:.3f}  p99 {r['p99'] * 1000:6.1f} ms  busiest load "
                      f"process CPU {r['cpu']:3.0%}  "
                      f"{'sustained' if ok else 'NOT sustained'}"
                      f"{' (retry)' if attempt == 2 else ''}", flush=True)
                if ok:
                    best[workers] = rate
                    break
            else:
                live.remove(workers)
        rate += step
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", type=float, default=100.0, help="first rate (requests/s)")
    ap.add_argument("--step", type=float, default=50.0, help="rate added at each rung")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    ap.add_argument("--budget", type=float, default=330.0,
                    help="seconds for the whole ladder (no new rung is started after)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faultmesh-capacity-") as base:
        results = ladder((0, 2), args.start, args.step, args.duration, args.budget, base)
    print(f"highest rate sustained (achieved/target >= {MIN_RATIO}, p99 < "
          f"{MAX_P99 * 1000:.0f} ms), 3-service topology, {args.duration:g} s runs:")
    print(f"  1 load process (--load-workers 0): {results[0]:.0f}/s")
    print(f"  --load-workers 2:                  {results[2]:.0f}/s")
    if results[0]:
        print(f"  ratio (2 workers / 1 process): {results[2] / results[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
