"""Replicas coming and going during a live run: started at the beginning, restarted after a
kill, started and stopped by the autoscaler — and what each of those costs and when each
serves (recorded in the run's :class:`~chaos.live.book.ReplicaBook`)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from topologies.errors import RunError
from topologies.userservice import is_user_service

from .book import Replica, ReplicaBook
from .relay import slot_owners
from .util import http

if TYPE_CHECKING:
    from topologies.model import Topology

    from .faults import Applied
    from .relay import MemberRelay
    from .runtime import Runtime

__all__ = ["ReplicaLifecycle", "DRAIN_WAIT"]

#: Seconds a replica the autoscaler stops may take to finish its requests before SIGTERM.
DRAIN_WAIT = 60.0
STARTING_AT_ONCE = max(4, 2 * (os.cpu_count() or 1))
"""Replicas started at the same time when a run begins, and stopped at the same time when it
ends (each waits mostly on a process or a container; more at once only queue for the cores)."""


class ReplicaLifecycle:
    """The part of :class:`~chaos.live.LiveRun` that starts, restarts and stops replica
    processes (its state lives in the run)."""

    topology: Topology
    runtime: Runtime
    topo_path: str
    logs: str
    seed: int
    epoch: float
    book: ReplicaBook
    upstreams: dict[str, dict[str, list[str]]]
    relays: dict[str, MemberRelay]
    admin_faults: dict[str, dict[str, dict[str, Any]]]
    owners: dict[str, dict[str, Any]]   # relayed service -> the last slot owners sent
    _owners_seq: int
    _stop: threading.Event
    _closed: threading.Event
    _closing: bool
    _lock: threading.Lock
    _helpers: list[threading.Thread]
    _startups: list[float]

    applied: list[Applied]

    def problem(self, message: str) -> None:
        raise NotImplementedError

    def initial_replicas(self, name: str) -> int:
        """Replicas a service starts with: ``replicas``, within the autoscaler's [min, max]."""
        spec = self.topology.services[name]
        if spec.autoscale is None:
            return spec.replicas
        return min(spec.autoscale.max, max(spec.autoscale.min, spec.replicas))

    def _process(self, name: str, k: int, port: int = 0,
                 listen_at: float | None = None) -> Any:
        """Start replica ``k`` of ``name`` through the run's runtime (its handle)."""
        began = time.monotonic()
        process = self.runtime.start_replica(self, name, k, port, listen_at)  # type: ignore[arg-type]
        if listen_at is None:
            self._startups.append(time.monotonic() - began)
        return process

    def start_together(self, wanted: list[tuple[str, int]], now: float) -> None:
        """Start these replicas at once (``STARTING_AT_ONCE`` at a time), each entered in the
        book, ready, as it comes up; the first failure is raised once all are done.

        Most of a start is waiting (a process importing, a container created, a health
        check), so a topology's replicas start in about the time of its slowest few rather
        than the sum of all. A run stopped meanwhile stops each one that comes up late (the
        teardown waits for the starting threads, as for the autoscaler's)."""
        gate = threading.Semaphore(STARTING_AT_ONCE)
        failures: list[BaseException] = []

        def start(name: str, k: int) -> None:
            with gate:
                try:
                    process = self._process(name, k)
                except BaseException as exc:  # raised in the run's thread below
                    failures.append(exc)
                    return
            with self._lock:
                if not self._closing:
                    self.book.add(name, k, now, ready=True, process=process,
                                  log=self.call_log(name, k))
                    return
            process.stop()

        threads = [threading.Thread(target=start, args=(name, k), daemon=True,
                                    name=f"faultmesh-start-{name}-{k}") for name, k in wanted]
        self._helpers.extend(threads)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name in {name for name, _ in wanted}:
            self.book.sort(name)
        if failures:
            raise failures[0]

    def output_log(self, name: str, k: int) -> str:
        """Where a user program's stdout and stderr go (successive processes append)."""
        return os.path.join(os.path.abspath(self.logs), f"{name}-{k}.out")

    def call_log(self, name: str, k: int) -> str:
        """The calls.csv log of replica ``k`` of ``name``; "" for a user service (measured
        from the outside: it writes no log of its own)."""
        return "" if is_user_service(self.topology.services[name]) else self.replica_log(name, k)

    def startup_time(self) -> float:
        """How long before it is due a killed replica's restart begins: the longest time a
        replica process took to start listening in this run, and half a second more. The
        process loads then and listens from the due time on (``--listen-at``), so it serves
        again exactly the service's ``restart`` after the kill, neither earlier (a start
        faster than the estimate) nor later (the process's own start added)."""
        return max(self._startups, default=1.0) + 0.5

    def replica_log(self, name: str, k: int) -> str:
        """Where replica ``k`` of emulated service ``name`` writes its calls.csv rows."""
        return os.path.join(os.path.abspath(self.logs), f"{name}-{k}.csv")

    def refresh(self, service: str) -> None:
        """Tell an autoscaled service's relay which replicas are in the balancer now, and
        its callers which replica each relay slot leads to."""
        relay = self.relays.get(service)
        if relay is None:
            return
        members = {r.index: r.port for r in self.book.in_balancer(service)
                   if r.port is not None}
        relay.set_members(members)
        owners = slot_owners(members, relay.slots)
        if owners is None:  # none serves: the relay refuses, whatever callers think
            return
        with self._lock:
            self._owners_seq += 1
            self.owners[service] = body = {"callee": service, "owners": owners,
                                           "seq": self._owners_seq}
        self._helper(self._tell_owners, (self._callers(service), [body]),
                     f"faultmesh-members-{service}")

    def _callers(self, service: str) -> list[Replica]:
        """The emulated replicas that exist now of the services that call ``service``."""
        return [rep for rep in self.book.all() if rep.stopped is None
                and service in self.upstreams.get(rep.service, {})
                and not is_user_service(self.topology.services[rep.service])]

    def tell_owners_now(self) -> None:
        """Every relayed service's slot owners to all its callers, waiting until they have
        them (once every replica is up, before the load starts)."""
        with self._lock:
            bodies = dict(self.owners)
        for service, body in bodies.items():
            self._tell_owners(self._callers(service), [body])

    def _tell_owners(self, reps: list[Replica], bodies: list[dict[str, Any]]) -> None:
        """Send slot owners to caller replicas (a thread: a paused one holds it up to the
        admin timeout; one that misses an update gets the next)."""
        for rep in reps:
            if rep.port is None or rep.down:
                continue
            for body in bodies:
                try:
                    http("PUT", rep.port, "/_faultmesh/members", body)
                except OSError:
                    pass

    def grow(self, service: str, now: float, ready_after: float | None = None,
             surge: bool = False) -> Replica | None:
        """Start one more replica of ``service``: it costs from ``now`` and joins the
        balancer ``ready_after`` seconds later (default: the autoscaler's ``cold_start``,
        within ``autoscale.max`` replicas). A rollout's new replicas (``ready_after`` its
        ``startup``) take indices no replica of the service had before; ``surge`` marks
        them as on top of the count (the autoscaler leaves them be)."""
        spec = self.topology.services[service].autoscale
        with self.book.lock:
            held = {r.index for r in self.book.replicas.get(service, []) if not r.exited}
            if ready_after is None:
                assert spec is not None
                ready_after = spec.cold_start
                free = [k for k in range(spec.max) if k not in held]
            else:  # a rollout's: an index no replica had (its logs are its own)
                used = {r.index for r in self.book.replicas.get(service, [])}
                free = [max(used, default=-1) + 1]
            if not free:
                return None
            rep = self.book.add(service, free[0], now, ready=False,
                                log=self.replica_log(service, free[0]))
            rep.surge = surge
        self._helper(self._bring_up, (rep, now + ready_after),
                     f"faultmesh-start-{service}-{rep.index}")
        return rep

    def _helper(self, target: Any, args: tuple[Any, ...], name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._helpers.append(thread)
        thread.start()

    def _bring_up(self, rep: Replica, ready_at: float) -> None:
        try:
            process = self._process(rep.service, rep.index)
        except RunError as exc:
            self.problem(f"autoscaler: {exc}")
            self.book.stop(rep, time.time())
            rep.exited = True
            return
        with self._lock:
            rep.process, rep.port = process, process.port
            gone = self._closing or rep.stopped is not None
        if gone:
            process.stop()
            rep.exited = True
            return
        self._post_admin_faults(rep)
        if self._closed.wait(max(0.0, ready_at - time.time())):
            return
        self.book.set_ready(rep, max(ready_at, time.time()))
        self.refresh(rep.service)

    def shrink(self, rep: Replica, now: float) -> None:
        """Stop a replica: it leaves the balancer (and stops costing) at ``now``; its process
        ends once its last connection has (at most :data:`DRAIN_WAIT` s later)."""
        self.book.stop(rep, now)
        self.refresh(rep.service)
        self._helper(self._drain, (rep,), f"faultmesh-stop-{rep.service}-{rep.index}")

    def _drain(self, rep: Replica) -> None:
        relay = self.relays.get(rep.service)
        give_up = time.time() + DRAIN_WAIT
        while rep.process is None and time.time() < give_up:
            if self._closed.wait(0.05):
                return
        if rep.process is None or rep.exited:  # it never came up (_bring_up ends it)
            return
        while (relay is not None and rep.port is not None and relay.open_to(rep.port) > 0
               and time.time() < give_up):
            if self._closed.wait(0.05):
                return  # the teardown stops it
        with self._lock:
            if self._closing:
                return
        rep.process.stop()
        rep.exited = True

    def restart(self, a: Applied, rep: Replica, due: float | None = None) -> None:
        """A killed replica serves again on its port from ``due`` (Unix time; the end of the
        kill's window)."""
        if self._stop.is_set() or rep.stopped is not None or rep.port is None:
            return
        try:
            process = self._process(rep.service, rep.index, port=rep.port, listen_at=due)
        except RunError as exc:
            self.problem(f"restart of {rep.service}#{rep.index}: {exc}")
            return
        with self._lock:
            rep.process = process
            if self._closing:  # the run ended while it was starting
                process.stop()
                rep.exited = True
                return
            self.book.set_down(rep, time.time(), False)
            a.end = time.time()
        self._post_admin_faults(rep)

    def _post_admin_faults(self, rep: Replica) -> None:
        """The ``errors``/``slow``/``cpu`` faults active on the service reach a new replica
        too, and so do the ``cpu`` and ``memory`` limits of its container (a restarted
        program's container is new; the sandbox keeps partition and loss rules)."""
        if self.runtime.containers:
            from .containers import reapply

            reapply(self, rep)  # type: ignore[arg-type]
        if is_user_service(self.topology.services[rep.service]):
            return  # its errors/slow faults are toxics on its proxies, which stay
        with self._lock:
            owners = [self.owners[c] for c in self.upstreams.get(rep.service, {})
                      if c in self.owners]
        self._tell_owners([rep], owners)
        for body in list(self.admin_faults.get(rep.service, {}).values()):
            try:
                http("POST", rep.port, "/_faultmesh/faults", body)
            except OSError as exc:
                self.problem(f"fault {body['type']} on {rep.service}#{rep.index}: {exc}")

