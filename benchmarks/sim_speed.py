"""Benchmark: `faultmesh sim` against a minimal hand-written simpy model of the same network.

A 5-service tandem (each service calls the next; exponential 4 ms own time, one worker per
service) at 50 requests/s for 4000 simulated seconds: ~200k requests and ~1M calls. The
faultmesh run goes through the CLI (with --no-report) and includes writing every result
file; the minimal model only moves requests through five simpy Resources. Both run in this
process, one after the other, and the script prints both wall times, their ratio and the
peak resident memory of the faultmesh run.

    .venv/bin/python benchmarks/sim_speed.py [--duration 4000] [--rate 50]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time

import simpy

TOPOLOGY = """\
version: 1
name: tandem5
entry: s1
workload: {{model: open, rate: {rate}, duration: {duration}, warmup: 0}}
services:
  s1: {{latency: {{dist: exponential, mean: 4ms}}, calls: [{{to: s2}}]}}
  s2: {{latency: {{dist: exponential, mean: 4ms}}, calls: [{{to: s3}}]}}
  s3: {{latency: {{dist: exponential, mean: 4ms}}, calls: [{{to: s4}}]}}
  s4: {{latency: {{dist: exponential, mean: 4ms}}, calls: [{{to: s5}}]}}
  s5: {{latency: {{dist: exponential, mean: 4ms}}}}
"""


def minimal(rate: float, duration: float, n: int = 5, mean: float = 0.004) -> int:
    """The same network in plain simpy: Poisson arrivals through n single-server stations."""
    rng = random.Random(0)
    env = simpy.Environment()
    stations = [simpy.Resource(env, 1) for _ in range(n)]
    done = []

    def request():
        t0 = env.now
        for station in stations:
            with station.request() as req:
                yield req
                yield env.timeout(rng.expovariate(1 / mean))
        done.append(env.now - t0)

    def arrivals():
        while True:
            yield env.timeout(rng.expovariate(rate))
            env.process(request())

    env.process(arrivals())
    env.run(until=duration)
    return len(done)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4000.0)
    ap.add_argument("--rate", type=float, default=50.0)
    args = ap.parse_args(argv)
    from faultmesh.cli import main as faultmesh

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tandem5.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(TOPOLOGY.format(rate=args.rate, duration=args.duration))
        out = os.path.join(tmp, "out")
        t0 = time.perf_counter()
        code = faultmesh(["sim", path, "--no-report", "--out", out])
        t_fm = time.perf_counter() - t0
        rss = peak_rss_mib()
        if code != 0:
            print(f"faultmesh sim failed with exit code {code}", file=sys.stderr)
            return 1
        with open(os.path.join(out, "requests.csv"), encoding="utf-8") as fh:
            n_requests = sum(1 for _ in fh) - 1
        with open(os.path.join(out, "calls.csv"), encoding="utf-8") as fh:
            n_calls = sum(1 for _ in fh) - 1
    t0 = time.perf_counter()
    n_min = minimal(args.rate, args.duration)
    t_min = time.perf_counter() - t0
    print(f"faultmesh sim : {t_fm:7.2f} s wall  ({n_requests:,} requests, {n_calls:,} calls, "
          "result files included)")
    print(f"minimal simpy : {t_min:7.2f} s wall  ({n_min:,} requests)")
    print(f"ratio         : {t_fm / t_min:7.2f} x   (target <= 2.0)")
    print(f"peak RSS      : {rss:7.0f} MiB  (target < 1024 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
