"""Hand-made result directories with answers worked out by hand (imported by test_reports_*).

``write_run(dir)`` writes "mini", a 60 s run (warmup 10 s) of client -> gateway -> llm with one
request every 0.1 s (600 requests, 500 measured) and an llm latency fault from 20 s to 30 s:

* latency 0.1 s before the fault, 1.0 s during it, 0.5 s from 30 s to 35 s, 0.1 s after;
* every 5th request arriving in [25 s, 30 s) fails (10 failures, all measured), and its
  gateway->llm call is retried once (a second failed attempt);
* so: availability 490/500 = 0.98, error rate 0.02, throughput 490/50 = 9.8 req/s,
  recovery_time 5 s (the [30, 35) window is slow, [35, 40) and [40, 45) are back),
  retry_amplification 1.02 (the worst edge, gateway->llm: 510 attempts for 500 calls asked;
  client->gateway: 1.0);
* gateway costs 0.36 USD/h (1 replica), llm 3.6 USD/h with 2 replicas, 3 from 20 s to 40 s:
  timeseries cost = 60 x 0.0001 + (40 x 2 + 20 x 3) x 0.001 = 0.146 USD;
* llm calls carry ttft = 0.05 s and tpot = 0.01 s (0.2 s and 0.04 s during the fault).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable

MINI_TOPOLOGY = """\
version: 1
name: mini
entry: gateway
workload: {rate: 10/s, duration: 60s, warmup: 10s}
services:
  gateway:
    calls: [{to: llm, timeout: 2s, retry: {attempts: 2}}]
    cost: {per_replica_hour: 0.36}
  llm:
    kind: llm
    replicas: 2
    llm: {max_batch: 4}
    cost: {per_replica_hour: 3.6}
scenarios:
  brownout:
    faults: [{type: latency, target: llm, start: 20s, duration: 10s, latency: 900ms}]
slos:
  - {name: chat p99, metric: latency_p99, max: 3s}
  - {name: availability, metric: availability, min: 99%}
  - {name: fault availability, metric: availability, min: 99%, window: fault}
  - {name: steady p99, metric: latency_p99, max: 150ms, window: steady}
  - {name: recovery, metric: recovery_time, max: 60s}
"""

REQUEST_COLUMNS = ["request_id", "start", "end", "latency", "status", "ok", "degraded",
                   "attempts", "error"]
CALL_COLUMNS = ["request_id", "caller", "callee", "replica", "attempt", "start", "end", "status",
                "ok", "error", "ttft", "tpot", "output_tokens"]
TS_COLUMNS = ["t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
              "throughput", "errors", "batch"]
FAULT_COLUMNS = ["type", "target", "start", "end", "parameters"]


def write_csv(path: str, columns: list[str], rows: Iterable[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})


def write_result(directory: str, *, summary: dict, requests: list[dict],
                 calls: list[dict] = (), timeseries: list[dict] = (), faults: list[dict] = (),
                 topology: str | None = None) -> str:
    """Write a result directory from rows (missing columns are left empty)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    write_csv(os.path.join(directory, "requests.csv"), REQUEST_COLUMNS, requests)
    write_csv(os.path.join(directory, "calls.csv"), CALL_COLUMNS, calls)
    write_csv(os.path.join(directory, "timeseries.csv"), TS_COLUMNS, timeseries)
    write_csv(os.path.join(directory, "faults.csv"), FAULT_COLUMNS, faults)
    if topology is not None:
        with open(os.path.join(directory, "topology.yaml"), "w", encoding="utf-8") as fh:
            fh.write(topology)
    return directory


def mini_latency(t: float, slow: float = 1.0) -> float:
    if 20 <= t < 30:
        return slow
    if 30 <= t < 35:
        return 0.5
    return 0.1


def write_run(directory: str, *, engine: str = "sim", scenario: str = "brownout", seed: int = 1,
              slow: float = 1.0, fault: bool = True, topology: str | None = MINI_TOPOLOGY) -> str:
    """The "mini" run described in the module docstring (``fault=False``: no fault at all)."""
    requests, calls = [], []
    for i in range(600):
        t = round(i * 0.1, 6)
        lat = mini_latency(t, slow) if fault else 0.1
        failed = fault and 25 <= t < 30 and i % 5 == 0
        requests.append({"request_id": i, "start": t, "end": t + lat, "latency": lat,
                         "status": 500 if failed else 200, "ok": not failed, "degraded": False,
                         "attempts": 1, "error": "llm 500" if failed else ""})
        calls.append({"request_id": i, "caller": "client", "callee": "gateway", "replica": 0,
                      "attempt": 1, "start": t, "end": t + lat, "status": 500 if failed else 200,
                      "ok": not failed})
        slow_llm = fault and 20 <= t < 30
        ttft, tpot = (0.2, 0.04) if slow_llm else (0.05, 0.01)
        tries = 2 if failed else 1
        for a in range(1, tries + 1):
            calls.append({"request_id": i, "caller": "gateway", "callee": "llm",
                          "replica": i % 2, "attempt": a, "start": t + 0.01,
                          "end": t + lat - 0.01, "status": 500 if failed else 200,
                          "ok": not failed, "ttft": ttft, "tpot": tpot, "output_tokens": 10})
    timeseries = []
    for t in range(60):
        llm_replicas = 3 if (fault and 20 <= t < 40) else 2
        timeseries.append({"t": t, "service": "gateway", "replicas": 1, "ready_replicas": 1,
                           "busy": 0.5, "queued": 0, "utilization": 0.5, "throughput": 10,
                           "errors": 0})
        timeseries.append({"t": t, "service": "llm", "replicas": llm_replicas,
                           "ready_replicas": llm_replicas, "busy": 1.0,
                           "queued": 4 if fault and 20 <= t < 30 else 0,
                           "utilization": 0.9 if fault and 20 <= t < 30 else 0.3,
                           "throughput": 10, "errors": 0, "batch": 2})
    faults = [{"type": "latency", "target": "llm", "start": 20, "end": 30,
               "parameters": json.dumps({"latency": 0.9})}] if fault else []
    summary = {"engine": engine, "topology": "mini", "scenario": scenario if fault else "baseline",
               "seed": seed, "duration": 60.0, "warmup": 10.0, "requests": 500,
               "ok": 490 if fault else 500, "degraded": 0,
               "availability": 0.98 if fault else 1.0, "throughput": 9.8,
               "cost": {"total": 0.146, "per_1k": 0.146 / 0.49, "wasted": 0.002,
                        "by_service": {"gateway": 0.006, "llm": 0.14}}}
    return write_result(directory, summary=summary, requests=requests, calls=calls,
                        timeseries=timeseries, faults=faults, topology=topology)
