"""The live engine: a topology run as real local processes, loaded by Locust, with faults
injected through a Toxiproxy proxy on every dependency edge.

:class:`LiveRun` models one live run end to end. It starts the fault proxy (the built-in
:class:`~chaos.proxy.ProxyServer`, or a real Toxiproxy given by URL), one emulator process
per service replica from the leaves of the call graph up, one proxy per (caller, callee
replica) named ``caller->callee#k`` (the client's are ``client->entry#k``), then offers the
workload with :func:`loadtests.run_load` while a scheduler thread applies and removes the
scenario's faults. At the end every replica gets SIGTERM (it flushes its logs), the proxy
server stops, and the logs are merged into DESIGN's result directory: the same files the
simulator writes, so reports and gates work unchanged.

Times in the result files are seconds since the load generator's start (its ``t0``): the
replicas log against a provisional epoch and are shifted onto it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from topologies.errors import RunError, UsageError
from topologies.model import Call, Fault, ParallelGroup, Topology

__all__ = ["LiveRun", "NETWORK_FAULTS", "EMULATOR_FAULTS", "PROCESS_FAULTS"]

#: Faults applied as toxics on proxies (``down`` and ``partition`` disable proxies).
NETWORK_FAULTS = ("latency", "bandwidth", "down", "timeout", "reset_peer", "partition")
#: Faults the emulator applies itself (its admin API).
EMULATOR_FAULTS = ("errors", "slow")
#: Faults done to replica processes.
PROCESS_FAULTS = ("kill", "pause")

#: Seconds the fault scheduler waits for the load's first request before it starts anyway.
FIRST_REQUEST_WAIT = 40.0

_CALL_COLUMNS = ["request_id", "caller", "callee", "replica", "attempt", "start", "end",
                 "status", "ok", "error", "ttft", "tpot", "output_tokens", "call"]
_TS_COLUMNS = ["t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
               "throughput", "errors", "batch"]
_FAULT_COLUMNS = ["type", "target", "start", "end", "parameters"]


@dataclass
class _Edge:
    """One proxy: the connection from ``caller`` to replica ``replica`` of ``callee``."""

    name: str
    caller: str
    callee: str
    replica: int
    proxy: Any
    listen: str


@dataclass
class _Applied:
    """A fault as it actually ran: wall-clock window and what was done to undo it."""

    fault: Fault
    start: float | None = None
    end: float | None = None
    undo: list[Any] = field(default_factory=list)


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
        self.replicas: dict[tuple[str, int], Any] = {}
        self.upstreams: dict[str, dict[str, list[str]]] = {}
        self.edges: list[_Edge] = []
        self.applied: list[_Applied] = []
        self.epoch = 0.0
        self.t0_est: float | None = None
        self.partial = False
        self.notes: list[str] = []
        self.end = self.duration  # the run time reached (shorter when interrupted)
        self._server: Any = None
        self._front: _RoundRobin | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Start everything, load it, inject the faults, stop everything, write the results.

        Returns the summary. Ctrl-C during the load writes what was collected (``partial``)
        and then raises KeyboardInterrupt; nothing the run started is left running.
        """
        import topologies
        from topologies.files import atomic_write_text

        shutil.rmtree(self.logs, ignore_errors=True)  # a previous run's logs would be appended to
        os.makedirs(self.logs, exist_ok=True)
        topo_path = os.path.join(self.out, "topology.yaml")
        atomic_write_text(topo_path, topologies.dump(self.topology))
        self.epoch = time.time()
        load = None
        t0: float | None = None
        try:
            self._start_proxy()
            self._start_services(topo_path)
            scheduler = threading.Thread(target=self._schedule, name="faultmesh-faults",
                                         daemon=True)
            scheduler.start()
            try:
                load, t0 = self._load()
            finally:
                self._stop.set()
                scheduler.join(10.0)
                self._undo_all()
        except KeyboardInterrupt:
            self.partial = True
            if load is None:
                raise
        finally:
            self._teardown()
        if load.partial:
            self.partial = True
        t0 = t0 if t0 is not None else (self.t0_est or self.epoch)
        if self.partial and load.run_time:
            self.end = min(self.duration, float(load.run_time))
        summary = self._write(t0)
        if self.partial:
            raise KeyboardInterrupt
        return summary

    def _load(self) -> tuple[Any, float | None]:
        """Run the load; also returns the load generator's start (Unix time) when known."""
        from loadtests import run_load

        fronts = [e.listen for e in self.edges_into("client", self.topology.entry)]
        if len(fronts) > 1:  # several entry replicas: spread the client's connections
            self._front = _RoundRobin(fronts)
            url = f"http://{self._front.start()}"
        else:
            url = f"http://{fronts[0]}"
        result = run_load(self.topology.workload, url, duration=self.duration,
                          seed=self.seed, out_dir=self.out, web=self.web,
                          headroom=answer_time_bound(self.topology))
        return result, result.t0

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

    def _proxy(self, caller: str, callee: str, k: int, upstream: str) -> _Edge:
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
        edge = _Edge(name, caller, callee, k, proxy, listen)
        self.edges.append(edge)
        return edge

    def _start_services(self, topo_path: str) -> None:
        from chaos.emulator.launch import start_replica

        callers: dict[str, list[str]] = defaultdict(list)
        for name in self.topology.services:
            for callee in _callees(self.topology, name):
                callers[callee].append(name)
        callers[self.topology.entry].append("client")
        for name in _order(self.topology):
            ups = {callee: [e.listen for e in self.edges_into(name, callee)]
                   for callee in _callees(self.topology, name)}
            self.upstreams[name] = ups
            for k in range(self.topology.services[name].replicas):
                self.replicas[(name, k)] = start_replica(
                    topo_path, name, self._log(name, k), replica=k, upstreams=ups,
                    epoch=self.epoch, seed=self.seed)
                for caller in callers.get(name, []):
                    self._proxy(caller, name, k, self.replicas[(name, k)].address)

    def _log(self, name: str, k: int) -> str:
        return os.path.join(os.path.abspath(self.logs), f"{name}-{k}.csv")

    def _teardown(self) -> None:
        """SIGTERM every replica (SIGCONT first if paused), stop the proxy server."""
        for timer in self._timers:
            timer.cancel()
        with self._lock:
            procs = list(self.replicas.values())
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
        if self._front is not None:
            self._front.stop()
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

    # --- faults ----------------------------------------------------------------------------
    def edges_into(self, caller: str | None, callee: str) -> list[_Edge]:
        """The proxies into ``callee`` (from ``caller``, or from anyone when None)."""
        return [e for e in self.edges
                if e.callee == callee and (caller is None or e.caller == caller)]

    def _target_edges(self, target: str) -> list[_Edge]:
        if "->" in target:
            caller, callee = target.split("->", 1)
            return self.edges_into(caller.strip(), callee.strip())
        return self.edges_into(None, target)

    def _target_service(self, target: str) -> str:
        return target.split("->", 1)[1].strip() if "->" in target else target

    def _schedule(self) -> None:
        """Wait for the load to start (the entry's first request), then apply each fault at
        its start and remove it at its end."""
        entry = self.replicas[(self.topology.entry, 0)]
        give_up = time.time() + FIRST_REQUEST_WAIT
        while not self._stop.is_set() and time.time() < give_up:
            try:
                stats = _http("GET", entry.port, "/_faultmesh/stats")
                if stats.get("arrived", 0) > 0:
                    break
            except OSError:
                pass
            self._stop.wait(0.01)
        self.t0_est = time.time()
        events: list[tuple[float, int, _Applied]] = []
        for f in self.scenario.faults:
            a = _Applied(f)
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
                        self._apply(a)
                    elif a.start is not None and a.end is None:
                        self._remove(a)
                        a.end = time.time()
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    self._problem(f"fault {a.fault.type} on {a.fault.target}: {exc}")

    def _problem(self, message: str) -> None:
        """A fault that could not be applied as asked: warned about and kept in the summary."""
        self.notes.append(message)
        print(f"faultmesh live: warning: {message}", file=sys.stderr, flush=True)

    def _undo_all(self) -> None:
        with self._lock:
            for a in self.applied:
                if a.start is not None and a.end is None and a.fault.type != "kill":
                    self._remove(a)
                    a.end = time.time()

    def _apply(self, a: _Applied) -> None:
        f = a.fault
        tag = f"f{self.applied.index(a)}_{f.type}"
        service = self._target_service(f.target)
        if f.type in ("latency", "bandwidth", "timeout", "reset_peer"):
            attributes: dict[str, int] = {}
            if f.type == "latency":
                attributes = {"latency": round(1000 * (f.latency or 0.0)),
                              "jitter": round(1000 * (f.jitter or 0.0))}
            elif f.type == "bandwidth":
                attributes = {"rate": max(1, round((f.rate or 0.0) / 1024))}
            elif f.type == "timeout":
                attributes = {"timeout": round(1000 * (f.timeout or 0.0))}
            else:
                attributes = {"timeout": round(1000 * (f.timeout or 0.0))}
            for e in self._target_edges(f.target):
                e.proxy.add_toxic(type=f.type, name=tag, stream="downstream",
                                  attributes=attributes)
                a.undo.append(("toxic", e, tag))
                if tag not in e.proxy.toxics():  # the client does not raise on errors
                    self._problem(f"proxy {e.name} refused the {f.type} toxic {attributes}")
        elif f.type == "down":
            for e in self._target_edges(f.target):
                e.proxy.disable()
                a.undo.append(("enable", e))
        elif f.type == "partition":
            for k in self._chosen(service, f.replicas):
                for e in self.edges_into(None, service):
                    if e.replica == k:
                        e.proxy.disable()
                        a.undo.append(("enable", e))
        elif f.type in EMULATOR_FAULTS:
            body = ({"type": "errors", "rate": 1.0 if f.rate is None else f.rate,
                     "status": f.status or 500} if f.type == "errors"
                    else {"type": "slow", "factor": f.factor or 1.0})
            for k in range(self.topology.services[service].replicas):
                rp = self.replicas[(service, k)]
                _http("POST", rp.port, "/_faultmesh/faults", body)
                a.undo.append(("admin", rp.port, f.type))
        elif f.type == "pause":
            for k in self._chosen(service, f.replicas):
                rp = self.replicas[(service, k)]
                rp.process.send_signal(signal.SIGSTOP)
                a.undo.append(("cont", rp))
        elif f.type == "kill":
            for k in self._chosen(service, f.replicas or 1):
                rp = self.replicas[(service, k)]
                rp.process.kill()
                rp.process.wait()
                restart = self.topology.services[service].restart
                timer = threading.Timer(restart, self._restart, args=(a, service, k, rp.port))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
        else:
            raise UsageError(f"fault type {f.type!r} is not supported by the live engine")

    def _chosen(self, service: str, n: int | None) -> list[int]:
        total = self.topology.services[service].replicas
        return list(range(total if n is None else min(n, total)))

    def _restart(self, a: _Applied, service: str, k: int, port: int) -> None:
        from chaos.emulator.launch import start_replica

        if self._stop.is_set():
            return
        topo_path = os.path.join(self.out, "topology.yaml")
        try:
            rp = start_replica(topo_path, service, self._log(service, k), replica=k,
                               upstreams=self.upstreams[service], epoch=self.epoch,
                               seed=self.seed, port=port)
        except RunError:
            return
        with self._lock:
            self.replicas[(service, k)] = rp
            a.end = time.time()
            if self._stop.is_set():  # the run ended while it was starting
                rp.stop()

    def _remove(self, a: _Applied) -> None:
        for item in a.undo:
            try:
                if item[0] == "toxic":
                    item[1].proxy.destroy_toxic(item[2])
                elif item[0] == "enable":
                    item[1].proxy.enable()
                elif item[0] == "admin":
                    _http("DELETE", item[1], f"/_faultmesh/faults/{item[2]}")
                elif item[0] == "cont":
                    item[1].process.send_signal(signal.SIGCONT)
            except (OSError, ProcessLookupError):
                pass
        a.undo.clear()

    # --- results ---------------------------------------------------------------------------
    def _write(self, t0: float) -> dict[str, Any]:
        """Merge the logs into the result directory; returns the summary."""
        from topologies.files import atomic_write, atomic_write_text

        shift = self.epoch - t0  # replica time + shift = run time
        requests = _read_csv(os.path.join(self.out, "requests.csv"))
        # which entry replica served a request: the one whose log has its calls (else 0)
        served: dict[str, int] = {}
        for k in range(self.topology.services[self.topology.entry].replicas):
            for row in _read_csv(self._log(self.topology.entry, k)):
                served.setdefault(row["request_id"], k)
        calls: list[list[Any]] = []
        for r in requests:
            ok = 1 if r["ok"] in ("1", "True", "true") else 0
            calls.append([r["request_id"], "client", self.topology.entry,
                          served.get(r["request_id"], 0), 1, r["start"],
                          r["end"], r["status"], ok, r["error"], "", "", "", 0])
        ts: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
        for (name, k) in sorted(self.replicas):
            log = self._log(name, k)
            for row in _read_csv(log):
                row["start"] = _shifted(row.get("start"), shift)
                row["end"] = _shifted(row.get("end"), shift)
                calls.append([row.get(c, "") for c in _CALL_COLUMNS])
            for row in _read_csv(log + ".ts.csv"):
                t = math.floor(float(row["t"]) + shift)
                if 0 <= t < self.end:
                    ts[(t, row["service"])].append(row)
        fault_rows = []
        for a in self.applied:
            if a.start is None:
                continue
            end = a.end if a.end is not None else t0 + self.end
            params = {k: v for k, v in vars(a.fault).items()
                      if k not in ("type", "target", "start", "duration") and v is not None}
            fault_rows.append([a.fault.type, a.fault.target, round(a.start - t0, 6),
                               round(min(end - t0, self.end), 6),
                               json.dumps(params, sort_keys=True)])
        ts_rows = []
        for t in range(math.ceil(self.end)):
            for service, spec in self.topology.services.items():
                rows = ts.get((t, service), [])
                n = len(rows)
                up, ready = self._up(service, spec.replicas, t + 0.5, fault_rows)
                batch = [float(r["batch"]) for r in rows if r.get("batch")]
                ts_rows.append([t, service, up, ready, _sum(rows, "busy"),
                                _sum(rows, "queued"),
                                round(_sum(rows, "utilization") / n, 4) if n else 0.0,
                                round(_sum(rows, "throughput"), 3),
                                round(_sum(rows, "errors"), 3),
                                _num(sum(batch)) if batch else ""])
        for name, columns, rows in (("calls.csv", _CALL_COLUMNS, calls),
                                    ("timeseries.csv", _TS_COLUMNS, ts_rows),
                                    ("faults.csv", _FAULT_COLUMNS, fault_rows)):
            atomic_write(os.path.join(self.out, name),
                         lambda fh, c=columns, r=rows: _write_rows(fh, c, r))
        summary = self._summary(requests, calls, ts_rows)
        atomic_write_text(os.path.join(self.out, "summary.json"),
                          json.dumps(summary, indent=2) + "\n")
        return summary

    def _up(self, service: str, total: int, at: float,
            fault_rows: list[list[Any]]) -> tuple[int, int]:
        """Replica processes of ``service`` up, and up and not paused, at run time ``at``
        (from the actual kill and pause windows)."""
        down = paused = 0
        for kind, target, start, end, params in fault_rows:
            if target != service or not start <= at < end:
                continue
            n = min(int(json.loads(params).get("replicas") or 1), total)
            if kind == "kill":
                down += n
            elif kind == "pause":
                paused += n
        up = max(0, total - down)
        return up, max(0, up - paused)

    def _summary(self, requests: list[dict[str, str]], calls: list[list[Any]],
                 ts_rows: list[list[Any]]) -> dict[str, Any]:
        import numpy as np

        end = self.end
        warmup = min(float(self.topology.workload.warmup), end)
        span = max(end - warmup, 1e-12)
        win = [r for r in requests if warmup <= float(r["start"]) < end]
        ok = [r for r in win if r["ok"] in ("1", "True", "true")]
        unfinished = sum(1 for r in win if r["error"] == "unfinished")
        answered = len(win) - unfinished
        lat = np.array([float(r["latency"]) for r in ok if r["latency"]], dtype=float)
        services: dict[str, Any] = {}
        by_service: dict[str, float] = {}
        for name, spec in self.topology.services.items():
            mine = [r for r in ts_rows if r[1] == name and warmup <= r[0] < end]
            replica_seconds = (sum(r[2] for r in mine) if mine else spec.replicas * span)
            by_service[name] = replica_seconds * spec.cost.per_replica_hour / 3600.0
            c = [row for row in calls if row[2] == name and row[5] != ""
                 and warmup <= float(row[5]) < end]
            c_ok = [row for row in c if str(row[8]) in ("1", "True", "true")]
            good = np.array([float(row[6]) - float(row[5]) for row in c_ok if row[6] != ""])
            services[name] = {
                "utilization": (float(np.mean([r[6] for r in mine])) if mine else None),
                "calls": len(c),
                "errors": sum(1 for row in c if str(row[8]) not in ("1", "True", "true")
                              and row[9] != "unfinished"),
                "retries": sum(1 for row in c if str(row[4]) not in ("", "1")),
                "latency_p99": float(np.percentile(good, 99)) if good.size else None,
                "replicas_mean": float(np.mean([r[2] for r in mine])) if mine else None,
                "replicas_max": int(max(r[2] for r in mine)) if mine else spec.replicas,
                "cost": by_service[name],
            }
        total = float(sum(by_service.values()))
        n_ok = len(ok)
        return _clean({
            "engine": "live",
            "topology": self.topology.name,
            "scenario": self.scenario.name,
            "seed": self.seed,
            "duration": end,
            "warmup": warmup,
            "partial": self.partial,
            "requests": len(win),
            "ok": n_ok,
            "degraded": sum(1 for r in ok if r["degraded"] in ("1", "True", "true")),
            "unfinished": unfinished,
            "availability": n_ok / answered if answered else None,
            "error_rate": 1.0 - n_ok / answered if answered else None,
            "throughput": n_ok / span,
            "latency": _percentiles(lat),
            "cost": {"total": total, "per_1k": total / (n_ok / 1000.0) if n_ok else None,
                     "wasted": 0.0, "wasted_share": 0.0, "by_service": by_service,
                     "wasted_by_service": {n: 0.0 for n in by_service}},
            "services": services,
            "notes": list(self.notes),
        })


