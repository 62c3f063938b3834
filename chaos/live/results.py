"""A live run's result directory: the load generator's requests, the replicas' logs and the
fault windows merged into the result files (docs/results.md), and summary.json from them.

* ``requests.csv`` — the load generator's rows, with ``attempts`` = the call attempts made
  for the request anywhere in the topology, the client's own included (its rows in
  calls.csv), as the simulator counts them; ``error`` is the root cause the entry named.
* ``calls.csv`` — one ``client`` row per request (the entry replica that served it, the
  request's times and outcome), then every replica's call attempts, in the result's clock.
  A user's program is measured from the outside: the calls into it are its emulated
  callers' rows, its own calls are not logged.
* ``timeseries.csv`` — per service and second: ``replicas`` and ``ready_replicas`` from the
  replicas' actual lives (:class:`~chaos.live.book.ReplicaBook`, at the end of the second,
  as the simulator samples), ``busy``/``queued``/``throughput``/``errors``/``batch`` summed
  over the replicas' rows, ``utilization`` = their busy unit-seconds over the capacity of the
  ready replica-seconds of that second. A user's program (``command:``) logs nothing of
  its own: its rows have the replicas and the rest empty.
* ``faults.csv`` — the actual windows.
* ``live-logs/autoscaler.csv`` — every autoscaler decision (time, service, metric, ready and
  existing replicas, the count it set).
* ``summary.json`` — :func:`topologies.summary.summarize_run` over those tables, with the
  live facts: engine ``live``, the time reached, ``partial``, notes, and the replica-seconds
  of every replica's actual life (restarts and autoscaling included) for the cost.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .book import EXISTING, READY
from .util import num, read_csv, shifted, write_rows

if TYPE_CHECKING:
    from .run import LiveRun

__all__ = ["write_results", "CALL_COLUMNS", "TS_COLUMNS", "FAULT_COLUMNS", "REQUEST_COLUMNS"]

CALL_COLUMNS = ["request_id", "caller", "callee", "replica", "attempt", "start", "end",
                "status", "ok", "error", "ttft", "tpot", "output_tokens", "call"]
TS_COLUMNS = ["t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
              "throughput", "errors", "batch"]
FAULT_COLUMNS = ["type", "target", "start", "end", "parameters"]
REQUEST_COLUMNS = ["request_id", "start", "end", "latency", "status", "ok", "degraded",
                   "attempts", "error"]


def write_results(run: LiveRun, t0: float) -> dict[str, Any]:
    """Merge ``run``'s logs into its result directory (``t0``: the load's start, Unix
    time); returns the summary."""
    from topologies.files import atomic_write, atomic_write_text

    shift = run.epoch - t0  # replica time + shift = run time
    requests = read_csv(os.path.join(run.out, "requests.csv"))
    logs = _logs(run)
    calls = _client_rows(run, requests, logs) + _replica_rows(logs, shift)
    attempts: dict[str, int] = defaultdict(int)
    for row in calls:
        attempts[str(row[0])] += 1
    request_rows = [[r["request_id"], r["start"], r["end"], r["latency"], r["status"], r["ok"],
                     r["degraded"], attempts.get(r["request_id"], 1), r["error"]]
                    for r in requests]
    fault_rows = _fault_rows(run, t0)
    ts_rows = _timeseries(run, logs, shift, t0)
    for name, columns, rows in (("requests.csv", REQUEST_COLUMNS, request_rows),
                                ("calls.csv", CALL_COLUMNS, calls),
                                ("timeseries.csv", TS_COLUMNS, ts_rows),
                                ("faults.csv", FAULT_COLUMNS, fault_rows)):
        atomic_write(os.path.join(run.out, name),
                     lambda fh, c=columns, r=rows: write_rows(fh, c, r))
    if run.autoscaler.decisions:
        atomic_write(os.path.join(run.logs, "autoscaler.csv"), lambda fh: write_rows(
            fh, ["t", "service", "metric", "ready", "replicas", "target"],
            [[round(d[0] - t0, 6), d[1], d[2] if d[2] is None else round(d[2], 4), *d[3:]]
             for d in run.autoscaler.decisions]))
    summary = _summary(run, t0)
    atomic_write_text(os.path.join(run.out, "summary.json"),
                      json.dumps(summary, indent=2) + "\n")
    return summary


def _logs(run: LiveRun) -> dict[tuple[str, int], str]:
    """Each replica slot's call log (successive replicas of one slot append to it)."""
    return {(rep.service, rep.index): rep.log for rep in run.book.all() if rep.log}


