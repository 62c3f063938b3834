"""Benchmark: what the built-in fault proxy (chaos.proxy) adds to a TCP connection.

It starts a TCP echo server and a ProxyServer, each in its own process on 127.0.0.1 (so
neither shares a GIL with the client), creates one proxy to the echo server through the
Toxiproxy API, and measures in the same run, against the same echo server:

* small round trips (``--size`` bytes out and back on one connection, TCP_NODELAY), direct
  and through the proxy, interleaved in blocks so both see the same machine load; printed as
  median and p99, the added latency (proxied minus direct) and the ratio proxied / direct;
* bulk echo throughput (``--bulk`` MiB sent while the echo is read back on another thread),
  direct and through the proxy, in MiB/s, and the ratio proxied / direct.

    .venv/bin/python benchmarks/proxy_overhead.py                 # 2000 round trips, 256 MiB
    .venv/bin/python benchmarks/proxy_overhead.py --round-trips 500 --bulk 32 --json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

__all__ = ["main", "measure"]

ROOT = Path(__file__).resolve().parent.parent

ECHO = r'''
import socket, sys, threading
def echo(conn):
    with conn:
        try:
            while data := conn.recv(262144):
                conn.sendall(data)
        except OSError:
            pass
# the system's full listen backlog: 200 connects at once (proxy_speed.py) overflow one of
# 128, and a dropped SYN is retried only after a second
srv = socket.create_server(("127.0.0.1", 0), backlog=65535)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
'''

PROXY = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from chaos.proxy import ProxyServer
server = ProxyServer("127.0.0.1", 0, seed=0).start()
print(server.port, flush=True)
while True:
    time.sleep(3600)
'''


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"helper process did not start: {line!r}")
    return proc, int(line)


def _create_proxy(api_port: int, upstream_port: int, name: str = "echo") -> int:
    """Create one proxy through the Toxiproxy API; the port it listens on."""
    body = json.dumps({"name": name, "listen": "127.0.0.1:0",
                       "upstream": f"127.0.0.1:{upstream_port}"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{api_port}/proxies", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        listen = json.loads(resp.read())["listen"]
    return int(listen.rsplit(":", 1)[1])


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _round_trip(sock: socket.socket, payload: bytes) -> float:
    start = time.perf_counter()
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        data = sock.recv(len(payload) - got)
        if not data:
            raise ConnectionError("echo closed the connection")
        got += len(data)
    return time.perf_counter() - start


def _bulk(port: int, mib: int) -> float:
    """MiB/s echoed through ``port``: ``mib`` MiB sent while a thread reads them back."""
    chunk = b"x" * (1 << 20)
    total = mib << 20
    with _connect(port) as sock:
        received = [0]

        def reader() -> None:
            while received[0] < total:
                data = sock.recv(1 << 20)
                if not data:
                    return
                received[0] += len(data)

        thread = threading.Thread(target=reader)
        start = time.perf_counter()
        thread.start()
        for _ in range(mib):
            sock.sendall(chunk)
        thread.join(120)
        took = time.perf_counter() - start
    if received[0] != total:
        raise ConnectionError(f"bulk echo lost data: {received[0]} of {total} bytes")
    return mib / took


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98]


def measure(round_trips: int = 2000, size: int = 64, bulk_mib: int = 256,
            block: int = 50) -> dict[str, float]:
    """The figures of one run (seconds and MiB/s; ratios proxied / direct)."""
    echo, echo_port = _spawn(ECHO)
    proxy, api_port = _spawn(PROXY, str(ROOT))
    try:
        proxied_port = _create_proxy(api_port, echo_port)
        payload = b"p" * size
        direct_rt: list[float] = []
        proxied_rt: list[float] = []
        with _connect(echo_port) as direct, _connect(proxied_port) as via:
            for sock in (direct, via):
                for _ in range(50):
                    _round_trip(sock, payload)  # warm up: connection, caches
            while len(direct_rt) < round_trips:
                # blocks in turn: both paths see the same load on the machine
                direct_rt += [_round_trip(direct, payload) for _ in range(block)]
                proxied_rt += [_round_trip(via, payload) for _ in range(block)]
        direct_bulk = _bulk(echo_port, bulk_mib)
        proxied_bulk = _bulk(proxied_port, bulk_mib)
    finally:
        for p in (proxy, echo):
            p.kill()
            p.wait()
    d50, p50 = statistics.median(direct_rt), statistics.median(proxied_rt)
    d99, p99 = _p99(direct_rt), _p99(proxied_rt)
    return {"round_trips": len(direct_rt), "size": size, "bulk_mib": bulk_mib,
            "direct_median": d50, "proxied_median": p50, "added_median": p50 - d50,
            "ratio_median": p50 / d50,
            "direct_p99": d99, "proxied_p99": p99, "added_p99": p99 - d99,
            "ratio_p99": p99 / d99,
            "direct_mib_s": direct_bulk, "proxied_mib_s": proxied_bulk,
            "ratio_mib_s": proxied_bulk / direct_bulk}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-trips", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64, help="bytes per small round trip")
    ap.add_argument("--bulk", type=int, default=256, help="MiB echoed for throughput")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    m = measure(args.round_trips, args.size, args.bulk)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    us = 1e6
    print(f"{m['round_trips']} round trips of {m['size']} B, {m['bulk_mib']} MiB bulk echo")
    print(f"{'':>22} {'direct':>10} {'proxied':>10} {'added':>10} {'ratio':>7}")
    for name, key in (("round trip median", "median"), ("round trip p99", "p99")):
        print(f"{name:>22} {m['direct_' + key] * us:>8.0f}us {m['proxied_' + key] * us:>8.0f}us "
              f"{m['added_' + key] * us:>+8.0f}us {m['ratio_' + key]:>6.2f}x")
    print(f"{'bulk echo':>22} {m['direct_mib_s']:>6.0f}MiB/s {m['proxied_mib_s']:>6.0f}MiB/s "
          f"{'':>10} {m['ratio_mib_s']:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