class _RoundRobin:
    """A TCP front for the entry's proxies: each new client connection goes to the next one
    in turn (connection-level round robin; the load's keep-alive connections stay put)."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self._next = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> str:
        """Listen on a free 127.0.0.1 port in a daemon thread; returns ``host:port``."""
        ready = threading.Event()
        address: list[str] = []

        async def main() -> None:
            self._closing = asyncio.Event()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            address.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
            ready.set()
            await self._closing.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            finally:
                ready.set()
                self._loop.close()

        self._thread = threading.Thread(target=run, name="faultmesh-entry-rr", daemon=True)
        self._thread.start()
        ready.wait(10.0)
        if not address:
            raise RunError("cannot start the round-robin front of the entry's replicas")
        return address[0]

    def stop(self) -> None:
        if self._loop is not None and self._closing is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._closing.set)
            except RuntimeError:  # the loop already ended
                pass
        if self._thread is not None:
            self._thread.join(10.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        host, _, port = self.upstreams[self._next % len(self.upstreams)].rpartition(":")
        self._next += 1
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            await asyncio.wait([asyncio.ensure_future(_pipe(reader, up_writer)),
                                asyncio.ensure_future(_pipe(up_reader, writer))],
                               return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


# --- helpers -------------------------------------------------------------------------------
def _http(method: str, port: int, path: str, body: dict | None = None) -> dict:
    """One admin API request to a replica on 127.0.0.1; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=2.0) as resp:
        text = resp.read()
    return json.loads(text) if text else {}


def _read_csv(path: str) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def _write_rows(fh: Any, columns: list[str], rows: list[list[Any]]) -> None:
    out = csv.writer(fh, lineterminator="\n")
    out.writerow(columns)
    out.writerows([[_num(v) if isinstance(v, float) else v for v in row] for row in rows])


def _num(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _shifted(value: str | None, shift: float) -> str:
    if value in (None, ""):
        return ""
    return _num(float(value) + shift)


def _sum(rows: list[dict[str, str]], column: str) -> float:
    return sum(float(r[column]) for r in rows if r.get(column))


def _percentiles(x: Any) -> dict[str, float | None]:
    import numpy as np

    if x.size == 0:
        return {k: None for k in ("mean", "p50", "p90", "p95", "p99", "p999", "max")}
    q = np.percentile(x, [50, 90, 95, 99, 99.9])
    return {"mean": float(x.mean()), "p50": float(q[0]), "p90": float(q[1]),
            "p95": float(q[2]), "p99": float(q[3]), "p999": float(q[4]),
            "max": float(x.max())}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
