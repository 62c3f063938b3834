"""Finding what a faultmesh run left running, from /proc (independently of faultmesh's own
`faultmesh clean` code, so a test of that code does not check it with itself).

A run's processes are emulators (``-m chaos.emulator``), the load worker
(``-m loadtests.worker``) and child proxies, all started with ``FAULTMESH_PARENT=<pid of the
faultmesh process>`` in their environment; emulators also name the run's result directory
in their arguments. The run's in-process listeners (proxies, relays) are found by port.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["Proc", "run_processes", "listening_ports", "listening", "alive"]


class Proc(NamedTuple):
    """One process: its pid, what faultmesh child it is, its arguments."""

    pid: int
    kind: str
    args: list[str]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    raw = _read(f"/proc/{pid}/stat")
    return raw is not None and raw[raw.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def _kind(args: list[str]) -> str:
    joined = " ".join(args)
    if "chaos.emulator" in joined:
        return "emulator"
    if "loadtests.worker" in joined or "loadtests.distworker" in joined:
        return "load worker"
    if "proxy" in args:
        return "proxy"
    return "other"


def run_processes(*, parent: int | None = None, out: str | None = None) -> list[Proc]:
    """Running processes started by the faultmesh process ``parent`` (whatever their parent
    is now), or whose arguments mention the result directory ``out``."""
    assert parent is not None or out is not None
    marker = f"FAULTMESH_PARENT={parent}".encode() if parent is not None else None
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        raw, env = _read(f"/proc/{name}/cmdline"), _read(f"/proc/{name}/environ")
        if not raw or env is None or not alive(int(name)):
            continue
        args = raw.rstrip(b"\0").decode(errors="replace").split("\0")
        ours = (marker is not None and marker in env.split(b"\0")) or \
            (out is not None and any(out in a for a in args))
        if ours:
            found.append(Proc(int(name), _kind(args), args))
    return found


def _inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listeners() -> list[tuple[int, str]]:
    """(port, socket inode) of every listening TCP socket."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = (_read(table) or b"").decode()
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # 0A: LISTEN
                rows.append((int(fields[1].rsplit(":", 1)[1], 16), fields[9]))
    return rows


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its proxies, relays, servers)."""
    inodes = _inodes(pid)
    return {port for port, inode in _listeners() if inode in inodes}


def listening(ports: Iterable[int]) -> set[int]:
    """Those of ``ports`` some socket still listens on."""
    wanted = set(ports)
    return {port for port, _ in _listeners() if port in wanted}
