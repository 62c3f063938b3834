"""The replica process: ``python -m chaos.emulator --topology T --service S --replica K ...``.

Prints ``ready <port>`` on stdout once listening; SIGTERM or SIGINT stops accepting, flushes
the logs and exits 0. Exit 2 on bad arguments, 3 when the address cannot be bound. Started
by faultmesh (``FAULTMESH_PARENT`` set), it also stops when that process is gone
(:mod:`chaos.watchdog`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_upstreams"]


def parse_upstreams(items: Sequence[str]) -> dict[str, list[str]]:
    """``["llm=127.0.0.1:9001,127.0.0.1:9002"]`` → ``{"llm": ["127.0.0.1:9001", ...]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, addresses = item.partition("=")
        if not sep or not name or not addresses:
            raise ValueError(f"--upstream: expected CALLEE=HOST:PORT[,HOST:PORT...], not {item!r}")
        for address in addresses.split(","):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"--upstream {name}: bad address {address!r}")
            out.setdefault(name, []).append(address)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos.emulator",
                                description="Run one replica of one service of a topology.")
    p.add_argument("--topology", required=True, help="the (resolved) topology file")
    p.add_argument("--service", required=True)
    p.add_argument("--replica", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port")
    p.add_argument("--upstream", action="append", default=[],
                   metavar="CALLEE=HOST:PORT[,HOST:PORT...]")
    p.add_argument("--log", required=True, help="calls.csv rows of this replica's calls")
    p.add_argument("--epoch", type=float, required=True, help="the run's start (Unix time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hold-memory", action="store_true",
                   help="really hold the service's memory: {base, per_request} (default: "
                   "only count it, in stats' memory_held)")
    p.add_argument("--listen-at", type=float, default=None, metavar="UNIX_TIME",
                   help="load everything now, but listen only from this time on (a killed "
                   "replica serves again exactly its service's restart after the kill)")
    return p


async def _run(args: argparse.Namespace) -> int:
    from topologies import load

    from ..watchdog import ParentWatch
    from .replica import ReplicaServer

    topology = load(args.topology)
    server = ReplicaServer(topology, args.service, args.replica, args.host, args.port,
                           parse_upstreams(args.upstream), args.log, args.epoch, args.seed,
                           hold_memory=args.hold_memory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # started by faultmesh: end (via SIGTERM, above) when it is gone, even killed
    ParentWatch.from_env().start()
    if args.listen_at is not None:
        import time

        # stop signals end this wait too (stop.set above): a run may end while it waits
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, args.listen_at - time.time()))
        if stop.is_set():
            return 0
    try:
        port = await server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 3
    print(f"ready {port}", flush=True)
    try:
        await stop.wait()
    finally:
        _quiet_signals(loop)
        await server.stop()
    return 0


def _quiet_signals(loop: asyncio.AbstractEventLoop) -> None:
    """The replica is stopping: later signals change nothing. Python-level handlers write to
    the loop's wakeup pipe, which ``asyncio.run`` closes a moment before it unregisters it; a
    repeated SIGTERM or the SIGCONT a teardown sends, landing in that moment, printed "Exception
    ignored when trying to write to the signal wakeup fd". With no Python handler left, the
    interpreter never writes there (a hung stop still ends by the parent's SIGKILL).

    The stop signals are ignored *before* the loop lets go of them: its
    ``remove_signal_handler`` (and its ``close``) restore the default action, and a SIGTERM in
    that moment (a teardown sends two) killed the replica before it flushed its log. So the
    loop forgets them without touching their disposition."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCONT, signal.SIG_DFL)  # the pause-aware clock's handler
    registered = getattr(loop, "_signal_handlers", None)  # asyncio's Unix loop keeps them here
    if isinstance(registered, dict):
        for sig in (signal.SIGTERM, signal.SIGINT):
            registered.pop(sig, None)
        if not registered:
            signal.set_wakeup_fd(-1)
    else:  # another loop: its own removal (the default action returns for a moment)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bad topology file (TopologyError) and the like
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
