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

Each fault acts on the containers running when it starts (a replica started later in the
window does not get it, except the emulator's ``cpu`` admin fault).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from chaos import containerfaults
from topologies.errors import RunError
from topologies.userservice import is_user_service

if TYPE_CHECKING:
    from .book import Replica
    from .faults import Applied
    from .run import LiveRun

__all__ = ["apply_container_fault", "CONTAINER_FAULTS", "OOM_POLL"]

#: Fault types acting on the containers under the docker runtime.
CONTAINER_FAULTS = ("partition", "loss", "cpu", "memory")
#: Seconds between two looks for OOM-killed containers while a memory fault is in force.
OOM_POLL = 0.1


def apply_container_fault(run: LiveRun, a: Applied, service: str,
                          chosen: list[Replica]) -> None:
    """Apply ``a`` (one of :data:`CONTAINER_FAULTS`) to the containers of ``chosen``; what
    undoes it goes on ``a.undo``."""
    f = a.fault
    user = is_user_service(run.topology.services[service])
    for rep in chosen:
        container = getattr(rep.process, "container", None)
        if container is None or rep.down:
            continue
        if f.type == "partition":
            undo = containerfaults.partition(container)
        elif f.type == "loss":
            undo = containerfaults.loss(container, float(f.probability or 0.0))
        elif f.type == "cpu":
            import os

            base = float(os.cpu_count() or 1) if user else 1.0
            undo = containerfaults.cpu(container, float(f.fraction or 1.0), base_cpus=base)
        else:  # memory
            limit = int(f.limit or 0) + (0 if user else _interpreter_bytes(rep))
            undo = containerfaults.memory(container, limit)
        a.undo.append(("call", undo))
    if f.type == "memory":
        _OOMWatch(run, a, service, chosen).start()


def _interpreter_bytes(rep: Replica) -> int:
    """What an emulated replica holds beyond the model's memory: its resident set now less
    the model's bytes it reports (``memory_held``), with 8 MiB of slack for allocator noise."""
    from .util import http

    state = containerfaults.inspect(rep.process.container)["State"]
    try:
        with open(f"/proc/{state['Pid']}/status", encoding="ascii") as fh:
            rss = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
        held = int(http("GET", rep.port, "/_faultmesh/stats").get("memory_held", 0) or 0)
    except (OSError, StopIteration, ValueError, KeyError) as exc:
        raise RunError(f"{rep.process.container}: cannot measure its memory: {exc}") from None
    return max(0, rss - held) + 8 * 1024 * 1024


class _OOMWatch(threading.Thread):
    """Looks for OOM kills among the limited containers until the fault is removed; each is a
    crash of that replica (down, restarted after ``restart``) and a faults.csv row."""

    def __init__(self, run: LiveRun, a: Applied, service: str, reps: list[Replica]) -> None:
        super().__init__(name=f"faultmesh-oom-{service}", daemon=True)
        self.run_, self.a, self.service = run, a, service
        self.reps = [r for r in reps if getattr(r.process, "container", None)]
        self.since = time.time()
        self.done = threading.Event()
        a.undo.append(("call", self.done.set))
        run.timers.append(self)  # type: ignore[arg-type]  # joined at teardown

    def cancel(self) -> None:
        self.done.set()

    def run(self) -> None:
        from .faults import Applied

        run, f = self.run_, self.a.fault
        restart = run.topology.services[self.service].restart
        watching = {id(r): r for r in self.reps}
        while watching and not self.done.wait(OOM_POLL):
            for key, rep in list(watching.items()):
                try:
                    at = containerfaults.oom_killed(rep.process.container, since=self.since)
                except RunError:
                    at = None
                if at is None:
                    continue
                del watching[key]
                with run._lock:
                    run.book.set_down(rep, at, True)
                    run.extra_faults.append(["memory", self.service, at, at + restart,
                                             {"limit": f.limit, "oom_kill": rep.index}])
                timer = threading.Timer(max(0.0, at + restart - run.startup_time()
                                            - time.time()),
                                        run.restart, args=(Applied(f), rep, at + restart))
                timer.daemon = True
                run.timers.append(timer)
                timer.start()
