"""The faults a live run under ``--runtime docker`` applies to replica containers themselves
(:mod:`chaos.containerfaults`), with the simulator's meaning of each fault type:

* ``partition`` -- every packet in and out of the chosen replicas' containers dropped
  (iptables in their network namespace): attempts hang until the caller's timeout;
* ``loss`` -- incoming packets dropped with ``probability`` on every existing replica of the
  target service (an edge target too: the proxies all sit in one container, so a container's
  packets cannot be told apart by caller);
* ``cpu`` -- the CPU quota cut to ``fraction`` of one CPU (an emulator replica is one thread)
  or of the host's CPUs (a user's image); an emulated replica's own work, which is slept and
  not computed, is also stretched by ``1/fraction`` (its admin API's ``cpu`` fault), an LLM's
  iterations excepted, as in the simulator;
* ``memory`` -- a memory limit with no swap: ``limit`` on a user's image; on an emulated
  replica, which holds the topology's ``memory.base + per_request x requests in progress``
  for real, ``limit`` plus the interpreter's own memory (measured when the fault starts), so
  the kernel's OOM killer acts where the simulator's model says. Each OOM kill is a crash: the
  replica is down, one faults.csv row says when (``{"limit", "oom_kill": replica}``), and it
  serves again after the service's ``restart``.

``cpu`` and ``memory`` also reach a replica's program restarted (or started) while they
are in force (its container is new; :func:`reapply`), so an OOM-killed replica restarted
under the limit can be killed again, as in the simulator; ``partition`` and ``loss`` rules
live in the replica's sandbox, whose network namespace outlasts a restart.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from chaos import containerfaults
from topologies.errors import RunError
from topologies.userservice import is_user_service

if TYPE_CHECKING:
    from topologies.model import Fault

    from .book import Replica
    from .faults import Applied
    from .run import LiveRun

__all__ = ["apply_container_fault", "reapply", "memory_limit", "CONTAINER_FAULTS", "OOM_POLL"]

#: Fault types acting on the containers under the docker runtime.
CONTAINER_FAULTS = ("partition", "loss", "cpu", "memory")
#: Seconds between two looks for OOM-killed containers while a memory fault is in force.
OOM_POLL = 0.1


def apply_container_fault(run: LiveRun, a: Applied, service: str,
                          chosen: list[Replica]) -> None:
    """Apply ``a`` (one of :data:`CONTAINER_FAULTS`) to the containers of ``chosen``; what
    undoes it goes on ``a.undo``."""
    for rep in chosen:
        if getattr(rep.process, "container", None) is not None and not rep.down:
            apply_one(run, a, rep)
    if a.fault.type == "memory":
        a.watch = _OOMWatch(run, a, service, chosen)
        a.watch.start()


def apply_one(run: LiveRun, a: Applied, rep: Replica) -> None:
    """``a`` on the container of one replica; its undo goes on ``a.undo``."""
    f = a.fault
    container = rep.process.container
    if f.type == "partition":
        undo = containerfaults.partition(container)
    elif f.type == "loss":
        undo = containerfaults.loss(container, float(f.probability or 0.0))
    elif f.type == "cpu":
        user = is_user_service(run.topology.services[rep.service])
        base = float(os.cpu_count() or 1) if user else 1.0
        undo = containerfaults.cpu(container, float(f.fraction or 1.0), base_cpus=base)
    else:  # memory
        user = is_user_service(run.topology.services[rep.service])
        extra = 0 if user else _interpreter_bytes(rep)
        run.memory_overhead[rep.service] = extra
        try:
            undo = _limit_memory(container, int(f.limit or 0) + extra)
        except RunError:
            # the kernel refuses a limit below what the container holds now (requests in
            # progress hold theirs): over its limit, the replica is killed as the OOM killer
            # would, and its program restarts under the limit (memory_limit)
            rep.process.kill()
            _crashed(run, f, rep, time.time(),
                     {"limit": f.limit, "oom_kill": rep.index, "limit_refused": True})
            return
    a.undo.append(("call", undo))


def _crashed(run: LiveRun, f: Fault, rep: Replica, at: float, params: dict) -> None:
    """``rep`` died at ``at`` under memory fault ``f``: down, a faults.csv row, and serving
    again after its service's ``restart`` (the caller holds the run's lock)."""
    from .faults import Applied

    restart = run.topology.services[rep.service].restart
    run.book.set_down(rep, at, True)
    run.extra_faults.append(["memory", rep.service, at, at + restart, params])
    timer = threading.Timer(max(0.0, at + restart - run.startup_time() - time.time()),
                            run.restart, args=(Applied(f), rep, at + restart))
    timer.daemon = True
    run.timers.append(timer)
    timer.start()


def _in_force(run: LiveRun, service: str, kinds: tuple[str, ...]) -> list[Applied]:
    """The faults of ``kinds`` in force now on ``service``."""
    out = []
    for a in list(run.applied):
        f = a.fault
        if f.type in kinds and f.service == service and a.start is not None and a.end is None:
            out.append(a)
    return out


def memory_limit(run: LiveRun, service: str, k: int) -> int | None:
    """The memory limit replica ``k`` of ``service`` starts under (a memory fault in force:
    its limit plus the interpreter's memory measured when it began), or None. A program
    restarted under a limit is started with it, as a container with a limit is: the kernel
    refuses to lower a running container's limit below what it holds right now."""
    limits = [int(a.fault.limit or 0) + run.memory_overhead.get(service, 0)
              for a in _in_force(run, service, ("memory",))
              if a.fault.replicas is None or k < a.fault.replicas]
    return min(limits) if limits else None


def reapply(run: LiveRun, rep: Replica) -> None:
    """The ``cpu`` and ``memory`` faults in force on ``rep``'s service, on its program's new
    container (a restart, a new replica); problems are reported, the run goes on."""
    for a in _in_force(run, rep.service, ("cpu",)):
        try:
            with run._lock:
                apply_one(run, a, rep)
        except RunError as exc:
            run.problem(f"fault cpu on {rep.service}#{rep.index}: {exc}")
    for a in _in_force(run, rep.service, ("memory",)):
        if a.watch is not None and (a.fault.replicas is None or rep.index < a.fault.replicas):
            a.watch.add(rep)  # it started under the limit (memory_limit)


def _limit_memory(container: str, limit: int, give_up: float = 0.5) -> containerfaults.Undo:
    """Set the memory limit; the kernel refuses one below what the container holds now and
    cannot reclaim (requests in progress hold theirs until they end): tried again for up to
    ``give_up`` s, as the requests of the moment finish."""
    deadline = time.monotonic() + give_up
    while True:
        try:
            return containerfaults.memory(container, limit)
        except RunError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _interpreter_bytes(rep: Replica) -> int:
    """What an emulated replica holds beyond the model's memory: its anonymous resident
    memory now (``RssAnon``: the file-backed part, the interpreter's mapped code, the kernel
    can evict under a limit rather than kill) less the model's bytes it reports
    (``memory_held``), with 2 MiB of slack for allocator noise."""
    from .util import http

    state = containerfaults.inspect(rep.process.container)["State"]
    try:
        with open(f"/proc/{state['Pid']}/status", encoding="ascii") as fh:
            rss = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("RssAnon:"))
        held = int(http("GET", rep.port, "/_faultmesh/stats").get("memory_held", 0) or 0)
    except (OSError, StopIteration, ValueError, KeyError) as exc:
        raise RunError(f"{rep.process.container}: cannot measure its memory: {exc}") from None
    return max(0, rss - held) + 2 * 1024 * 1024


