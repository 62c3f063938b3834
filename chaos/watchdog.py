"""The parent watchdog of faultmesh's child processes: a child whose faultmesh process is gone
(killed with SIGKILL, crashed) ends itself within seconds instead of living on as an orphan.

The process that starts a child puts its own pid in the child's environment
(:func:`child_env`, variable ``FAULTMESH_PARENT``); the child builds a :class:`ParentWatch`
from it. The watch is a thread polling ``os.getppid()``: when the parent dies the kernel
reparents the child (to PID 1 or a subreaper), so the parent pid changes. The child then
sends itself SIGTERM, which each child already handles as a clean stop (the emulator closes
its server and flushes its logs; the load worker stops Locust), and after ``grace`` seconds
runs its ``cleanup`` (the load worker removes its work directory) and exits hard, should
the clean stop hang. Detection takes ``interval``, so a child is gone within
``interval + grace`` (< 5 s) of its parent.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that spawned the child exits, and a
live run restarts replicas from short-lived helper threads. Why the pid in the environment
and not ``os.getppid()`` at start: a parent that died before the child got this far would
go unnoticed. A child started by hand (no variable) is not watched: whoever started it owns
it. A child stopped with SIGSTOP (a ``pause`` fault) cannot run its watch; ``faultmesh
clean`` resumes and ends it.

The watch is a real OS thread even in a gevent-patched process (the load worker), so it
runs whatever the event loop is doing. Importing this module has no side effects.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping

__all__ = ["PARENT_ENV", "EXIT_ORPHANED", "ParentWatch", "child_env"]

#: The environment variable carrying the pid of the faultmesh process that started a child.
PARENT_ENV = "FAULTMESH_PARENT"
#: Exit code of a child that had to exit hard after its parent was gone.
EXIT_ORPHANED = 75
#: Seconds between two looks at the parent pid.
INTERVAL = 0.25
#: Seconds a child gets to stop cleanly after its parent is gone, before it exits hard.
GRACE = 3.0


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) plus this process as the parent a
    child started with it watches."""
    out = dict(os.environ if env is None else env)
    out[PARENT_ENV] = str(os.getpid())
    return out


class ParentWatch:
    """Watches that the process that started this one is alive; ends this one when not.

    ``parent`` None watches nothing (the process was not started by faultmesh).
    ``cleanup`` runs (after the grace) before a hard exit; it must be safe to run twice
    and concurrently with the process's own stop.
    """

    def __init__(self, parent: int | None, *, cleanup: Callable[[], None] | None = None,
                 interval: float = INTERVAL, grace: float = GRACE) -> None:
        self.parent = parent
        self.cleanup = cleanup
        self.interval = interval
        self.grace = grace
        self.orphaned = False
        self._started = False

    @classmethod
    def from_env(cls, *, cleanup: Callable[[], None] | None = None,
                 grace: float = GRACE) -> ParentWatch:
        """The watch the environment asks for. The variable is removed, so a process this
        one starts does not watch the wrong parent."""
        value = os.environ.pop(PARENT_ENV, None)
        try:
            parent = int(value) if value else None
        except ValueError:
            parent = None
        return cls(parent, cleanup=cleanup, grace=grace)

    def start(self) -> None:
        """Start watching (once). Call it after the process's SIGTERM handler is in place:
        a parent already gone is noticed at the first look."""
        if self.parent is None or self._started:
            return
        self._started = True
        start_thread, _ = _real_threads()
        start_thread(self._watch, ())

    def _watch(self) -> None:
        _, sleep = _real_threads()
        while os.getppid() == self.parent:
            sleep(self.interval)
        self.orphaned = True
        try:
            os.write(2, f"faultmesh child {os.getpid()}: parent {self.parent} is gone; "
                        "stopping\n".encode())
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)  # the process's own clean stop
        sleep(self.grace)
        if self.cleanup is not None:
            try:
                self.cleanup()
            except Exception:  # noqa: BLE001 - exiting anyway; nothing to report to
                pass
        os._exit(EXIT_ORPHANED)


def _real_threads() -> tuple[Callable[..., object], Callable[[float], None]]:
    """``start_new_thread`` and ``sleep`` as the OS provides them, even after gevent's
    monkey-patching (which would make them greenlets, run only when the loop yields)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return (monkey.get_original("_thread", "start_new_thread"),
                monkey.get_original("time", "sleep"))
    return _thread.start_new_thread, time.sleep
