"""``python -m chaos.live.userwrap -- COMMAND...``: runs a user's program under faultmesh's
parent watchdog, which the program itself does not run.

The wrapper leads the program's process group (the live run starts it in a new session) and
runs COMMAND as its child. Should the faultmesh process that started it disappear (SIGKILL,
a crash), the watch SIGTERMs the program and, after the grace, SIGKILLs the whole group
(whatever the program started included):
nothing of the program outlives faultmesh by more than ~5 s. A SIGTERM to the group (the
run's teardown) reaches the program directly; the wrapper waits for it and exits with its
code (128 + the signal when a signal ended it). ``FAULTMESH_PARENT`` stays in the program's
environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from chaos.watchdog import PARENT_ENV, ParentWatch

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run ``argv`` (after an optional ``--``) under the watch; its exit code."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("userwrap: no command", file=sys.stderr)
        return 2
    parent = os.environ.get(PARENT_ENV)
    watch = ParentWatch.from_env(cleanup=lambda: os.killpg(os.getpgrp(), signal.SIGKILL))
    env = dict(os.environ)
    if parent:
        env[PARENT_ENV] = parent  # the program may watch faultmesh too (docs/live.md)
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as exc:
        print(f"cannot run {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127

    def stop(signum: int, frame: object) -> None:
        # the watch's own SIGTERM (a group SIGTERM has reached the program already)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is faultmesh's to act on
    watch.start()
    code = child.wait()
    if watch.orphaned:  # the program's own children too: the watch's cleanup kills the group
        time.sleep(watch.grace + 1.0)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
