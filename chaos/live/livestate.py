"""What the faultmesh tab of Locust's web UI shows about a live run while it runs: the call
graph laid out once, each service's live state, the fault timeline and the SLOs so far
(served as ``GET /state`` by :mod:`chaos.live.control`).

Where each figure comes from, chosen for being cheap and correct while the run goes on:

* replicas ready / existing: the run's :class:`~chaos.live.book.ReplicaBook`;
* request and error rates of an emulated service: the counters every replica's
  ``/_faultmesh/stats`` reports (``arrived``, ``failed``), differenced over the looks of the
  last :data:`RATE_WINDOW` seconds (at least half a second apart), per second;
* a service's recent p99: the calls *into* it over the last :data:`RECENT` seconds, read from
  its callers' call logs (``live-logs/<service>-<k>.csv``, each read on from where the last
  look stopped, so a look costs only the new rows). The entry's callers are the load
  generator's users, whose latencies reach this process only as the load's own recent p99
  (``loadtests`` progress counts), which is what the entry shows;
* the SLOs: judged on the load's counts so far (``availability``, ``error_rate``,
  ``throughput``) and its recent latency quantiles (``latency_*``); the other metrics
  (cost, recovery, retries) wait for the report and read ``pending``.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .util import http

if TYPE_CHECKING:
    from .run import LiveRun

__all__ = ["LiveState", "RECENT", "RATE_WINDOW", "layout"]

#: Seconds of calls a service's recent p99 covers.
RECENT = 10.0
#: Seconds of counters a service's request and error rates are averaged over.
RATE_WINDOW = 2.0


def layout(run: LiveRun) -> dict[str, Any]:
    """The call graph with node positions in [0, 1]: one column per call depth from the entry
    (``topologies.graph.layers``), the services of a column spread evenly down it."""
    from topologies.graph import layers

    from .wiring import callees

    depth = layers(run.topology)
    columns: dict[int, list[str]] = {}
    for name in run.topology.services:
        columns.setdefault(depth.get(name, 0), []).append(name)
    last = max(columns, default=0)
    nodes = []
    for d, names in sorted(columns.items()):
        for i, name in enumerate(names):
            nodes.append({"name": name, "x": (d + 0.5) / (last + 1),
                          "y": (i + 0.5) / len(names), "entry": name == run.topology.entry,
                          "user": name in run.user_services})
    edges = [{"from": name, "to": callee} for name in run.topology.services
             for callee in callees(run.topology, name)]
    return {"services": nodes, "edges": edges}


class LiveState:
    """The figures of one live run for its web tab; :meth:`snapshot` may be called from any
    thread (looks are serialized: each reads on from the previous one)."""

    def __init__(self, run: LiveRun) -> None:
        self.run = run
        self.graph = layout(run)
        self._lock = threading.Lock()
        # per replica slot: (t, arrived, failed) looks of the last RATE_WINDOW seconds
        self._history: dict[str, deque[tuple[float, float, float]]] = {}
        self._offsets: dict[str, int] = {}                         # call log: bytes read
        self._recent: dict[str, deque[tuple[float, float]]] = {}   # callee: (end, latency)

    def now(self) -> float | None:
        """Run seconds since the load's first request (the scenario's fault times count
        from there), or None before it."""
        t0 = self.run.t0_est
        return None if t0 is None else time.time() - t0

    def snapshot(self) -> dict[str, Any]:
        """Everything ``GET /state`` answers."""
        with self._lock:
            services = self._services()
        run = self.run
        counts = dict(getattr(run, "load_counts", None) or {})
        return {"topology": run.topology.name, "scenario": run.scenario.name,
                "duration": run.duration, "now": self.now(), **self.graph,
                "state": services, "faults": self.timeline(), "slos": self.slos(counts),
                "load": counts, "ended": run._stop.is_set(),
                "report": os.path.abspath(os.path.join(run.out, "report.html")),
                "report_written": os.path.exists(os.path.join(run.out, "report.html"))
                and run.results_written}

    def timeline(self) -> list[dict[str, Any]]:
        """Every fault of the run, scheduled or fired by hand, in run seconds."""
        run, out = self.run, []
        t0 = run.t0_est
        names = set(_active_names(run))
        for i, a in enumerate(list(run.applied)):
            f = a.fault
            by = getattr(a, "by", "scenario")
            active = a.start is not None and a.end is None and f"{f.type} on {f.target}" in names
            out.append({
                "index": i, "type": f.type, "target": f.target, "by": by,
                "start": f.start, "end": f.end,
                "started": None if a.start is None or t0 is None else round(a.start - t0, 3),
                "ended": None if a.end is None or t0 is None else round(a.end - t0, 3),
                "active": active, "params": _params(f)})
        if not run.applied:  # before the scheduler took them up: the scenario's plan
            out = [{"index": None, "type": f.type, "target": f.target, "by": "scenario",
                    "start": f.start, "end": f.end, "started": None, "ended": None,
                    "active": False, "params": _params(f)} for f in run.scenario.faults]
        return out

    def slos(self, counts: dict[str, Any]) -> list[dict[str, Any]]:
        """Each SLO with its value so far and whether it holds (None: not judged yet)."""
        answered = int(counts.get("answered") or 0)
        errors = int(counts.get("errors") or 0)
        elapsed = float(counts.get("elapsed") or 0.0)
        quantiles = counts.get("latency") or {}
        out = []
        for slo in self.run.topology.slos:
            value: float | None = None
            if slo.metric in ("availability", "error_rate") and answered:
                share = errors / answered
                value = share if slo.metric == "error_rate" else 1.0 - share
            elif slo.metric == "throughput" and elapsed > 0:
                value = (answered - errors) / elapsed
            elif slo.metric.startswith("latency_") and slo.metric[8:] in quantiles:
                value = quantiles[slo.metric[8:]]
            known = value is not None and slo.window == "all"
            out.append({"name": slo.name or slo.metric, "metric": slo.metric, "op": slo.op,
                        "limit": slo.limit, "window": slo.window, "value": value,
                        "holds": slo.holds(value) if known and value is not None else None,
                        "status": ("pending" if not known else
                                   "pass" if slo.holds(value) else "fail")})  # type: ignore[arg-type]
        return out

    # --- per service ---------------------------------------------------------------------
    def _services(self) -> dict[str, dict[str, Any]]:
        run, now = self.run, time.time()
        self._read_logs()
        load_p99 = ((getattr(run, "load_counts", None) or {}).get("latency") or {}).get("p99")
        out: dict[str, dict[str, Any]] = {}
        for name in run.topology.services:
            existing, ready = run.book.counts(name)
            row: dict[str, Any] = {"replicas": existing, "ready": ready,
                                   "paused": sum(r.paused for r in run.book.existing(name)),
                                   "rate": None, "error_rate": None, "p99": None}
            if name not in run.user_services:
                self._rates(name, now, row)
            if name == run.topology.entry:
                row["p99"] = load_p99
            else:
                row["p99"] = self._p99(name, now - run.epoch)
            row["faults"] = [n for n in _active_names(run) if _hits(n, name)]
            row["status"] = ("down" if ready == 0 else
                             "faulted" if row["faults"] or ready < existing else "ok")
            out[name] = row
        return out

    def _rates(self, name: str, now: float, row: dict[str, Any]) -> None:
        """Requests and errors per second into ``name`` over about the last
        :data:`RATE_WINDOW` seconds, from each replica's counters (a replica restarted since
        counts from zero again)."""
        arrived = failed = 0.0
        seen = False
        for rep in self.run.book.existing(name):
            if rep.port is None or rep.down or rep.paused:
                continue
            try:
                stats = http("GET", rep.port, "/_faultmesh/stats", timeout=0.5)
            except (OSError, ValueError):
                continue
            key = f"{name}#{rep.index}"
            a, f = float(stats.get("arrived") or 0), float(stats.get("failed") or 0)
            history = self._history.setdefault(key, deque())
            if history and a < history[-1][1]:  # restarted: its counters began again
                history.clear()
            history.append((now, a, f))
            while len(history) > 1 and history[1][0] <= now - RATE_WINDOW:
                history.popleft()
            t, a0, f0 = history[0]
            if now - t >= 0.5:
                seen = True
                arrived += (a - a0) / (now - t)
                failed += (f - f0) / (now - t)
        if seen:
            row["rate"], row["error_rate"] = round(arrived, 2), round(failed, 2)

    def _read_logs(self) -> None:
        """Read on every call log from where the last look stopped (whole lines only)."""
        for rep in self.run.book.all():
            path = rep.log
            if not path:
                continue
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except OSError:
                continue
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                continue
            self._offsets[path] = offset + cut
            for row in csv.reader(io.StringIO(data[:cut].decode("utf-8", "replace"))):
                if len(row) < 7 or row[0] == "request_id" or not row[6]:
                    continue
                try:
                    start, end = float(row[5]), float(row[6])
                except ValueError:
                    continue
                self._recent.setdefault(row[2], deque()).append((end, end - start))

    def _p99(self, service: str, now: float) -> float | None:
        calls = self._recent.get(service)
        if not calls:
            return None
        while calls and calls[0][0] < now - RECENT:
            calls.popleft()
        if not calls:
            return None
        xs = sorted(x for _, x in calls)
        return round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 6)


def _params(f: Any) -> dict[str, Any]:
    """A fault's own parameters (as faults.csv lists them)."""
    return {k: v for k, v in vars(f).items()
            if k not in ("type", "target", "start", "duration") and v is not None}


def _active_names(run: LiveRun) -> list[str]:
    from .watch import active_faults

    return active_faults(run.topology, run.applied)


def _hits(name: str, service: str) -> bool:
    """Whether the fault named ``<type> on <target>`` acts on ``service``."""
    target = name.split(" on ", 1)[1]
    return target.split("->", 1)[-1].strip() == service
