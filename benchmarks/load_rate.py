"""Benchmark: how closely faultmesh's Locust load follows an open (Poisson) workload.

For each target rate (and server delay) it starts a small asyncio HTTP server on 127.0.0.1 in
its own process, runs `loadtests.run_load` for a bounded duration, and prints the achieved
rate against the target, the coefficient of variation of the arrival gaps (1 for Poisson),
the share of sends later than their schedule, and the load worker's CPU share.

    .venv/bin/python benchmarks/load_rate.py                  # 50/s:5ms 50/s:200ms 200/s 500/s
    .venv/bin/python benchmarks/load_rate.py 1500:0.005 --duration 10
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

SERVER = r'''
import asyncio, sys
DELAY = float(sys.argv[2])
async def handle(reader, writer):
    try:
        while True:
            if not await reader.readline():
                break
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if DELAY:
                await asyncio.sleep(DELAY)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(rate: float, delay: float, duration: float) -> dict:
    from loadtests import run_load
    from topologies.model import Workload

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(delay)])
    time.sleep(0.5)
    try:
        t0 = time.perf_counter()
        result = run_load(Workload(rate=rate, duration=duration), f"http://127.0.0.1:{port}")
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()
    starts = sorted(r.start for r in result.requests)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    return {"rate": rate, "delay": delay, "n": len(result.requests),
            "ratio": result.achieved_rate / rate,
            "cv": statistics.pstdev(gaps) / statistics.fmean(gaps) if len(gaps) > 1 else 0.0,
            "late": result.late_share, "cpu": result.cpu_share, "overhead": wall - duration}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["50:0.005", "50:0.2", "200:0.005", "500:0.005"],
                    help="RATE:SERVER_DELAY_SECONDS (default: a small set)")
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args(argv)
    print(f"{'target/s':>9} {'delay':>7} {'requests':>9} {'achieved/target':>16} {'gap CV':>7} "
          f"{'late':>6} {'worker CPU':>11} {'overhead':>9}")
    for case in args.cases:
        rate, delay = (float(x) for x in case.split(":"))
        m = measure(rate, delay, args.duration)
        print(f"{m['rate']:>9.0f} {m['delay'] * 1000:>5.0f}ms {m['n']:>9} {m['ratio']:>16.3f} "
              f"{m['cv']:>7.2f} {100 * (m['late'] or 0):>5.1f}% {100 * (m['cpu'] or 0):>10.1f}% "
              f"{m['overhead']:>8.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
