"""Benchmark: `faultmesh sim` against a minimal hand-written simpy model of the same network.

A 5-service tandem (each service calls the next; exponential 4 ms own time, one worker per
service) at 50 requests/s for 4000 simulated seconds: ~200k requests and ~1M calls. The
faultmesh run goes through the CLI (with --no-report) and includes writing every result
file and ``reports.finalize``; the minimal model only moves requests through five simpy
Resources. The faultmesh run happens in a child process of its own, so its peak resident
memory (read from the child's rusage) is that run's alone; the minimal model then runs in
this process. The script prints both wall times, their ratio and the faultmesh peak RSS.
``--also-million`` adds the same figures at 250 requests/s (~1M requests, ~5M calls).

    .venv/bin/python benchmarks/sim_speed.py [--duration 4000] [--rate 50] [--also-million]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
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


MILLION_RATE = 250.0   # requests/s: 4000 s of it is ~1M requests


def faultmesh_run(rate: float, duration: float) -> dict:
    """`faultmesh sim --no-report` on the tandem (called in the child process)."""
    from faultmesh.cli import main as faultmesh

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tandem5.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(TOPOLOGY.format(rate=rate, duration=duration))
        out = os.path.join(tmp, "out")
        t0 = time.perf_counter()
        code = faultmesh(["sim", path, "--no-report", "--out", out])
        wall = time.perf_counter() - t0
        counts = {}
        for name in ("requests", "calls"):
            with open(os.path.join(out, f"{name}.csv"), "rb") as fh:
                counts[name] = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22),
                                                                         b"")) - 1
    return {"code": code, "wall": wall, **counts}


def measure(rate: float, duration: float) -> dict:
    """The faultmesh run in a child process: its figures and its own peak RSS (MiB)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        report = fh.name
    try:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", report,
                                 "--rate", str(rate), "--duration", str(duration)],
                                stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark child failed with exit code {proc.returncode}")
        with open(report, encoding="utf-8") as fh:
            figures = json.load(fh)
    finally:
        os.unlink(report)
    figures["rss"] = usage.ru_maxrss / 1024   # Linux reports KiB
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4000.0)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--also-million", action="store_true",
                    help=f"also run at {MILLION_RATE:g} requests/s (~1M requests)")
    ap.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        figures = faultmesh_run(args.rate, args.duration)
        with open(args.child, "w", encoding="utf-8") as fh:
            json.dump(figures, fh)
        return 0
    rates = [args.rate] + ([MILLION_RATE] if args.also_million and args.rate != MILLION_RATE
                           else [])
    for i, rate in enumerate(rates):
        fm = measure(rate, args.duration)
        if fm["code"] != 0:
            print(f"faultmesh sim failed with exit code {fm['code']}", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        n_min = minimal(rate, args.duration)
        t_min = time.perf_counter() - t0
        if i:
            print()
        print(f"== {rate:g} requests/s for {args.duration:g} s")
        print(f"faultmesh sim : {fm['wall']:7.2f} s wall  ({fm['requests']:,} requests, "
              f"{fm['calls']:,} calls, result files included)")
        print(f"minimal simpy : {t_min:7.2f} s wall  ({n_min:,} requests)")
        print(f"ratio         : {fm['wall'] / t_min:7.2f} x   (target <= 2.0)")
        print(f"peak RSS      : {fm['rss']:7.0f} MiB  (target < 1024 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
