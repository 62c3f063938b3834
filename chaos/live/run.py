"""One live run: the proxy, the replica processes, the load, the faults and the autoscaler,
from start to teardown (docs/live.md, How a run is wired)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from topologies.errors import RunError, UsageError
from topologies.model import Topology
from topologies.userservice import is_user_service

from . import faults
from .autoscale import LiveAutoscaler
from .book import ReplicaBook
from .faults import Applied
from .lifecycle import STARTING_AT_ONCE, ReplicaLifecycle
from .relay import MemberRelay, RoundRobinFront
from .rollout import rollout_slots
from .runtime import make_runtime
from .util import http
from .watch import LiveWatch, active_faults
from .wiring import (
    Edge,
    answer_time_bound,
    callees,
    create_proxy,
    service_levels,
)

__all__ = ["LiveRun", "FIRST_REQUEST_WAIT"]

#: Seconds the fault scheduler waits for the load's first request before it starts anyway.
FIRST_REQUEST_WAIT = 40.0


class LiveRun(ReplicaLifecycle):
    """One live run of ``topology`` under ``scenario`` into the result directory ``out``."""

    def __init__(self, topology: Topology, scenario: str | None, *, seed: int = 0,
                 duration: float | None = None, out: str,
                 toxiproxy_url: str | None = None, web: bool = False,
                 watch: LiveWatch | None = None, runtime: str = "process",
                 load_workers: int = 0) -> None:
        self.topology = topology
        self.load_workers = load_workers  # >0: Locust's distributed mode (loadtests)
        self.scenario = topology.scenario(scenario)
        self.seed = seed
        self.duration = float(duration if duration is not None else topology.workload.duration)
        if not self.duration > 0:
            raise UsageError(f"duration: must be positive, not {duration!r}")
        self.out = out
        self.toxiproxy_url = toxiproxy_url
        self.web = web
        self.watch = watch  # told each step, the load's counts and the faults in force
        self.control: Any = None  # with web: the faultmesh tab's API (chaos.live.control)
        self.load_counts: dict[str, Any] = {}  # the load's counts so far
        self.runtime = make_runtime(runtime)
        self.runtime.check(topology, self.scenario.faults, toxiproxy_url)
        self.user_services = {n for n, spec in topology.services.items()
                              if is_user_service(spec)}
        self.logs = os.path.join(out, "live-logs")
        self.topo_path = os.path.join(out, "topology.yaml")
        self.book = ReplicaBook()
        self.upstreams: dict[str, dict[str, list[str]]] = {}
        self.edges: list[Edge] = []
        self.relays: dict[str, MemberRelay] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self._owners_seq = 0
        self.applied: list[Applied] = []
        self.admin_faults: dict[str, dict[str, dict[str, Any]]] = {}  # active errors/slow
        self.timers: list[threading.Timer] = []
        self.autoscaler = LiveAutoscaler(self)
        self.epoch = 0.0
        self.t0_est: float | None = None
        self.partial = False
        self.results_written = False  # this run's result files are on disk
        self.notes: list[str] = []
        self.end = self.duration  # the run time reached (the drain included)
        self._opened = False  # the runtime is open: "tearing down" is worth saying
        self.extra_faults: list[list[Any]] = []  # rows of what happened by itself (OOM kills)
        self.memory_overhead: dict[str, int] = {}  # bytes an emulator holds beyond its model
        self._front: RoundRobinFront | None = None
        self._stop = threading.Event()      # the load has ended
        self._closed = threading.Event()    # the teardown has begun
        self._closing = False
        self._lock = threading.Lock()
        self._helpers: list[threading.Thread] = []   # replicas starting or draining
        self._startups: list[float] = []             # seconds each process took to start

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Start everything, load it, inject the faults, stop everything, write the results.

        Returns the summary. Ctrl-C during the load writes what was collected (``partial``)
        and then raises KeyboardInterrupt; nothing the run started is left running.
        """
        import topologies
        from topologies.files import atomic_write_text

        from .results import write_results

        shutil.rmtree(self.logs, ignore_errors=True)  # a previous run's logs would be appended to
        os.makedirs(self.logs, exist_ok=True)
        atomic_write_text(self.topo_path, topologies.dump(self.topology))
        self.epoch = time.time()
        load = None
        try:
            self.runtime.open(self)
            self._opened = True
            self._phase(f"starting "
                        f"{sum(self.initial_replicas(n) for n in self.topology.services)} "
                        f"replicas and their proxies")
            self._start_services()
            self._phase("starting the load")
            if self.web:  # the faultmesh tab of Locust's web UI reads and drives it
                from .control import ControlServer

                self.control = ControlServer(self)
                self.control.start()
            scheduler = threading.Thread(target=self._schedule, name="faultmesh-faults",
                                         daemon=True)
            scheduler.start()
            try:
                load = self._load()
            finally:
                self._stop.set()
                scheduler.join(10.0)
                self.autoscaler.stop()
                self._undo_all()
        except KeyboardInterrupt:
            self.partial = True
            if load is None:
                raise
        finally:
            if self.control is not None:
                self.control.stop()
            if self._opened or self.book.all():  # something to tear down
                self._phase("tearing down")
            self._teardown()
        self._phase("writing results")
        if load.partial:
            self.partial = True
        t0 = load.t0 if load.t0 is not None else (self.t0_est or self.epoch)
        if load.end is not None:
            self.end = float(load.end)
        elif self.partial and load.run_time:
            self.end = min(self.duration, float(load.run_time))
        if self.partial:
            self.notes.append("interrupted: requests still unanswered then are unfinished")
        # the load's own notes (it fell behind its schedule, its CPU saturated), its
        # interruption note aside: the line above says it for the whole run
        from loadtests.runner import INTERRUPTED_NOTE

        self.notes.extend(n for n in load.notes if n != INTERRUPTED_NOTE)
        summary = write_results(self, t0)
        self.results_written = True
        if self.partial:
            raise KeyboardInterrupt
        return summary

    def _load(self) -> Any:
        """Run the load (the drain included); its :class:`~loadtests.LoadResult`. Open load
        gets users for the slowest answer possible: the topology's bound, or the client
        timeout when that is shorter."""
        from loadtests import run_load

        fronts = [self.runtime.reach(e) for e in self.edges_into("client", self.topology.entry)]
        if len(fronts) > 1:  # several entry replicas: spread the client's connections
            self._front = RoundRobinFront(fronts)
            url = f"http://{self._front.start()}"
        else:
            url = f"http://{fronts[0]}"
        return run_load(self.topology.workload, url, duration=self.duration,
                        seed=self.seed, out_dir=self.out, web=self.web,
                        headroom=min(answer_time_bound(self.topology),
                                     max(2.0, self.topology.workload.timeout)),
                        progress=self._on_load, workers=self.load_workers,
                        control_url=self.control.url if self.control is not None else None)

    def _phase(self, text: str) -> None:
        if self.watch is not None:
            self.watch.phase(text)

    def _on_load(self, counts: dict[str, Any]) -> None:
        """The load's counts so far, with the faults in force, to the watcher."""
        self.load_counts = counts
        if self.watch is not None:
            self.watch.load(counts, active_faults(self.topology, self.applied))

    # --- starting and stopping -------------------------------------------------------------
    def _start_services(self) -> None:
        """Replicas leaves first, then one proxy per (caller, balancer slot) into them. An
        autoscaled service has ``autoscale.max`` slots from the start, behind its relay. The
        replicas of services whose callees are all wired start together."""
        callers: dict[str, list[str]] = defaultdict(list)
        for name in self.topology.services:
            for callee in callees(self.topology, name):
                callers[callee].append(name)
        callers[self.topology.entry].append("client")
        for group in service_levels(self.topology):
            for name in group:
                self.upstreams[name] = {callee: [self.runtime.reach(e)
                                                 for e in self.edges_into(name, callee)]
                                        for callee in callees(self.topology, name)}
            self.start_together([(name, k) for name in group
                                 for k in range(self.initial_replicas(name))], time.time())
            for name in group:
                self._wire_callers(name, callers)
        self.tell_owners_now()  # the callers started after their relayed callees

    def _wire_callers(self, name: str, callers: dict[str, list[str]]) -> None:
        """The proxies from each caller of ``name`` into its replicas (behind a relay when
        replicas will come and go)."""
        spec = self.topology.services[name]
        rolled = rollout_slots(self.topology, name, self.scenario.faults)
        if spec.autoscale is not None or rolled is not None:
            # replicas come and go behind their callers' fixed address lists
            relay = self.relays[name] = MemberRelay(
                name, spec.autoscale.max if spec.autoscale is not None else rolled,
                host=self.runtime.relay_host())
            slots = relay.start()
            self.refresh(name)
        else:
            slots = [rep.process.address for rep in self.book.existing(name)]
        for caller in callers.get(name, []):
            for k, address in enumerate(slots):
                self.edges.append(create_proxy(caller, name, k, address,
                                               self.runtime.proxy_listen(caller)))

    def _teardown(self) -> None:
        """Stop every replica (thawed first if paused; SIGTERM, it flushes its logs), the
        relays, and the runtime (the fault proxy, and whatever it made)."""
        with self._lock:
            self._closing = True
        self._closed.set()
        for timer in self.timers:
            timer.cancel()
        for thread in [*self.timers, *self._helpers]:
            thread.join(15.0)  # a replica starting now is stopped by its own thread
        procs = [rep.process for rep in self.book.all()
                 if rep.process is not None and not rep.exited]
        def ask(rp: Any) -> None:
            try:
                rp.terminate()
            except (OSError, RunError):
                pass

        def stop(rp: Any) -> None:
            try:
                rp.stop()
            except (OSError, subprocess.SubprocessError, RunError):
                rp.kill()

        # all asked first, then waited for, several at once: a container's stop is a few
        # docker commands, each waiting on the engine
        with ThreadPoolExecutor(STARTING_AT_ONCE, thread_name_prefix="faultmesh-stop") as pool:
            list(pool.map(ask, procs))
            list(pool.map(stop, procs))
        for relay in [self._front, *self.relays.values()]:
            if relay is not None:
                relay.stop()
        self._front = None
        self._opened = False
        self.runtime.close(self)  # also what a runtime that failed to open had made

    # --- faults ----------------------------------------------------------------------------
    def edges_into(self, caller: str | None, callee: str) -> list[Edge]:
        """The proxies into ``callee`` (from ``caller``, or from anyone when None)."""
        return [e for e in self.edges
                if e.callee == callee and (caller is None or e.caller == caller)]

    def target_edges(self, target: str) -> list[Edge]:
        if "->" in target:
            caller, callee = target.split("->", 1)
            return self.edges_into(caller.strip(), callee.strip())
        return self.edges_into(None, target)

    def target_service(self, target: str) -> str:
        return target.split("->", 1)[1].strip() if "->" in target else target

    def _schedule(self) -> None:
        """Wait for the load to start (the entry's first request), start the autoscaler,
        then apply each fault at its start and remove it at its end."""
        give_up = time.time() + FIRST_REQUEST_WAIT
        while not self._stop.is_set() and time.time() < give_up:
            if self._load_arrived():
                break
            self._stop.wait(0.005 if self.topology.entry in self.user_services else 0.01)
        self.t0_est = time.time()
        if not self._stop.is_set():
            self.autoscaler.start()
        events: list[tuple[float, int, Applied]] = []
        for f in self.scenario.faults:
            a = Applied(f)
            self.applied.append(a)
            events.append((f.start, 1, a))
            if f.end is not None:
                events.append((f.end, 0, a))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, is_start, a in events:
            if self._stop.wait(max(0.0, self.t0_est + at - time.time())):
                return
            with self._lock:
                try:
                    if is_start:
                        a.start = time.time()
                        faults.apply(self, a, f"f{self.applied.index(a)}_{a.fault.type}")
                    elif a.start is not None and a.end is None:
                        faults.remove(self, a)
                        a.end = time.time()
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    self.problem(f"fault {a.fault.type} on {a.fault.target}: {exc}")

    def _load_arrived(self) -> bool:
        """Whether the load's first request has reached the entry: its emulator's stats
        say so, or for a user's program (no stats) a proxy into it holds a connection
        from the client (on a real Toxiproxy, unseen: the faults count from now)."""
        entry = self.topology.entry
        if entry not in self.user_services:
            try:
                stats = http("GET", self.book.existing(entry)[0].port, "/_faultmesh/stats")
                return bool(stats.get("arrived", 0) > 0)
            except OSError:
                return False
        seen = self.runtime.entry_connected(self.edges_into("client", entry))
        return True if seen is None else seen

    def problem(self, message: str) -> None:
        """A fault that could not be applied as asked: warned about and kept in the summary."""
        self.notes.append(message)
        if self.watch is not None:  # above a progress display, not through it
            self.watch.echo(f"faultmesh live: warning: {message}")
        else:
            print(f"faultmesh live: warning: {message}", file=sys.stderr, flush=True)

    def _undo_all(self) -> None:
        with self._lock:
            for a in self.applied:
                if a.start is not None and a.end is None and a.fault.type != "kill":
                    faults.remove(self, a)
                    a.end = time.time()

