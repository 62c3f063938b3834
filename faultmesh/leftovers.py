"""Leftovers of crashed faultmesh runs, found and removed (``faultmesh clean``).

A run stopped properly (even by SIGTERM, SIGHUP or Ctrl-C) leaves nothing, and one killed
with SIGKILL has children that end themselves (:mod:`chaos.watchdog`). What can still be
left: children of an older faultmesh, children that could not run their watch (a replica
paused by a ``pause`` fault, i.e. SIGSTOPped, when faultmesh died), and load work
directories of a run killed before its load worker started. A leftover is:

* a **process**: an emulator (``-m chaos.emulator``), a load process (``-m loadtests.worker``, or
  ``-m loadtests.distworker`` with ``--load-workers``)
  or a ``faultmesh proxy`` started as a child, of the current user, whose faultmesh parent
  is gone: the parent recorded in its environment (``FAULTMESH_PARENT``) is no longer its
  parent (the kernel reparented it to PID 1 or a subreaper), or, with none recorded (an
  emulator or worker of an older faultmesh), its parent is PID 1 or not a Python process.
  Removed with SIGCONT (a paused one must run to stop), SIGTERM, and SIGKILL after 5 s.
* a **directory**: a load work directory ``faultmesh-load-<pid>-XXXX`` in the temporary
  directory, of the current user, whose owner process ``<pid>`` is gone (an older
  ``faultmesh-load-XXXX`` without a pid: no process mentions it). Gate result directories
  (``faultmesh-gate-*``) are never touched: they hold results.
* a **container** or **network** of the docker runtime, labelled ``faultmesh.run=<run id>``,
  whose run is over: the id is ``faultmesh-<pid>-<hex>`` and process ``<pid>`` is gone or is
  no longer a Python (faultmesh) program; a run's reaper (:mod:`chaos.reaper`) normally
  removes them, this is for a reaper that could not. Also image build containers
  ``faultmesh-image-build-<pid>-<hex>`` whose build process is gone. Where no Docker engine
  answers there are none to find. Removed with ``docker rm -f`` / ``docker network rm``.

Each kind is a finder and a remover in :data:`KINDS`. Importing this module has no side
effects.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Leftover", "KINDS", "clean", "find_processes", "find_directories",
           "find_containers", "find_networks", "STOP_WAIT"]

#: Seconds a leftover process gets to end after SIGTERM before SIGKILL.
STOP_WAIT = 5.0
#: The environment variable a faultmesh child carries its parent's pid in (chaos.watchdog).
_PARENT_ENV = b"FAULTMESH_PARENT="
_WORK_DIR = re.compile(r"^faultmesh-load-(?:(\d+)-)?[A-Za-z0-9_]+$")
_BUILD = re.compile(r"^faultmesh-image-build-(\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class Leftover:
    """One thing a crashed run left: ``kind`` (``process``, ``directory``), its ``key``
    (a pid, a path), what it is and why it counts as left over, for the user."""

    kind: str
    key: int | str
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


# --- processes ---------------------------------------------------------------------------
def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process; None when it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # the command name may hold spaces and ')'
    return fields[0].decode(), int(fields[1])


def _kind(args: list[str], recorded: int | None) -> str | None:
    """What faultmesh child a command line is, None when it is none."""
    for i, arg in enumerate(args[:-1]):
        if arg == "-m" and args[i + 1] == "chaos.emulator":
            return "emulator"
        # a distributed load's master and workers (--load-workers) are load processes too
        if arg == "-m" and args[i + 1] in ("loadtests.worker", "loadtests.distworker"):
            return "load worker"
    # a `faultmesh proxy` of one's own, run by hand, is nobody's child: only those started
    # by faultmesh (the variable set) can be left over
    if recorded is not None and "proxy" in args[1:] and any(
            os.path.basename(a) == "faultmesh" or a == "faultmesh" for a in args[:3]):
        return "proxy"
    return None


def _describe(kind: str, pid: int, args: list[str]) -> str:
    def value(flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args[:-1] else None

    if kind == "emulator":
        log = value("--log")
        where = os.path.dirname(log) if log else ""
        if os.path.basename(where) == "live-logs":  # a live run's: name its result directory
            where = os.path.dirname(where)
        where = f" of {where}" if where else ""
        return f"emulator process {pid} ({value('--service')}/{value('--replica')}{where})"
    if kind == "load worker":
        # its files are in the load's work directory (a distworker's last argument is not)
        files = [a for a in args if os.path.basename(os.path.dirname(a)).startswith(
            "faultmesh-load-")]
        work = os.path.dirname(files[0] if files else args[-1]) if args else ""
        return f"load worker process {pid} ({work})"
    return f"proxy process {pid}"


def _is_python(pid: int) -> bool:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    first = os.path.basename(raw.split(b"\0", 1)[0].decode(errors="replace"))
    return first.startswith("python") or first == "faultmesh"


def find_processes() -> list[Leftover]:
    """Faultmesh children of the current user whose faultmesh parent is gone."""
    found = []
    me, uid = os.getpid(), os.getuid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        raw, env, stat = _read(f"/proc/{pid}/cmdline"), _read(f"/proc/{pid}/environ"), _stat(pid)
        if not raw or env is None or stat is None or stat[0] == "Z":
            continue
        args = raw.rstrip(b"\0").decode(errors="replace").split("\0")
        recorded = next((int(v[len(_PARENT_ENV):]) for v in env.split(b"\0")
                         if v.startswith(_PARENT_ENV) and v[len(_PARENT_ENV):].isdigit()), None)
        kind = _kind(args, recorded)
        if kind is None:
            continue
        ppid = stat[1]
        if recorded is not None:
            if ppid == recorded:
                continue
            why = f"its faultmesh process {recorded} is gone"
        elif ppid != 1 and _is_python(ppid):
            continue
        else:
            why = f"its parent is {'PID 1' if ppid == 1 else f'{ppid}, not faultmesh'}"
        if stat[0] == "T":
            why += "; it was paused (stopped)"
        found.append(Leftover("process", pid, _describe(kind, pid, args), why))
    return found


def _gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def remove_processes(items: Sequence[Leftover]) -> list[tuple[Leftover, str | None]]:
    """SIGCONT and SIGTERM to every one at once, SIGKILL to those alive after
    :data:`STOP_WAIT` s; (leftover, error or None) each."""
    errors: dict[int, str | None] = {}
    for item in items:
        pid = int(item.key)
        try:
            os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM only once resumed
            os.kill(pid, signal.SIGTERM)
            errors[pid] = None
        except ProcessLookupError:
            errors[pid] = None
        except OSError as exc:
            errors[pid] = exc.strerror or str(exc)
    deadline = time.monotonic() + STOP_WAIT
    waiting = [pid for pid, error in errors.items() if error is None]
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if not _gone(pid)]
        time.sleep(0.05)
    for pid in waiting:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError as exc:
            errors[pid] = exc.strerror or str(exc)
    return [(item, errors.get(int(item.key))) for item in items]


# --- temporary directories ---------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return not _gone(pid)


def _mentioned(path: str) -> bool:
    """Whether a running process's command line names ``path``."""
    needle = path.encode()
    for name in os.listdir("/proc"):
        if name.isdigit() and needle in (_read(f"/proc/{name}/cmdline") or b""):
            return True
    return False