class _OOMWatch(threading.Thread):
    """Looks for OOM kills among the limited containers until the fault is removed; each is a
    crash of that replica (down, restarted after ``restart``) and a faults.csv row."""

    def __init__(self, run: LiveRun, a: Applied, service: str, reps: list[Replica]) -> None:
        super().__init__(name=f"faultmesh-oom-{service}", daemon=True)
        self.run_, self.a, self.service = run, a, service
        self.watching = {id(r): r for r in reps if getattr(r.process, "container", None)}
        self.lock = threading.Lock()
        self.since = a.start or time.time()  # an OOM kill while the limits went in counts
        self.done = threading.Event()
        a.undo.append(("call", self.done.set))
        run.timers.append(self)  # type: ignore[arg-type]  # joined at teardown

    def cancel(self) -> None:
        self.done.set()

    def add(self, rep: Replica) -> None:
        """Watch ``rep`` too (its program restarted under the limit)."""
        with self.lock:
            self.watching[id(rep)] = rep

    def run(self) -> None:
        run, f = self.run_, self.a.fault
        while not self.done.wait(OOM_POLL):
            with self.lock:
                watching = dict(self.watching)
            for key, rep in watching.items():
                try:
                    # not before this program's container began: an earlier one of the same
                    # name (OOM-killed, restarted) left its own oom event
                    since = max(self.since, getattr(rep.process, "created", 0.0))
                    at = containerfaults.oom_killed(rep.process.container, since=since)
                except RunError:
                    at = None
                if at is None:
                    continue
                with self.lock:
                    self.watching.pop(key, None)
                with run._lock:
                    _crashed(run, f, rep, at, {"limit": f.limit, "oom_kill": rep.index})
