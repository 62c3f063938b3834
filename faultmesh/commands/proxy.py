"""``faultmesh proxy [--host H] [--port P]``: the built-in Toxiproxy-compatible server."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh proxy                          # API on 127.0.0.1:8474, like toxiproxy-server
  faultmesh proxy --port 18474
  curl -s localhost:8474/proxies           # then drive it with any Toxiproxy client
  python -c 'import toxiproxy; print(toxiproxy.Toxiproxy().version())'

Runs in the foreground until Ctrl-C, SIGTERM or SIGHUP (exit 0, every proxy and connection
closed). A port already taken exits 3 with one line. See docs/proxy.md for what is compatible.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="run the built-in Toxiproxy-compatible server",
                       description="Serve the Toxiproxy 2.x HTTP API and its TCP proxies "
                       "(latency, bandwidth, timeout, reset_peer, ... toxics).",
                       epilog=EXAMPLES)
    p.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of toxicity draws, jitter and slicer sizes (default 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chaos.proxy import ProxyServer
    from chaos.watchdog import ParentWatch
    from topologies.errors import RunError, UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    server = ProxyServer(args.host, args.port, seed=args.seed)

    async def main() -> None:
        try:
            await server.start_async()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise RunError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
        print(f"faultmesh proxy: Toxiproxy API on {server.url} (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        # started as a child by faultmesh (FAULTMESH_PARENT): stop when that process is gone
        ParentWatch.from_env().start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("faultmesh proxy: stopped", file=sys.stderr)
    return 0
