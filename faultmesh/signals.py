"""How a faultmesh command ends on a stop signal: SIGTERM and SIGHUP exactly as Ctrl-C.

CI cancellations and ``docker stop`` send SIGTERM, a closed terminal sends SIGHUP; a
command must then do what it does on Ctrl-C: write the results collected so far (marked
``"partial": true``), tear down everything it started, and exit ``128 + signal`` (130
SIGINT, 143 SIGTERM, 129 SIGHUP). The CLI runs every command inside :func:`stop_signals`:
the first of these signals raises :class:`KeyboardInterrupt` in the main thread (so the
commands' existing Ctrl-C paths handle all three), and the signal is remembered for
:func:`interrupted_exit_code`. Further signals are ignored with a note on stderr: a second
Ctrl-C or a ``kill`` repeated by an impatient CI runner must not abort the teardown half
way and leave processes behind (the teardown is bounded in time; SIGKILL still ends
faultmesh at once, and its children then end themselves, see :mod:`chaos.watchdog`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "stop_signals", "received_signal", "interrupted_exit_code"]

#: The signals that stop a command as Ctrl-C does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: int | None = None


def received_signal() -> int | None:
    """The stop signal that interrupted the current command, None if none did."""
    return _received


def interrupted_exit_code() -> int:
    """The exit code of an interrupted command: 128 + the signal (130 when a
    KeyboardInterrupt came without one, e.g. raised by a test or a notebook)."""
    return 128 + int(_received if _received is not None else signal.SIGINT)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is None:
        _received = signum
        raise KeyboardInterrupt
    # os.write, not print: the main thread may be inside a print to stderr right now, and a
    # buffered stream entered again from a signal handler raises RuntimeError
    name = signal.Signals(signum).name
    try:
        os.write(2, f"faultmesh: {name} ignored: still stopping and cleaning up\n".encode())
    except OSError:  # stderr gone (a closed terminal): nothing to tell
        pass


@contextmanager
def stop_signals() -> Iterator[None]:
    """Within this block SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once; the
    handlers before it are restored after. Outside the main thread (where Python delivers
    signals) it installs nothing."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.getsignal(sig)
        # a signal ignored by whoever started us (nohup: SIGHUP) stays ignored
        if previous[sig] is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
