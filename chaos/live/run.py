"""One live run: the proxy, the replica processes, the load, the faults and the autoscaler,
from start to teardown (docs/live.md, How a run is wired)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from topologies.errors import RunError, UsageError
from topologies.model import Call, ParallelGroup, Topology

from . import faults
from .autoscale import LiveAutoscaler
from .book import Replica, ReplicaBook
from .faults import Applied
from .relay import MemberRelay, RoundRobinFront
from .util import http

__all__ = ["LiveRun", "answer_time_bound", "FIRST_REQUEST_WAIT", "DRAIN_WAIT"]

#: Seconds the fault scheduler waits for the load's first request before it starts anyway.
FIRST_REQUEST_WAIT = 40.0
#: Seconds a replica the autoscaler stops may take to finish its requests before SIGTERM.
DRAIN_WAIT = 60.0


@dataclass
class Edge:
    """One proxy: the connection from ``caller`` to balancer slot ``replica`` of ``callee``
    (the replica of that index, or for an autoscaled callee its relay's slot)."""

    name: str
    caller: str
    callee: str
    replica: int
    proxy: Any
    listen: str


def _order(topology: Topology) -> list[str]:
    """Services callees first (reverse topological order of the acyclic call graph)."""
    import networkx as nx

    from topologies.graph import call_graph

    return list(reversed(list(nx.topological_sort(call_graph(topology)))))


def answer_time_bound(topology: Topology, floor: float = 2.0, cap: float = 60.0) -> float:
    """How long the entry may take to answer, bounded from the calls' timeouts and retries
    (a call without a timeout: its callee's own bound; 1 s of own work per service), within
    [floor, cap]. The open load gives each user this much room, so slow answers (an LLM's
    seconds) do not hold the offered rate down (users >> rate x latency)."""
    memo: dict[str, float] = {}

    def service(name: str) -> float:
        if name not in memo:
            total = 1.0
            for step in topology.services[name].calls:
                group = step.parallel if isinstance(step, ParallelGroup) else (step,)
                total += max(call(c) for c in group)
            memo[name] = total
        return memo[name]

    def call(c: Call) -> float:
        tries = c.retry.attempts if c.retry else 1
        return tries * (c.timeout if c.timeout is not None else service(c.to))

    return min(cap, max(floor, service(topology.entry)))


def _callees(topology: Topology, name: str) -> list[str]:
    out: list[str] = []
    for step in topology.services[name].calls:
        for call in getattr(step, "parallel", (step,)):
            if call.to not in out:
                out.append(call.to)
    return out


class LiveRun:
    """One live run of ``topology`` under ``scenario`` into the result directory ``out``."""

    def __init__(self, topology: Topology, scenario: str | None, *, seed: int = 0,
                 duration: float | None = None, out: str,
                 toxiproxy_url: str | None = None, web: bool = False) -> None:
        self.topology = topology
        self.scenario = topology.scenario(scenario)
        self.seed = seed
        self.duration = float(duration if duration is not None else topology.workload.duration)
        if not self.duration > 0:
            raise UsageError(f"duration: must be positive, not {duration!r}")
        self.out = out
        self.toxiproxy_url = toxiproxy_url
        self.web = web
        for f in self.scenario.faults:
            if f.type == "rollout":
                raise UsageError("fault type 'rollout' is not supported by the live engine "
                                 "yet; run it with faultmesh sim")
        self.logs = os.path.join(out, "live-logs")
        self.topo_path = os.path.join(out, "topology.yaml")
        self.book = ReplicaBook()
        self.upstreams: dict[str, dict[str, list[str]]] = {}
        self.edges: list[Edge] = []
        self.relays: dict[str, MemberRelay] = {}
        self.applied: list[Applied] = []
        self.admin_faults: dict[str, dict[str, dict[str, Any]]] = {}  # active errors/slow
        self.timers: list[threading.Timer] = []
        self.autoscaler = LiveAutoscaler(self)
        self.epoch = 0.0
        self.t0_est: float | None = None
        self.partial = False
        self.notes: list[str] = []
        self.end = self.duration  # the run time reached (the drain included)
        self._server: Any = None
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
            self._start_proxy()
            self._start_services()
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
            self._teardown()
        if load.partial:
            self.partial = True
        t0 = load.t0 if load.t0 is not None else (self.t0_est or self.epoch)
        if load.end is not None:
            self.end = float(load.end)
        elif self.partial and load.run_time:
            self.end = min(self.duration, float(load.run_time))
        if self.partial:
            self.notes.append("interrupted: requests still unanswered then are unfinished")
        summary = write_results(self, t0)
        if self.partial:
            raise KeyboardInterrupt
        return summary

    def _load(self) -> Any:
        """Run the load (the drain included); its :class:`~loadtests.LoadResult`."""
        from loadtests import run_load

        fronts = [e.listen for e in self.edges_into("client", self.topology.entry)]
        if len(fronts) > 1:  # several entry replicas: spread the client's connections
            self._front = RoundRobinFront(fronts)
            url = f"http://{self._front.start()}"
        else:
            url = f"http://{fronts[0]}"
        return run_load(self.topology.workload, url, duration=self.duration,
                        seed=self.seed, out_dir=self.out, web=self.web,
                        headroom=answer_time_bound(self.topology))

    # --- starting and stopping -------------------------------------------------------------
    def _start_proxy(self) -> None:
        from toxiproxy.api import APIConsumer

        if self.toxiproxy_url:
            parts = urlsplit(self.toxiproxy_url if "//" in self.toxiproxy_url
                             else "http://" + self.toxiproxy_url)
            if not parts.hostname or not parts.port:
                raise UsageError(f"--toxiproxy: expected http://HOST:PORT, not "
                                 f"{self.toxiproxy_url!r}")
            APIConsumer.host, APIConsumer.port = parts.hostname, parts.port
            import toxiproxy

            try:
                answered = toxiproxy.Toxiproxy().version() is not None
            except Exception:  # noqa: BLE001 - requests' connection errors and the like
                answered = False
            if not answered:
                raise RunError(f"no Toxiproxy API answers at {parts.hostname}:{parts.port}")
            return
        from chaos.proxy import ProxyServer

        try:
            self._server = ProxyServer("127.0.0.1", 0, seed=self.seed).start()
        except OSError as exc:
            raise RunError(f"cannot start the fault proxy: {exc}") from None
        APIConsumer.host, APIConsumer.port = self._server.host, self._server.port

    def _proxy(self, caller: str, callee: str, k: int, upstream: str) -> Edge:
        import toxiproxy

        name = f"{caller}->{callee}#{k}"
        try:
            proxy = toxiproxy.Toxiproxy().create(upstream=upstream, name=name,
                                                 listen="127.0.0.1:0")
        except Exception as exc:  # requests' connection errors, ProxyExists
            raise RunError(f"cannot create proxy {name}: {exc}") from None
        proxy.name = quote(name, safe="")  # '#' and '>' in URL paths
        listen = str(proxy.listen)
        if listen.endswith(":0"):
            raise RunError(f"proxy {name}: the Toxiproxy server did not report its port")
        edge = Edge(name, caller, callee, k, proxy, listen)
        self.edges.append(edge)
        return edge

    def initial_replicas(self, name: str) -> int:
        """Replicas a service starts with: ``replicas``, within the autoscaler's [min, max]."""
        spec = self.topology.services[name]
        if spec.autoscale is None:
            return spec.replicas
        return min(spec.autoscale.max, max(spec.autoscale.min, spec.replicas))

    def _start_services(self) -> None:
        """Replicas leaves first, then one proxy per (caller, balancer slot) into them. An
        autoscaled service has ``autoscale.max`` slots from the start, behind its relay."""
        callers: dict[str, list[str]] = defaultdict(list)
        for name in self.topology.services:
            for callee in _callees(self.topology, name):
                callers[callee].append(name)
        callers[self.topology.entry].append("client")
        for name in _order(self.topology):
            spec = self.topology.services[name]
            self.upstreams[name] = {callee: [e.listen for e in self.edges_into(name, callee)]
                                    for callee in _callees(self.topology, name)}
            now = time.time()
            for k in range(self.initial_replicas(name)):
                process = self._process(name, k)
                self.book.add(name, k, now, ready=True, process=process, log=self._log(name, k))
            if spec.autoscale is not None:
                relay = self.relays[name] = MemberRelay(name, spec.autoscale.max)
                slots = relay.start()
                self.refresh(name)
            else:
                slots = [rep.process.address for rep in self.book.existing(name)]
            for caller in callers.get(name, []):
                for k, address in enumerate(slots):
                    self._proxy(caller, name, k, address)

    def _process(self, name: str, k: int, port: int = 0) -> Any:
        from chaos.emulator.launch import start_replica

        began = time.monotonic()
        process = start_replica(self.topo_path, name, self._log(name, k), replica=k,
                                upstreams=self.upstreams[name], epoch=self.epoch,
                                seed=self.seed, port=port)
        self._startups.append(time.monotonic() - began)
        return process

    def startup_time(self) -> float:
        """The shortest time a replica process took to start listening in this run: a
        killed replica's restart begins this much before it is due, so it serves again
        after the service's ``restart``, not ``restart`` plus the process's own start."""
        return min(self._startups, default=0.0)

    def _log(self, name: str, k: int) -> str:
        return os.path.join(os.path.abspath(self.logs), f"{name}-{k}.csv")

    def refresh(self, service: str) -> None:
        """Tell an autoscaled service's relay which replicas are in the balancer now."""
        relay = self.relays.get(service)
        if relay is not None:
            relay.set_members({r.index: r.port for r in self.book.in_balancer(service)
                               if r.port is not None})

    def _teardown(self) -> None:
        """SIGTERM every replica (SIGCONT first if paused), stop the relays and the proxy."""
        with self._lock:
            self._closing = True
        self._closed.set()
        for timer in self.timers:
            timer.cancel()
        for thread in [*self.timers, *self._helpers]:
            thread.join(15.0)  # a replica starting now is stopped by its own thread
        procs = [rep.process for rep in self.book.all()
                 if rep.process is not None and not rep.exited]
        for rp in procs:
            try:
                if rp.process.poll() is None:
                    rp.process.send_signal(signal.SIGCONT)
                    rp.process.terminate()
            except OSError:
                pass
        for rp in procs:
            try:
                rp.stop()
            except (OSError, subprocess.SubprocessError):
                rp.process.kill()
        for relay in [self._front, *self.relays.values()]:
            if relay is not None:
                relay.stop()
        self._front = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        else:
            for edge in self.edges:
                try:
                    edge.proxy.destroy()
                except Exception:  # noqa: BLE001 - best effort on an outside server
                    pass

    # --- replicas coming and going (faults, autoscaler) ------------------------------------
    def grow(self, service: str, now: float) -> Replica | None:
        """Start one more replica of ``service``: it costs from ``now`` and joins the
        balancer after the autoscaler's ``cold_start``."""
        spec = self.topology.services[service].autoscale
        assert spec is not None
        with self.book.lock:
            held = {r.index for r in self.book.replicas.get(service, []) if not r.exited}
            free = [k for k in range(spec.max) if k not in held]
            if not free:
                return None
            rep = self.book.add(service, free[0], now, ready=False,
                                log=self._log(service, free[0]))
        self._helper(self._bring_up, (rep, now + spec.cold_start),
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

    def restart(self, a: Applied, rep: Replica) -> None:
        """A killed replica serves again on its port (the end of the kill's window)."""
        if self._stop.is_set() or rep.stopped is not None or rep.port is None:
            return
        try:
            process = self._process(rep.service, rep.index, port=rep.port)
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
        """The ``errors``/``slow`` faults active on the service reach a new replica too."""
        for body in list(self.admin_faults.get(rep.service, {}).values()):
            try:
                http("POST", rep.port, "/_faultmesh/faults", body)
            except OSError as exc:
                self.problem(f"fault {body['type']} on {rep.service}#{rep.index}: {exc}")

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
        entry = self.book.existing(self.topology.entry)[0].process
        give_up = time.time() + FIRST_REQUEST_WAIT
        while not self._stop.is_set() and time.time() < give_up:
            try:
                stats = http("GET", entry.port, "/_faultmesh/stats")
                if stats.get("arrived", 0) > 0:
                    break
            except OSError:
                pass
            self._stop.wait(0.01)
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

    def problem(self, message: str) -> None:
        """A fault that could not be applied as asked: warned about and kept in the summary."""
        self.notes.append(message)
        print(f"faultmesh live: warning: {message}", file=sys.stderr, flush=True)

    def _undo_all(self) -> None:
        with self._lock:
            for a in self.applied:
                if a.start is not None and a.end is None and a.fault.type != "kill":
                    faults.remove(self, a)
                    a.end = time.time()
