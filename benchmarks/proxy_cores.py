"""Benchmark: would more proxy processes on more cores pass many connections faster here?

faultmesh's proxy runs on one event loop in one process. Toxiproxy (Go) spreads its
connections over every core. Before giving the proxy several processes (each listening on the
same port, with every proxy, toxic and toxicity draw replicated between them), this measures
what that could buy at best on this machine: a bare forwarder (a uvloop protocol that writes
every chunk to the other socket and does nothing else: the floor of any Python proxy) run as
1 process and as N processes accepting from one shared listening socket, against direct
connections to the same echo server, in the same run:

* 200 connections opened at once, each making 50 round trips of 1 KiB (an asyncio client,
  one task a connection: proxy_speed.py's "many connections"); the best of ``--repeats``
  runs each, in rotating order; wall time and ratio to direct.

On the 2-core machine this was written on, a second process made the run slower, not faster
(docs/proxy.md): the client, the echo server and the proxy already keep both cores busy, and
a second proxy process only adds wakeups and cache traffic.

    .venv/bin/python benchmarks/proxy_cores.py
    .venv/bin/python benchmarks/proxy_cores.py --processes 4 --repeats 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its neighbours
from proxy_overhead import ECHO, _spawn  # noqa: E402
from proxy_speed import _many, _rotated  # noqa: E402

__all__ = ["main", "measure"]

# a bare forwarder: N processes (argv[2]) accepting from one listening socket, each
# connection piped to the upstream port (argv[1]) with nothing done to the bytes
FORWARDER = r'''
import asyncio, os, socket, sys
import uvloop
upstream, processes = int(sys.argv[1]), int(sys.argv[2])
listener = socket.create_server(("127.0.0.1", 0), backlog=65535)
print(listener.getsockname()[1], flush=True)
for _ in range(processes - 1):
    if os.fork() == 0:
        break
class Side(asyncio.Protocol):
    def __init__(self):
        self.peer, self.transport, self.early = None, None, []
    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def data_received(self, data):
        if self.peer is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)
    def connection_lost(self, exc):
        if self.peer is not None:
            self.peer.transport.close()
async def main():
    loop = asyncio.get_running_loop()
    def accepted():
        client = Side()
        async def connect():
            _, up = await loop.create_connection(Side, "127.0.0.1", upstream)
            up.peer, client.peer = client, up
            for data in client.early:
                up.transport.write(data)
        loop.create_task(connect())
        return client
    await loop.create_server(accepted, sock=listener)
    await asyncio.Event().wait()
uvloop.run(main())
'''


def measure(processes: int = 2, conns: int = 200, trips: int = 50, size: int = 1024,
            repeats: int = 5) -> dict[str, float]:
    """Seconds (best of ``repeats``) direct, through 1 forwarder process and through
    ``processes``, with the ratios to direct."""
    echo, echo_port = _spawn(ECHO)
    forwarders: list[subprocess.Popen] = []
    try:
        ports = {"direct": echo_port}
        for n in sorted({1, processes}):
            proc = subprocess.Popen([sys.executable, "-c", FORWARDER, str(echo_port), str(n)],
                                    stdout=subprocess.PIPE, text=True, start_new_session=True)
            forwarders.append(proc)
            ports[f"{n}_process"] = int(proc.stdout.readline()) if proc.stdout else 0
        names = list(ports)
        best = dict.fromkeys(names, float("inf"))
        for turn in range(repeats):
            for i in _rotated(len(names), turn):
                best[names[i]] = min(best[names[i]], _many(ports[names[i]], conns, trips, size))
    finally:
        for proc in forwarders:  # the forked processes share the session
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        echo.kill()
        echo.wait()
    out: dict[str, float] = {"conns": conns, "trips": trips, "size": size,
                             "processes": processes}
    for name, seconds in best.items():
        out[f"{name}_s"] = seconds
        out[f"{name}_ratio"] = seconds / best["direct"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                    help="forwarder processes to compare with one (default: the cores)")
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--trips", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.processes < 1:
        ap.error("--processes must be at least 1")
    m = measure(args.processes, args.conns, args.trips, repeats=args.repeats)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"{args.conns} connections x {args.trips} round trips of 1024 B, best of "
          f"{args.repeats}; a bare uvloop forwarder, {os.cpu_count()} cores")
    for name in ("direct", "1_process", f"{args.processes}_process"):
        if f"{name}_s" in m:
            label = name.replace("_process", " process(es)")
            print(f"{label:>16} {m[f'{name}_s']:8.3f}s {m[f'{name}_ratio']:6.2f}x direct")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
