"""What the proxy's event loop and listeners are made of: the fastest loop at hand, full backlogs.

* :func:`new_event_loop` — a uvloop loop (libuv: several times less overhead per socket event
  than asyncio's pure-Python selector loop) when uvloop is importable, else asyncio's own. The
  proxy's code is plain asyncio either way.
* :func:`now`, :func:`sleep_until`, :func:`sleep_for` — the clock of the toxics' delays.
  uvloop's ``loop.time()`` is libuv's, in whole milliseconds and read once per loop turn, and
  its timers can fire up to a millisecond before the time asked; a latency toxic must never
  deliver early, so its stamps come from ``time.monotonic()`` and its waits are checked
  against it (a timer that fired early is followed by another for the rest).
* :func:`listen_backlog` — the system's maximum listen queue. asyncio listens with a backlog of
  100: a burst of more simultaneous connects than that overflows the queue, the kernel drops
  the extra SYNs and those clients retry only after a second. Toxiproxy (Go) listens with the
  system maximum; so do faultmesh's proxies and API.
"""

from __future__ import annotations

import asyncio
import socket
import time

__all__ = ["new_event_loop", "listen_backlog", "loop_name", "now", "sleep_until", "sleep_for"]

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


def now() -> float:
    """Seconds on the monotonic clock: when a chunk arrived, when a delay ends."""
    return time.monotonic()


async def sleep_until(when: float) -> None:
    """Return no earlier than ``when`` (:func:`now`'s clock), whatever the loop's timers."""
    while (delay := when - time.monotonic()) > 0:
        await asyncio.sleep(delay)


async def sleep_for(delay: float) -> None:
    """Sleep at least ``delay`` seconds."""
    await sleep_until(time.monotonic() + delay)
