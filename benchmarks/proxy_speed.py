"""Benchmark: the built-in fault proxy against a direct connection, and against Toxiproxy's figures.

One run, one echo server and one ProxyServer (each in its own process on 127.0.0.1, so none
shares a GIL with the client), one proxy to the echo server made through the Toxiproxy API.
Direct and proxied are measured in the same run, against the same echo server:

* small round trips (64 B out and back on one connection, TCP_NODELAY), direct and proxied
  in alternating blocks: median and p99, the latency the proxy adds, proxied / direct;
* small HTTP/1.1 exchanges (a GET and a 2-byte answer, keep-alive) to a small HTTP server,
  direct and proxied in alternating blocks: the median and what the proxy adds (HTTP
  connections keep the proxy's HTTP framing on every chunk: what a live run carries);
* bulk echo throughput (128 MiB sent while a thread reads the echo back), MiB/s and the ratio;
* many connections: 200 connections opened at once, each making 50 round trips of 1 KiB
  (an asyncio client, one task a connection); the wall time from the first connect to the
  last answer, and proxied / direct.

Bulk and many connections are run three times each, direct and proxied in turn, and the best
of each kept: on a shared machine other work only ever makes a run slower.

Beside each ratio it prints the figures measured for a real Toxiproxy 2.x on a machine like
this one (:data:`TOXIPROXY`). Toxiproxy is not installed here, so they are a reference taken
elsewhere, not a baseline of this run.

    .venv/bin/python benchmarks/proxy_speed.py
    .venv/bin/python benchmarks/proxy_speed.py --round-trips 500 --bulk 32 --json
    .venv/bin/python benchmarks/proxy_speed.py --no-uvloop      # the proxy on asyncio's loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its neighbours
from proxy_overhead import (  # noqa: E402
    ECHO,
    PROXY,
    ROOT,
    _bulk,
    _connect,
    _create_proxy,
    _p99,
    _round_trip,
    _spawn,
)

__all__ = ["main", "measure", "TOXIPROXY"]

TOXIPROXY = {"added_median_us": 76.0, "mib_s": 519.0, "ratio_many": 1.0}
"""Toxiproxy 2.x measured on a machine of this kind (not in this run): µs added per small
round trip, bulk MiB/s, and many-connections wall time / direct."""


# an HTTP/1.1 server answering every request on a connection with a 2-byte body: what the
# proxy carries in a live run, framed as HTTP on every chunk
HTTP_SERVER = r'''
import socket, threading
def serve(conn):
    with conn:
        buf = b""
        while data := conn.recv(65536):
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
srv = socket.create_server(("127.0.0.1", 0), backlog=65535)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''
HTTP_REQUEST = b"GET /search?q=1 HTTP/1.1\r\nHost: svc\r\n\r\n"
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _http_round_trip(sock: socket.socket) -> float:
    start = time.perf_counter()
    sock.sendall(HTTP_REQUEST)
    got = b""
    while len(got) < len(HTTP_ANSWER):
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("the HTTP server closed the connection")
        got += data
    return time.perf_counter() - start


def _interleaved(direct_port: int, proxied_port: int, round_trips: int,
                 one: Any) -> tuple[list[float], list[float]]:
    """Round trips on one connection each way, in alternating blocks of 50: both paths see
    the same load on the machine."""
    direct_rt: list[float] = []
    proxied_rt: list[float] = []
    with _connect(direct_port) as direct, _connect(proxied_port) as via:
        for sock in (direct, via):
            for _ in range(50):
                one(sock)  # warm up: connection, caches
        while len(direct_rt) < round_trips:
            direct_rt += [one(direct) for _ in range(50)]
            proxied_rt += [one(via) for _ in range(50)]
    return direct_rt, proxied_rt


# the proxy with uvloop made unimportable: the same server on asyncio's own loop
PROXY_ASYNCIO = "import sys; sys.modules['uvloop'] = None\n" + PROXY


async def _many_async(port: int, conns: int, trips: int, size: int) -> float:
    payload = b"m" * size

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(trips):
                writer.write(payload)
                got = await reader.readexactly(size)
                if len(got) != size:
                    raise ConnectionError("short echo")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(conns))), timeout=60)
    return time.perf_counter() - start


def _many(port: int, conns: int, trips: int, size: int) -> float:
    """Seconds for ``conns`` connections opened at once to make ``trips`` round trips each."""
    return asyncio.run(_many_async(port, conns, trips, size))


def measure(round_trips: int = 2000, size: int = 64, bulk_mib: int = 128, conns: int = 200,
            trips: int = 50, many_size: int = 1024, repeats: int = 3,
            uvloop: bool = True) -> dict[str, float]:
    """The figures of one run (seconds and MiB/s; ratios proxied / direct)."""
    echo, echo_port = _spawn(ECHO)
    web, web_port = _spawn(HTTP_SERVER)
    proxy, api_port = _spawn(PROXY if uvloop else PROXY_ASYNCIO, str(ROOT))
    try:
        proxied_port = _create_proxy(api_port, echo_port)
        proxied_web = _create_proxy(api_port, web_port, "web")
        payload = b"p" * size
        direct_rt, proxied_rt = _interleaved(echo_port, proxied_port, round_trips,
                                             lambda sock: _round_trip(sock, payload))
        direct_http, proxied_http = _interleaved(web_port, proxied_web, round_trips // 2,
                                                 _http_round_trip)
        # the best of a few runs each, in turn: the shared machine's noise only adds time
        direct_bulk = proxied_bulk = 0.0
        for _ in range(repeats):
            direct_bulk = max(direct_bulk, _bulk(echo_port, bulk_mib))
            proxied_bulk = max(proxied_bulk, _bulk(proxied_port, bulk_mib))
        direct_many = proxied_many = float("inf")
        for _ in range(repeats):
            direct_many = min(direct_many, _many(echo_port, conns, trips, many_size))
            proxied_many = min(proxied_many, _many(proxied_port, conns, trips, many_size))
    finally:
        for p in (proxy, web, echo):
            p.kill()
            p.wait()
    d50, p50 = statistics.median(direct_rt), statistics.median(proxied_rt)
    d99, p99 = _p99(direct_rt), _p99(proxied_rt)
    h50, hp50 = statistics.median(direct_http), statistics.median(proxied_http)
    return {"round_trips": len(direct_rt), "size": size, "bulk_mib": bulk_mib,
            "conns": conns, "trips": trips, "many_size": many_size,
            "direct_median": d50, "proxied_median": p50, "added_median": p50 - d50,
            "ratio_median": p50 / d50,
            "direct_p99": d99, "proxied_p99": p99, "added_p99": p99 - d99,
            "ratio_p99": p99 / d99,
            "direct_http_median": h50, "proxied_http_median": hp50,
            "added_http_median": hp50 - h50, "ratio_http_median": hp50 / h50,
            "direct_mib_s": direct_bulk, "proxied_mib_s": proxied_bulk,
            "ratio_mib_s": proxied_bulk / direct_bulk,
            "direct_many_s": direct_many, "proxied_many_s": proxied_many,
            "ratio_many": proxied_many / direct_many}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-trips", type=int, default=2000)
    ap.add_argument("--bulk", type=int, default=128, help="MiB echoed for throughput")
    ap.add_argument("--conns", type=int, default=200, help="connections opened at once")
    ap.add_argument("--trips", type=int, default=50, help="round trips per connection")
    ap.add_argument("--no-uvloop", action="store_true",
                    help="run the proxy on asyncio's own loop even where uvloop is installed")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    m = measure(args.round_trips, bulk_mib=args.bulk, conns=args.conns, trips=args.trips,
                uvloop=not args.no_uvloop)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    us = 1e6
    t = TOXIPROXY
    print(f"{m['round_trips']} round trips of {m['size']} B, {m['bulk_mib']} MiB bulk echo, "
          f"{m['conns']} connections x {m['trips']} round trips of {m['many_size']} B; "
          f"the proxy on {'asyncio' if args.no_uvloop else 'uvloop (when installed)'}")
    print(f"{'':>22} {'direct':>11} {'proxied':>11} {'added':>10} {'ratio':>7}   Toxiproxy 2.x "
          "(reference, not this run)")
    print(f"{'round trip median':>22} {m['direct_median'] * us:>9.0f}us "
          f"{m['proxied_median'] * us:>9.0f}us {m['added_median'] * us:>+8.0f}us "
          f"{m['ratio_median']:>6.2f}x   +{t['added_median_us']:.0f}us added")
    print(f"{'round trip p99':>22} {m['direct_p99'] * us:>9.0f}us {m['proxied_p99'] * us:>9.0f}us "
          f"{m['added_p99'] * us:>+8.0f}us {m['ratio_p99']:>6.2f}x")
    print(f"{'HTTP exchange median':>22} {m['direct_http_median'] * us:>9.0f}us "
          f"{m['proxied_http_median'] * us:>9.0f}us {m['added_http_median'] * us:>+8.0f}us "
          f"{m['ratio_http_median']:>6.2f}x")
    print(f"{'bulk echo':>22} {m['direct_mib_s']:>6.0f}MiB/s {m['proxied_mib_s']:>6.0f}MiB/s "
          f"{'':>10} {m['ratio_mib_s']:>6.2f}x   {t['mib_s']:.0f} MiB/s")
    print(f"{'many connections':>22} {m['direct_many_s']:>10.3f}s {m['proxied_many_s']:>10.3f}s "
          f"{m['proxied_many_s'] - m['direct_many_s']:>+9.3f}s {m['ratio_many']:>6.2f}x   "
          f"{t['ratio_many']:.1f}x direct")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
