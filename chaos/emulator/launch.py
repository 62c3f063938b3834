"""Starting and stopping replica processes: what a live run (and the tests) do with them.

:func:`start_replica` runs ``python -m chaos.emulator`` with the given arguments and waits for
its ``ready <port>`` line; :meth:`ReplicaProcess.stop` sends SIGTERM (the replica flushes its
logs and exits 0), killing it only if it does not end in time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from topologies.errors import RunError

from ..watchdog import child_env

__all__ = ["ReplicaProcess", "start_replica", "emulator_args"]


@dataclass
class ReplicaProcess:
    """A running replica process and the port it listens on."""

    service: str
    replica: int
    port: int
    process: subprocess.Popen[str]
    log: str

    @property
    def address(self) -> str:
        """Where the proxies in front of it forward to."""
        return f"127.0.0.1:{self.port}"

    # what a live run does to a replica, whatever runs it (a container handle has the same)
    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            self.process.send_signal(sig)

    def kill(self) -> None:
        """Crash it (SIGKILL) and return once it is dead."""
        self.signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it holds its connections and requests."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def terminate(self) -> None:
        """Ask it to stop (it flushes its logs), without waiting: :meth:`stop` waits."""
        if self.process.poll() is None:
            self.resume()  # a paused replica cannot act on SIGTERM
            self.signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout`` s (then SIGKILL); returns the exit code."""
        p = self.process
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        if p.stdout is not None:
            p.stdout.close()
        return p.returncode


def emulator_args(topology: str, service: str, log: str, *, replica: int = 0,
                  upstreams: Mapping[str, Sequence[str]] | None = None,
                  epoch: float | None = None, seed: int = 0, host: str = "127.0.0.1",
                  port: int = 0, listen_at: float | None = None,
                  hold_memory: bool = False) -> list[str]:
    """The arguments of ``python -m chaos.emulator`` for one replica (a process here, or a
    container of the emulator image)."""
    args = ["--topology", os.fspath(topology), "--service", service, "--replica", str(replica),
            "--host", host, "--port", str(port), "--log", log, "--seed", str(seed),
            "--epoch", repr(time.time() if epoch is None else epoch)]
    for callee, addresses in (upstreams or {}).items():
        args += ["--upstream", f"{callee}={','.join(addresses)}"]
    if listen_at is not None:
        args += ["--listen-at", repr(listen_at)]
    if hold_memory:
        args.append("--hold-memory")
    return args


def start_replica(topology: str, service: str, log: str, *, replica: int = 0,
                  upstreams: Mapping[str, Sequence[str]] | None = None,
                  epoch: float | None = None, seed: int = 0, host: str = "127.0.0.1",
                  port: int = 0, ready_timeout: float = 10.0,
                  listen_at: float | None = None, hold_memory: bool = False) -> ReplicaProcess:
    """Start one replica process and wait until it listens; RunError if it does not.

    ``listen_at`` (Unix time): the process loads at once but listens only from then on, so
    a replica started ahead of its due time serves exactly when due."""
    cmd = [sys.executable, "-m", "chaos.emulator",
           *emulator_args(topology, service, log, replica=replica, upstreams=upstreams,
                          epoch=epoch, seed=seed, host=host, port=port, listen_at=listen_at,
                          hold_memory=hold_memory)]
    if listen_at is not None:
        ready_timeout += max(0.0, listen_at - time.time())
    # the replica ends itself should this process die without stopping it (SIGKILL)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env())
    assert p.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        if sel.select(ready_timeout):
            line = p.stdout.readline().split()
            if len(line) == 2 and line[0] == "ready":
                return ReplicaProcess(service, replica, int(line[1]), p, log)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM) while it starts: nobody else knows it
        p.kill()
        p.wait()
        p.stdout.close()
        raise
    finally:
        sel.close()
    p.kill()
    p.wait()
    p.stdout.close()
    raise RunError(f"replica {service}/{replica} did not start (exit {p.returncode})")