def _client_rows(run: LiveRun, requests: list[dict[str, str]],
                 logs: dict[tuple[str, int], str]) -> list[list[Any]]:
    """The client's call of each request: to the entry replica whose log has its calls."""
    entry = run.topology.entry
    served: dict[str, int] = {}
    for (service, k), log in sorted(logs.items()):
        if service == entry:
            for row in read_csv(log):
                served.setdefault(row["request_id"], k)
    rows = []
    for r in requests:
        ok = 1 if r["ok"] in ("1", "True", "true") else 0
        rows.append([r["request_id"], "client", entry, served.get(r["request_id"], 0), 1,
                     r["start"], r["end"], r["status"], ok, r["error"], "", "", "", 0])
    return rows


def _replica_rows(logs: dict[tuple[str, int], str], shift: float) -> list[list[Any]]:
    rows = []
    for key in sorted(logs):
        for row in read_csv(logs[key]):
            row["start"] = shifted(row.get("start"), shift)
            row["end"] = shifted(row.get("end"), shift)
            rows.append([row.get(c, "") for c in CALL_COLUMNS])
    return rows


def _fault_rows(run: LiveRun, t0: float) -> list[list[Any]]:
    rows = []
    for a in run.applied:
        if a.start is None:
            continue
        end = a.end if a.end is not None else t0 + run.end
        params = {k: v for k, v in vars(a.fault).items()
                  if k not in ("type", "target", "start", "duration") and v is not None}
        if getattr(a, "by", None):  # fired by hand from the web tab (chaos.live.control)
            params["by"] = a.by  # type: ignore[attr-defined]
        rows.append([a.fault.type, a.fault.target, round(a.start - t0, 6),
                     round(min(end - t0, run.end), 6), json.dumps(params, sort_keys=True)])
    # what happened by itself (an OOM kill under a memory limit), as the simulator records it
    for kind, target, start, end, params in run.extra_faults:
        rows.append([kind, target, round(start - t0, 6), round(min(end - t0, run.end), 6),
                     json.dumps(params, sort_keys=True)])
    return rows


def _timeseries(run: LiveRun, logs: dict[tuple[str, int], str], shift: float,
                t0: float) -> list[list[Any]]:
    per_second: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
    for log in logs.values():
        for row in read_csv(log + ".ts.csv"):
            t = math.floor(float(row["t"]) + shift)
            if 0 <= t < run.end:
                per_second[(t, row["service"])].append(row)
    out = []
    book = run.book
    for t in range(math.ceil(run.end)):
        at = t0 + min(t + 1.0, run.end)
        for service in run.topology.services:
            rows = per_second.get((t, service), [])
            existing, ready = book.level_at(service, at)
            ready_seconds = book.integral(service, t0 + t, t0 + t + 1.0, READY)
            busy_units = sum(float(r["utilization"]) for r in rows if r.get("utilization"))
            batch = [float(r["batch"]) for r in rows if r.get("batch")]
            if service in run.user_services:  # measured from the outside: load unknown
                out.append([t, service, existing, ready, "", "", "", "", "", ""])
                continue
            out.append([t, service, existing, ready, _sum(rows, "busy"), _sum(rows, "queued"),
                        round(busy_units / ready_seconds, 4) if ready_seconds > 0 else 0.0,
                        round(_sum(rows, "throughput"), 3), round(_sum(rows, "errors"), 3),
                        num(sum(batch)) if batch else ""])
    return out


def _sum(rows: list[dict[str, str]], column: str) -> float:
    return sum(float(r[column]) for r in rows if r.get(column))


def _summary(run: LiveRun, t0: float) -> dict[str, Any]:
    import pandas as pd

    from topologies.summary import RunFacts, summarize_run

    warmup = min(float(run.topology.workload.warmup), run.end)
    stop = min(run.duration, run.end)
    replica_seconds = {name: run.book.integral(name, t0 + warmup, t0 + stop, EXISTING)
                       for name in run.topology.services}
    facts = RunFacts(engine="live", end=run.end, scenario=run.scenario.name, seed=run.seed,
                     duration=run.duration, partial=run.partial, notes=tuple(run.notes),
                     replica_seconds=replica_seconds)
    tables = [pd.read_csv(os.path.join(run.out, name))
              for name in ("requests.csv", "calls.csv", "timeseries.csv")]
    return summarize_run(run.topology, *tables, facts)
