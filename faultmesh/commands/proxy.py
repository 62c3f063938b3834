"""``faultmesh proxy [--host H] [--port P]``: the built-in Toxiproxy-compatible server."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh proxy                          # API on 127.0.0.1:8474, like toxiproxy-server
  faultmesh proxy --port 18474
  curl -s localhost:8474/proxies           # then drive it with any Toxiproxy client
  python -c 'import toxiproxy; print(toxiproxy.Toxiproxy().version())'

Runs in the foreground until Ctrl-C, SIGTERM or SIGHUP (exit 0, every proxy and connection
closed). A port already taken exits 3 with one line. --config FILE creates proxies at start
as toxiproxy-server -config does: FILE is a JSON list of {"name", "listen", "upstream",
"enabled"}; a file that cannot be read or a bad entry exits 2, a listen address taken 3.
See docs/proxy.md for what is compatible.
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
    p.add_argument("--config", metavar="FILE", default=None,
                   help="create the proxies listed in this JSON file at start (Toxiproxy's "
                   "-config format: a list of {name, listen, upstream, enabled})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chaos.proxy import ProxyServer
    from chaos.watchdog import ParentWatch
    from topologies.errors import RunError, UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    proxies = _read_config(args.config) if args.config else None
    server = ProxyServer(args.host, args.port, seed=args.seed)

    async def main() -> None:
        try:
            await server.start_async()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise RunError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
        if proxies is not None:
            await _populate(server, proxies, args.config)
        print(f"faultmesh proxy: Toxiproxy API on {server.url} (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        # started as a child by faultmesh (FAULTMESH_PARENT): stop when that process is gone
        ParentWatch.from_env().start()
        # a stop signal ends the wait, not whatever coroutine runs when it lands (raised there,
        # KeyboardInterrupt would surface as a connection handler's unhandled error)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop_async()

    from chaos.proxy.loops import new_event_loop

    try:
        # uvloop when installed, as the live engine's proxy (docs/proxy.md: its speed)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # before the loop's own handlers were in place
        pass
    print("faultmesh proxy: stopped", file=sys.stderr)
    return 0


def _read_config(path: str) -> list[object]:
    """The proxies of a Toxiproxy ``-config`` file; UsageError when unreadable or not a list."""
    import json

    from topologies.errors import UsageError

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise UsageError(f"--config {path}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError as exc:
        raise UsageError(f"--config {path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise UsageError(f"--config {path}: expected a JSON list of proxies")
    return data


async def _populate(server: object, proxies: list[object], path: str) -> None:
    """Create the configured proxies: a refused entry is bad input (exit 2), except an address
    that cannot be bound (exit 3); the server is stopped first either way."""
    from chaos.proxy.errors import ApiError
    from topologies.errors import RunError, UsageError

    try:
        await server.populate(proxies)  # type: ignore[attr-defined]
    except ApiError as err:
        await server.stop_async()  # type: ignore[attr-defined]
        kind = UsageError if err.status == 400 else RunError
        raise kind(f"--config {path}: {err.message}") from None
