"""The replicas of a live run over time: which exist, which serve, from when to when.

A replica *exists* (and costs money) from the moment the run decides to start it — cold
start included — until the autoscaler stops it or the run ends; a killed replica still
exists while it restarts, as in the simulator. It is *ready* (in its callers' balancers)
from its start, or for an autoscaled replica from the end of its ``cold_start``, until it
is stopped, except while it is dead (killed, not yet restarted). A paused replica stays
ready: its callers keep sending to it and it holds their requests.

:class:`ReplicaBook` records every change as a step of two per-service levels, existing
and ready replicas, in wall-clock time; the timeseries (``replicas``, ``ready_replicas``),
the cost (replica-seconds) and the autoscaler (ready replica-seconds of an interval) are
read from those steps.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["Replica", "ReplicaBook", "EXISTING", "READY"]

EXISTING, READY = 0, 1


@dataclass(eq=False)
class Replica:
    """One replica of ``service`` at balancer slot ``index``: its process (None while it
    starts), the port it listens on, and its life so far (wall-clock times)."""

    service: str
    index: int
    started: float
    process: Any = None
    port: int | None = None
    ready_at: float | None = None
    stopped: float | None = None      # left the service (cost ends); its process may drain
    down: bool = False                 # killed, not restarted yet
    paused: bool = False               # frozen (SIGSTOP): still ready, holding its requests
    exited: bool = False               # its process is gone for good (slot free again)
    surge: bool = False                # a surge rollout's, on top of the count for now
    log: str = ""

    @property
    def ready(self) -> bool:
        """In its callers' balancers and alive."""
        return self.ready_at is not None and self.stopped is None and not self.down


class ReplicaBook:
    """Every replica a run started, and per service the steps of its existing and ready
    counts (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.replicas: dict[str, list[Replica]] = {}
        self._steps: dict[str, list[tuple[float, int, int]]] = {}

    # --- changes ---------------------------------------------------------------------------
    def add(self, service: str, index: int, now: float, *, ready: bool,
            process: Any = None, log: str = "") -> Replica:
        """A replica starts existing at ``now`` (ready at once when ``ready``)."""
        with self.lock:
            rep = Replica(service, index, now, process=process,
                          port=getattr(process, "port", None), log=log)
            if ready:
                rep.ready_at = now
            self.replicas.setdefault(service, []).append(rep)
            self._step(service, now)
            return rep

    def sort(self, service: str) -> None:
        """Put the replicas of ``service`` in index order: replicas started together enter
        as they come up, and "the first replica" (a fault's ``replicas: 1``) is index 0."""
        with self.lock:
            self.replicas.get(service, []).sort(key=lambda r: r.index)

    def set_ready(self, rep: Replica, now: float) -> None:
        """The replica joins its callers' balancers (its cold start is over)."""
        with self.lock:
            if rep.stopped is None and rep.ready_at is None:
                rep.ready_at = now
                self._step(rep.service, now)

    def set_down(self, rep: Replica, now: float, down: bool) -> None:
        """The replica was killed (``down``) or serves again after its restart."""
        with self.lock:
            if rep.down != down:
                rep.down = down
                self._step(rep.service, now)

    def stop(self, rep: Replica, now: float) -> None:
        """The replica leaves the service (no longer exists, no longer costs)."""
        with self.lock:
            if rep.stopped is None:
                rep.stopped = now
                self._step(rep.service, now)

    # --- reading ---------------------------------------------------------------------------
    def existing(self, service: str) -> list[Replica]:
        """The replicas of ``service`` that exist now (starting, serving or restarting): those
        the run started with by index, then the others in the order they started."""
        with self.lock:
            return [r for r in self.replicas.get(service, []) if r.stopped is None]

    def serving(self, service: str) -> list[Replica]:
        """The replicas of ``service`` ready now, by slot."""
        with self.lock:
            return sorted((r for r in self.replicas.get(service, []) if r.ready),
                          key=lambda r: r.index)

    def in_balancer(self, service: str) -> list[Replica]:
        """The replicas of ``service`` its callers' balancers choose among now: past their
        cold start and not stopped, dead ones included (they refuse), by slot."""
        with self.lock:
            return sorted((r for r in self.replicas.get(service, [])
                           if r.ready_at is not None and r.stopped is None),
                          key=lambda r: r.index)

    def all(self) -> list[Replica]:
        """Every replica the run started."""
        with self.lock:
            return [r for reps in self.replicas.values() for r in reps]

    def counts(self, service: str) -> tuple[int, int]:
        """(existing, ready) replicas of ``service`` now."""
        with self.lock:
            reps = self.replicas.get(service, [])
            return (sum(r.stopped is None for r in reps), sum(r.ready for r in reps))

    def level_at(self, service: str, t: float) -> tuple[int, int]:
        """(existing, ready) replicas of ``service`` at wall-clock time ``t``."""
        with self.lock:
            steps = self._steps.get(service, [])
            i = bisect.bisect_right(steps, (t, float("inf"), float("inf"))) - 1
            return (steps[i][1], steps[i][2]) if i >= 0 else (0, 0)

    def integral(self, service: str, a: float, b: float, which: int = EXISTING) -> float:
        """Replica-seconds of ``service`` in the wall-clock window ``[a, b)``: existing
        replicas (``EXISTING``, what costs) or ready ones (``READY``)."""
        if b <= a:
            return 0.0
        with self.lock:
            steps = self._steps.get(service, [])
            total = 0.0
            for i, step in enumerate(steps):
                lo = max(a, step[0])
                hi = min(b, steps[i + 1][0] if i + 1 < len(steps) else b)
                if hi > lo:
                    total += step[1 + which] * (hi - lo)
            return total

    def _step(self, service: str, now: float) -> None:
        reps = self.replicas.get(service, [])
        level = (now, sum(r.stopped is None for r in reps), sum(r.ready for r in reps))
        steps = self._steps.setdefault(service, [])
        if steps and steps[-1][0] > now:  # a change recorded late: keep the steps ordered
            level = (steps[-1][0], level[1], level[2])
        if steps and steps[-1][0] == level[0]:
            steps[-1] = level
        else:
            steps.append(level)
