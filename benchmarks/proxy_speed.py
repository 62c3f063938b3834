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
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
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


def _interleaved(ports: list[int], round_trips: int, one: Any) -> list[list[float]]:
    """Round trips on one connection to each port, in alternating blocks of 50: every path
    sees the same load on the machine. One list of seconds per port."""
    times: list[list[float]] = [[] for _ in ports]
    socks = [_connect(port) for port in ports]
    try:
        for sock in socks:
            for _ in range(50):
                one(sock)  # warm up: connection, caches
        while len(times[0]) < round_trips:
            for sock, got in zip(socks, times, strict=True):
                got += [one(sock) for _ in range(50)]
    finally:
        for sock in socks:
            sock.close()
    return times


def find_toxiproxy(given: str | None) -> str | None:
    """The Toxiproxy server to measure beside faultmesh's: ``given``, else ``$TOXIPROXY_SERVER``,
    else ``toxiproxy-server`` on PATH; None when there is none."""
    path = given or os.environ.get("TOXIPROXY_SERVER") or shutil.which("toxiproxy-server")
    return path if path and os.access(path, os.X_OK) else None


def _spawn_toxiproxy(path: str) -> tuple[subprocess.Popen, int]:
    """Toxiproxy's server on a free port, quiet (it logs every connection otherwise)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([path, "-host", "127.0.0.1", "-port", str(port)],
                            env={**os.environ, "LOG_LEVEL": "warn"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{path} did not answer on port {port}")


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


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 for None: no proxy in the path)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rotated(n: int, turn: int) -> list[int]:
    """0..n-1 starting at ``turn`` mod n."""
    return [(turn + i) % n for i in range(n)]


def measure(round_trips: int = 2000, size: int = 64, bulk_mib: int = 128, conns: int = 200,
            trips: int = 50, many_size: int = 1024, repeats: int = 5,
            uvloop: bool = True, toxiproxy: str | None = None) -> dict[str, float]:
    """The figures of one run (seconds and MiB/s; ratios proxied / direct). With
    ``toxiproxy`` (a server binary) it is measured in the same run, keys ``toxiproxy_*``."""
    echo, echo_port = _spawn(ECHO)
    web, web_port = _spawn(HTTP_SERVER)
    procs = [echo, web]
    try:
        proxy, api_port = _spawn(PROXY if uvloop else PROXY_ASYNCIO, str(ROOT))
        procs.append(proxy)
        apis = {"proxied": api_port}
        if toxiproxy:
            real, apis["toxiproxy"] = _spawn_toxiproxy(toxiproxy)
            procs.append(real)
        names = ["direct", *apis]
        pids = [None, *(p.pid for p in procs[2:])]
        echo_ports = [echo_port, *(_create_proxy(api, echo_port) for api in apis.values())]
        web_ports = [web_port, *(_create_proxy(api, web_port, "web") for api in apis.values())]
        payload = b"p" * size
        rt = _interleaved(echo_ports, round_trips, lambda sock: _round_trip(sock, payload))
        http = _interleaved(web_ports, round_trips // 2, _http_round_trip)
        # the best of a few runs each, in turn, the order rotated each round (whoever runs
        # right after another's burst finds the machine differently warm): the shared
        # machine's noise only adds time
        bulk = [0.0] * len(names)
        many = [float("inf")] * len(names)
        for turn in range(repeats):
            for i in _rotated(len(names), turn):
                bulk[i] = max(bulk[i], _bulk(echo_ports[i], bulk_mib))
        # and the CPU the proxy's process spent on them (user + system, every thread): what
        # the proxy costs, which the wall time shows only through the machine's noise
        many_cpu = [0.0] * len(names)
        for turn in range(repeats):
            for i in _rotated(len(names), turn):
                before = _cpu_seconds(pids[i])
                many[i] = min(many[i], _many(echo_ports[i], conns, trips, many_size))
                many_cpu[i] += (_cpu_seconds(pids[i]) - before) / repeats
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
    out: dict[str, float] = {"round_trips": len(rt[0]), "size": size, "bulk_mib": bulk_mib,
                             "conns": conns, "trips": trips, "many_size": many_size}
    d50, d99, h50 = statistics.median(rt[0]), _p99(rt[0]), statistics.median(http[0])
    out.update(direct_median=d50, direct_p99=d99, direct_http_median=h50,
               direct_mib_s=bulk[0], direct_many_s=many[0])
    for i, name in enumerate(names[1:], start=1):
        p50, p99, hp50 = statistics.median(rt[i]), _p99(rt[i]), statistics.median(http[i])
        pre = "proxied" if name == "proxied" else "toxiproxy"
        out.update({f"{pre}_median": p50, f"{pre}_p99": p99, f"{pre}_http_median": hp50,
                    f"{pre}_mib_s": bulk[i], f"{pre}_many_s": many[i],
                    f"{pre}_many_cpu_s": many_cpu[i]})
        pre = "" if name == "proxied" else "toxiproxy_"
        out.update({f"{pre}added_median": p50 - d50, f"{pre}ratio_median": p50 / d50,
                    f"{pre}added_p99": p99 - d99, f"{pre}ratio_p99": p99 / d99,
                    f"{pre}added_http_median": hp50 - h50,
                    f"{pre}ratio_http_median": hp50 / h50,
                    f"{pre}ratio_mib_s": bulk[i] / bulk[0],
                    f"{pre}added_many_s": many[i] - many[0],
                    f"{pre}ratio_many": many[i] / many[0]})
    return out


def _table(m: dict[str, float], toxiproxy: bool) -> list[str]:
    us = 1e6
    t = TOXIPROXY
    cols = ["direct", "proxied"] + (["toxiproxy"] if toxiproxy else [])
    head = f"{'':>22}" + "".join(f"{c if c != 'proxied' else 'faultmesh':>12}" for c in cols)
    head += "   faultmesh added/ratio" + ("   Toxiproxy added/ratio" if toxiproxy else
                                          "   Toxiproxy 2.x (reference, not this run)")
    lines = [head]

    def row(label: str, key: str, fmt: Any, added: Any, ref: str) -> None:
        cells = "".join(f"{fmt(m[f'{c}_{key}']):>12}" for c in cols)
        extra = added("")
        extra += f"   {added('toxiproxy_')}" if toxiproxy else f"   {ref}"
        lines.append(f"{label:>22}{cells}   {extra}")

    def lat(key: str) -> Any:
        return lambda pre: (f"{m[f'{pre}added_{key}'] * us:+8.0f}us "
                            f"{m[f'{pre}ratio_{key}']:5.2f}x")

    row("round trip median", "median", lambda v: f"{v * us:.0f}us", lat("median"),
        f"+{t['added_median_us']:.0f}us added")
    row("round trip p99", "p99", lambda v: f"{v * us:.0f}us", lat("p99"), "")
    row("HTTP exchange median", "http_median", lambda v: f"{v * us:.0f}us",
        lat("http_median"), "")
    row("bulk echo", "mib_s", lambda v: f"{v:.0f}MiB/s",
        lambda pre: f"{'':>10} {m[f'{pre}ratio_mib_s']:5.2f}x", f"{t['mib_s']:.0f} MiB/s")
    row("many connections", "many_s", lambda v: f"{v:.3f}s",
        lambda pre: f"{m[f'{pre}added_many_s']:+9.3f}s {m[f'{pre}ratio_many']:5.2f}x",
        f"{t['ratio_many']:.1f}x direct")
    cols_cpu = [c for c in cols if c != "direct"]
    lines.append(f"{'proxy CPU, many conns':>22}{'':>12}"
                 + "".join(f"{m[f'{c}_many_cpu_s']:>11.2f}s" for c in cols_cpu)
                 + "   (user + system seconds of the proxy's process, per run)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-trips", type=int, default=2000)
    ap.add_argument("--bulk", type=int, default=128, help="MiB echoed for throughput")
    ap.add_argument("--conns", type=int, default=200, help="connections opened at once")
    ap.add_argument("--trips", type=int, default=50, help="round trips per connection")
    ap.add_argument("--no-uvloop", action="store_true",
                    help="run the proxy on asyncio's own loop even where uvloop is installed")
    ap.add_argument("--toxiproxy", metavar="PATH",
                    help="a toxiproxy-server binary to measure in the same run (default: "
                         "$TOXIPROXY_SERVER, else toxiproxy-server on PATH, else the reference "
                         "figures are printed)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    real = find_toxiproxy(args.toxiproxy)
    if args.toxiproxy and real is None:
        print(f"proxy_speed: {args.toxiproxy}: not an executable file", file=sys.stderr)
        return 2
    m = measure(args.round_trips, bulk_mib=args.bulk, conns=args.conns, trips=args.trips,
                uvloop=not args.no_uvloop, toxiproxy=real)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"{m['round_trips']} round trips of {m['size']} B, {m['bulk_mib']} MiB bulk echo, "
          f"{m['conns']} connections x {m['trips']} round trips of {m['many_size']} B; "
          f"faultmesh's proxy on {'asyncio' if args.no_uvloop else 'uvloop (when installed)'}"
          + (f"; Toxiproxy: {real}" if real else ""))
    print("\n".join(_table(m, real is not None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
