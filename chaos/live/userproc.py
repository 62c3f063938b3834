"""A user's own program as a replica of the process runtime (a service with ``command:``).

faultmesh runs the command, one process per replica, in the topology file's directory, with
the service's ``env`` and faultmesh's variables (:func:`topologies.userservice.dependency_env`)
over faultmesh's own environment. Each replica listens on its own free 127.0.0.1 port, given
as ``PORT`` (the service's ``port:`` is the port inside a container, for the docker runtime).
It is ready once an HTTP GET on its ``health`` path answers 2xx (a TCP connect is not enough:
a program may listen before it can answer). Its stdout and stderr go to a log file.

A user's program does not run faultmesh's parent watchdog, so it runs under a small wrapper
that does (:mod:`chaos.live.userwrap`: the group is killed if faultmesh disappears), in a
process group of its own, and the whole group is signalled: stopped at teardown (SIGCONT,
SIGTERM, then SIGKILL), killed and paused by the ``kill`` and ``pause`` faults.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from topologies.errors import RunError

from ..emulator.launch import ReplicaProcess
from ..watchdog import child_env

__all__ = ["UserProcess", "start_user_process", "free_port", "healthy", "READY_TIMEOUT"]

#: Seconds a user's program gets to answer its health check.
READY_TIMEOUT = 30.0
#: Lines of its output quoted when a program does not come up.
TAIL_LINES = 10


@dataclass
class UserProcess(ReplicaProcess):
    """A running user program (the leader of its own process group) and its port: a
    replica process whose signals reach the whole group."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the program and every process it started (its group)."""
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 5.0) -> int:
        """SIGCONT and SIGTERM to the group, wait up to ``timeout`` s, then SIGKILL it."""
        self.signal(signal.SIGCONT)  # a paused program cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)  # its children too, whether or not it ended
        self.process.wait(timeout)
        return self.process.returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def healthy(port: int, path: str) -> bool:
    """Whether an HTTP GET of ``path`` on 127.0.0.1:``port`` answers 2xx now (a listening
    socket alone is not enough: a program, or a container's published port, accepts first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path)
        return 200 <= conn.getresponse().status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tail(path: str, n: int = TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()[-n:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines if line.strip())


def start_user_process(service: str, replica: int, command: Sequence[str],
                       env: Mapping[str, str], log: str, *, health: str = "/healthz",
                       port: int = 0, cwd: str | None = None,
                       ready_timeout: float = READY_TIMEOUT,
                       start_at: float | None = None) -> UserProcess:
    """Run ``command`` as replica ``replica`` of ``service`` on ``port`` (a free one when 0)
    and wait until ``health`` answers 2xx; RunError, with the last lines of its output, if
    it exits or does not answer within ``ready_timeout`` s. ``start_at`` (Unix time): wait
    until then before starting it (a killed replica's restart is due)."""
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    port = port or free_port()
    full_env = child_env({**os.environ, **env, "PORT": str(port)})
    name = f"{service}/{replica}"
    with open(log, "ab") as out:
        try:
            # under the parent watchdog (chaos.live.userwrap), which the program does not run
            p = subprocess.Popen([sys.executable, "-m", "chaos.live.userwrap", "--",
                                  *command], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=full_env, cwd=cwd or None,
                                 start_new_session=True)
        except OSError as exc:
            raise RunError(f"service {name}: cannot run {command[0]!r}: "
                           f"{exc.strerror or exc}") from None
    proc = UserProcess(service, replica, port, p, log)
    give_up = time.monotonic() + ready_timeout
    try:
        while True:
            if p.poll() is not None:
                why = f"exited with {p.returncode}"
                break
            if healthy(port, health):
                return proc
            if time.monotonic() > give_up:
                why = f"did not answer GET {health} with 2xx within {ready_timeout:g} s"
                break
            time.sleep(0.05)
    except BaseException:  # interrupted while it starts: nobody else knows it
        proc.stop(1.0)
        raise
    proc.stop(1.0)
    tail = _tail(log)
    raise RunError(f"service {name} ({' '.join(command)}) {why}"
                   + (f"; its last output: {tail}" if tail else f"; no output (see {log})"))