def find_directories(tmp: str | None = None) -> list[Leftover]:
    """Load work directories of the current user in ``tmp`` (default: the temporary
    directory, as the runs made them) whose owner process is gone."""
    tmp = tmp or tempfile.gettempdir()
    found = []
    try:
        names = sorted(os.listdir(tmp))
    except OSError:
        return []
    for name in names:
        match = _WORK_DIR.match(name)
        path = os.path.join(tmp, name)
        try:
            if not match or not os.path.isdir(path) or os.lstat(path).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if match.group(1) is not None:
            owner = int(match.group(1))
            if _alive(owner):
                continue
            why = f"its faultmesh process {owner} is gone"
        else:
            if _mentioned(path):
                continue
            why = "no process uses it"
        found.append(Leftover("directory", path, f"directory {path}", why))
    return found


def remove_directories(items: Sequence[Leftover]) -> list[tuple[Leftover, str | None]]:
    out: list[tuple[Leftover, str | None]] = []
    for item in items:
        try:
            shutil.rmtree(str(item.key))
            out.append((item, None))
        except FileNotFoundError:
            out.append((item, None))
        except OSError as exc:
            out.append((item, exc.strerror or str(exc)))
    return out


# --- containers and networks (docker runtime, image builds) --------------------------------
def _run_over(run_id: str) -> str | None:
    """Why the run ``run_id`` is over (its process is gone or is no longer a Python or
    faultmesh program: the pid was reused), None while it runs or when the id is not one of
    faultmesh's (``faultmesh-<pid>-<hex>``: whose it is cannot be told, so it is left)."""
    from chaos.dockercli import run_pid

    pid = run_pid(run_id)
    return None if pid is None else _owner_over(pid)


