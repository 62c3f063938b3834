"""The reaper: what removes a run's containers and networks when faultmesh itself cannot.

Containers outlive the process that started them, even ``docker run --rm`` ones, and a
SIGKILLed faultmesh runs no ``finally``. So a run that will create containers first starts a
:class:`Reaper`: a small separate process (``python -m chaos.reaper RUN_ID``) that does
nothing but block reading a pipe whose only writer is the run. When the run ends in any way
(normal close, an exception, Ctrl-C, SIGKILL, a crash of the interpreter) the kernel closes
the writer's end, the reaper reads end-of-file and removes every container, then every
network, labelled ``faultmesh.run=RUN_ID`` (:func:`reap`), and exits.

The reaper runs in a session of its own: a Ctrl-C at the terminal signals the whole
foreground process group, and the reaper must not die before the run it cleans up after.
It holds no end of the pipe that the run writes, and the run's own children do not inherit
it (subprocesses close inherited descriptors), so only the run's end keeps it waiting; a
child made by a bare ``os.fork`` would keep it waiting until that child ends too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from chaos.dockercli import RUN_LABEL, docker
from topologies.errors import RunError

__all__ = ["Reaper", "reap", "main", "CLOSE_WAIT", "IN_FLIGHT_WAIT"]

#: Seconds :meth:`Reaper.close` waits for the reaper to finish removing.
CLOSE_WAIT = 120.0
#: Seconds between the passes of a reaper whose run was killed: it looks again while a
#: command of the run is still going (a ``docker run`` the run had started goes on as an
#: orphan and can create its container after the first pass), and once after a pass that
#: removed something.
_AGAIN_AFTER = 0.5
#: At most this many seconds of passes after a kill, however long such commands go on.
IN_FLIGHT_WAIT = 60.0
#: What :meth:`Reaper.close` writes before closing the pipe: an orderly end.
_CLOSING = b"close\n"


def _labelled(what: tuple[str, ...], run_id: str) -> list[str]:
    done = docker(*what, "-q", "--filter", f"label={RUN_LABEL}={run_id}", check=False,
                  timeout=60)
    return done.stdout.split() if done.returncode == 0 else []


def reap(run_id: str) -> tuple[int, int, list[str]]:
    """Remove every container (``docker rm -f``), then every network (``docker network rm``)
    labelled ``faultmesh.run=run_id``; (containers removed, networks removed, errors)."""
    errors = []
    containers = _labelled(("ps", "-a"), run_id)
    if containers:
        done = docker("rm", "-f", *containers, check=False, timeout=120)
        if done.returncode != 0:
            errors.append(done.stderr.strip())
    # after the containers: a network with containers attached cannot be removed
    networks = _labelled(("network", "ls"), run_id)
    if networks:
        done = docker("network", "rm", *networks, check=False, timeout=120)
        if done.returncode != 0:
            errors.append(done.stderr.strip())
    return len(containers), len(networks), errors


def _in_flight(run_id: str) -> bool:
    """Whether a process other than this one has ``run_id`` on its command line: a docker
    command of the run (``docker run --label faultmesh.run=ID``, ``docker kill ID-svc-0``)
    that outlived it."""
    needle, me = run_id.encode(), os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if needle in fh.read():
                    return True
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return False


class Reaper:
    """The reaper process of run ``run_id``, started at construction; :meth:`close` (or the
    end of a ``with`` block) makes it remove the run's containers and networks now and waits
    for it. If this process dies first, the reaper does the same by itself."""

    def __init__(self, run_id: str, *, python: str | None = None) -> None:
        self.run_id = run_id
        self.process = subprocess.Popen(
            [python or sys.executable, "-m", "chaos.reaper", run_id],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            # the reaper's complaints (a container docker would not remove) reach the user
            stderr=None, start_new_session=True, close_fds=True)

    def close(self, timeout: float = CLOSE_WAIT) -> int | None:
        """Tell the reaper to reap now (end of file on its pipe) and wait up to ``timeout`` s
        for it; its exit status, None when it is still at work."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            try:
                # said before the end of file: no docker command of ours is in flight, so
                # one pass is enough (the reaper of a killed run looks on while one is)
                stdin.write(_CLOSING)
                stdin.flush()
            except OSError:  # the reaper is gone already
                pass
            try:
                stdin.close()
            except OSError:
                pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> Reaper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m chaos.reaper RUN_ID``: wait for end of file on standard input, then
    reap. Exit 0 when everything went, 3 when docker refused to remove something or could
    not be asked (one line on standard error each), 2 on a wrong command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m chaos.reaper RUN_ID", file=sys.stderr)
        return 2
    run_id = args[0]
    # a signal meant for the run (Ctrl-C, a terminal hang-up) must not end the reaper first
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    said = b""
    try:
        while chunk := sys.stdin.buffer.read(4096):
            said += chunk  # only the end of the pipe starts the work
    except OSError:
        pass
    killed = said != _CLOSING
    deadline = time.monotonic() + IN_FLIGHT_WAIT
    passes = 0
    while True:
        # looked at before the pass: if no command of the run was still going then, the
        # pass sees every container the run will ever have
        flying = killed and _in_flight(run_id)
        try:
            containers, networks, errors = reap(run_id)
        except RunError as exc:  # no docker command, an engine that does not answer
            containers, networks, errors = 0, 0, [str(exc)]
        passes += 1
        if not killed or errors or time.monotonic() > deadline:
            break
        # one more look after removing something: a create the daemon was still finishing
        if not flying and (passes >= 2 or not (containers or networks)):
            break
        time.sleep(_AGAIN_AFTER)
    for error in errors:
        print(f"faultmesh reaper ({run_id}): {error}", file=sys.stderr)
    return 3 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
