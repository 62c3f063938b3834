"""What the proxy's event loop and listeners are made of: the fastest loop at hand, full backlogs.

* :func:`new_event_loop` — a uvloop loop (libuv: several times less overhead per socket event
  than asyncio's pure-Python selector loop) when uvloop is importable, else asyncio's own. The
  proxy's code is plain asyncio either way.
* :func:`listen_backlog` — the system's maximum listen queue. asyncio listens with a backlog of
  100: a burst of more simultaneous connects than that overflows the queue, the kernel drops
  the extra SYNs and those clients retry only after a second. Toxiproxy (Go) listens with the
  system maximum; so do faultmesh's proxies and API.
"""

from __future__ import annotations

import asyncio
import socket

__all__ = ["new_event_loop", "listen_backlog", "loop_name"]

_SOMAXCONN = "/proc/sys/net/core/somaxconn"


def listen_backlog() -> int:
    """The kernel's maximum listen backlog (``net.core.somaxconn``), else ``socket.SOMAXCONN``."""
    try:
        with open(_SOMAXCONN, encoding="ascii") as fh:
            value = int(fh.read().strip())
    except (OSError, ValueError):
        return socket.SOMAXCONN
    return value if value > 0 else socket.SOMAXCONN


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, asyncio's default otherwise."""
    try:
        import uvloop  # imported here: no side effect at import time, and optional
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind of loop runs the proxy (for benchmarks, logs)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