def _owner_over(pid: int) -> str | None:
    """Why the faultmesh process ``pid`` that made a container or network is over; None
    while it runs."""
    if not _alive(pid):
        return f"its faultmesh process {pid} is gone"
    return None if _is_python(pid) else f"its process {pid} is no longer faultmesh"


def _docker_lines(*args: str) -> list[list[str]]:
    """Tab-separated rows of a docker listing; none when no Docker engine answers (nothing
    of the docker runtime can be left then, or none that can be removed)."""
    from chaos.dockercli import docker
    from topologies.errors import RunError

    try:
        done = docker(*args, check=False, timeout=60)
    except RunError:  # no docker command, an engine that hangs: nothing to list
        return []
    if done.returncode != 0:
        return []
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def find_containers() -> list[Leftover]:
    """Containers labelled ``faultmesh.run`` whose run is over, and image build containers
    ``faultmesh-image-build-<pid>-<hex>`` whose build process is gone."""
    from chaos.dockercli import RUN_LABEL

    found = []
    for cid, name, run_id in _docker_lines(
            "ps", "-a", "--filter", f"label={RUN_LABEL}", "--format",
            f'{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label "{RUN_LABEL}"}}}}'):
        why = _run_over(run_id)
        if why:
            found.append(Leftover("container", cid, f"container {name} of run {run_id}", why))
    for cid, name in _docker_lines("ps", "-a", "--filter", "name=^faultmesh-image-build-",
                                   "--format", "{{.ID}}\t{{.Names}}"):
        match = _BUILD.match(name)
        why = _owner_over(int(match.group(1))) if match else None
        if why:
            found.append(Leftover("container", cid, f"image build container {name}", why))
    return found


def find_networks() -> list[Leftover]:
    """Networks labelled ``faultmesh.run`` whose run is over."""
    from chaos.dockercli import RUN_LABEL

    found = []
    for nid, name, run_id in _docker_lines(
            "network", "ls", "--filter", f"label={RUN_LABEL}", "--format",
            f'{{{{.ID}}}}\t{{{{.Name}}}}\t{{{{.Label "{RUN_LABEL}"}}}}'):
        why = _run_over(run_id)
        if why:
            found.append(Leftover("network", nid, f"network {name} of run {run_id}", why))
    return found


def _remove_by(*command: str) -> Callable[[Sequence[Leftover]], list[tuple[Leftover, str | None]]]:
    def remove(items: Sequence[Leftover]) -> list[tuple[Leftover, str | None]]:
        from chaos.dockercli import docker

        out: list[tuple[Leftover, str | None]] = []
        for item in items:  # one at a time: one that cannot go does not keep the others
            done = docker(*command, str(item.key), check=False, timeout=120)
            error = None
            if done.returncode != 0 and "No such" not in done.stderr:  # gone already: fine
                error = (done.stderr.strip().splitlines() or ["docker failed"])[-1]
            out.append((item, error))
        return out
    return remove


#: Each kind of leftover: its finder and its remover, in the order they run (processes
#: first: a load worker ended leaves its directory without a user; containers before
#: networks: a network with containers attached cannot be removed).
KINDS: dict[str, tuple[Callable[[], list[Leftover]],
                       Callable[[Sequence[Leftover]], list[tuple[Leftover, str | None]]]]] = {
    "process": (find_processes, remove_processes),
    "directory": (find_directories, remove_directories),
    "container": (find_containers, _remove_by("rm", "-f")),
    "network": (find_networks, _remove_by("network", "rm")),
}


def clean(*, dry_run: bool = False,
          on_item: Callable[[Leftover, str | None], None] | None = None
          ) -> list[tuple[Leftover, str | None]]:
    """Find and (unless ``dry_run``) remove the leftovers, kind by kind in the order of
    :data:`KINDS` (each kind found after the one before was removed); (leftover, error or
    None) for each, also handed to ``on_item`` as each kind finishes."""
    done = []
    for find, remove in KINDS.values():
        found = find()
        outcome = [(item, None) for item in found] if dry_run else remove(found)
        for item, error in outcome:
            done.append((item, error))
            if on_item is not None:
                on_item(item, error)
    return done
