"""Work time: the real clock minus the time the process was frozen (the ``pause`` fault).

A paused replica (SIGSTOP, later SIGCONT; or ``docker pause``) does no work while frozen, so
work in flight must end the frozen time later, as in the simulator. asyncio's timers run on
the monotonic clock, which keeps running while the process is stopped: a plain
``asyncio.sleep`` in progress ends at once after the resume. :func:`work_sleep` sleeps until
the given seconds of *not-frozen* time have passed instead.

How frozen time is known. A light ticker task runs every :data:`TICK` seconds and remembers
the last time the loop was seen running. When the loop is next seen running after a gap, the
gap minus one tick counts as frozen if either

* a SIGCONT arrived since the loop was last seen running (the live engine's ``pause``), or
* the gap is longer than :data:`FREEZE_GAP` (a freeze without SIGCONT, such as the cgroup
  freezer behind ``docker pause``; a stall that long is far above this process's normal loop
  lag, and a process that did not run for that long did no work either).

Subtracting one tick never counts running time as frozen; the frozen span may be
underestimated by at most one tick. The check is made by whoever looks first (the ticker or a
waking :func:`work_sleep`), so the order in which callbacks run after the resume does not
matter. The SIGCONT handler is a plain ``signal.signal`` handler (the interpreter runs it as
soon as the process resumes, before the loop handles expired timers); it can only be
installed from the main thread, elsewhere the gap rule alone applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import weakref

__all__ = ["TICK", "FREEZE_GAP", "Clock", "clock", "work_sleep", "work_now", "frozen"]

TICK = 0.02
"""Seconds between the ticker's looks at the clock."""

FREEZE_GAP = 0.5
"""A loop gap longer than this counts as frozen even without a SIGCONT."""

_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clock] = \
    weakref.WeakKeyDictionary()
_handler_installed = False


class Clock:
    """The frozen-time account of one event loop (see the module docstring)."""

    def __init__(self) -> None:
        self.frozen = 0.0              # seconds counted as frozen so far
        self.last = time.monotonic()   # the last time the loop was seen running
        self.sigcont = False           # a SIGCONT arrived since ``last``
        self._task: asyncio.Task[None] | None = None

    def observe(self) -> float:
        """Look at the clock now (the loop is running); returns the frozen total."""
        now = time.monotonic()
        gap = now - self.last
        if gap > TICK and (self.sigcont or gap > FREEZE_GAP):
            self.frozen += gap - TICK
        self.sigcont = False
        self.last = now
        return self.frozen

    def work_now(self) -> float:
        """Monotonic seconds minus frozen seconds."""
        frozen = self.observe()
        return self.last - frozen

    def start(self) -> None:
        if self._task is None or self._task.done():
            self.last = time.monotonic()
            self.sigcont = False
            self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.observe()
            await asyncio.sleep(TICK)


def _on_sigcont(signum: int, frame: object) -> None:
    for c in list(_clocks.values()):
        c.sigcont = True


def _install_handler() -> None:
    global _handler_installed
    if _handler_installed or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGCONT, _on_sigcont)
        _handler_installed = True


def clock() -> Clock:
    """The running loop's clock, started (ticker running, SIGCONT watched) on first use."""
    loop = asyncio.get_running_loop()
    c = _clocks.get(loop)
    if c is None:
        c = _clocks[loop] = Clock()
        _install_handler()
    c.start()
    return c


def work_now() -> float:
    """The running loop's work time (seconds, arbitrary origin): frozen time left out."""
    return clock().work_now()


def frozen() -> float:
    """Seconds the running loop's process has been frozen so far (as detected)."""
    return clock().observe()


async def work_sleep(seconds: float) -> None:
    """Sleep until ``seconds`` of not-frozen time have passed (a pause extends it)."""
    c = clock()
    end = c.work_now() + seconds
    while True:
        left = end - c.work_now()
        if left <= 0:
            return
        await asyncio.sleep(left)
