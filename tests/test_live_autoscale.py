"""``faultmesh live`` autoscales with the simulator's rule, on 127.0.0.1: a gateway calls an
autoscaled ``api`` (1 replica of 2 workers, 150 ms per request, target utilization 0.7,
interval 4 s, cold start 1 s, max 3) at 12 requests/s for 9 s.

Worked out: one replica is 12 x 0.15 / 2 = 90 % busy; the first interval holds the load's
first second, while Locust's users are still starting (~half the rate), so the first
decision reads ~0.8 and wants ceil(1 x 0.8 / 0.7) = 2 replicas. The second interval has one
replica ready for ~1.2 s (its cold start and its process's start) and two for ~2.8 s:
4 x 1.8 busy worker-seconds over 2 x 6.8 worker-seconds = 0.53, and ceil(2 x 0.53 / 0.7) =
2 holds (three would need over 70 %, 30 % above the mean: far beyond the Poisson noise of
48 arrivals).

What is measured: timeseries ``replicas`` goes from 1 to 2 and never higher; ``ready_replicas``
reaches 2 no earlier (the new replica costs before it serves); the new replica (slot 1)
answers the gateway's calls; every request is answered; the cost counts the new replica from
its start; no process is left. About 20 s.
"""

from __future__ import annotations

import json
import os

import pytest
from live_helpers import leftovers, live_cli, rows

# a live run long enough for the autoscaler to act (~11 s): CI runs it, the quick loop does not
pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: scaling
entry: gateway
workload: {model: open, rate: 12/s, duration: 9s, warmup: 0s}
services:
  gateway:
    workers: 64
    calls:
      - {to: api, timeout: 5s}
  api:
    replicas: 1
    workers: 2
    latency: {dist: constant, value: 150ms}
    cost: {per_replica_hour: 3600}       # 1 USD per replica-second
    autoscale: {metric: utilization, target: 0.7, min: 1, max: 3, interval: 4s,
                cold_start: 1s, cooldown: 60s}
"""


def test_an_autoscaled_service_grows_from_one_to_two_replicas_under_load(tmp_path) -> None:
    code, output, out = live_cli(tmp_path, "scaling.yaml", TOPOLOGY, None)
    assert code == 0, output
    ts = [r for r in rows(os.path.join(out, "timeseries.csv")) if r["service"] == "api"]
    replicas = {int(r["t"]): int(r["replicas"]) for r in ts}
    ready = {int(r["t"]): int(r["ready_replicas"]) for r in ts}
    assert replicas[0] == 1 and max(replicas.values()) == 2
    grown = min(t for t, n in replicas.items() if n == 2)
    serving = min(t for t, n in ready.items() if n == 2)
    assert 3 <= grown <= 6 and serving >= grown
    assert all(ready[t] <= replicas[t] for t in ready)

    calls = [c for c in rows(os.path.join(out, "calls.csv")) if c["callee"] == "api"]
    new = [float(c["start"]) for c in calls if c["replica"] == "1" and c["status"] == "200"]
    assert len(new) >= 15, "the new replica served (almost) nothing"
    requests = rows(os.path.join(out, "requests.csv"))
    assert requests and all(r["ok"] == "True" for r in requests)

    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    api = summary["services"]["api"]
    assert api["replicas_max"] == 2
    span = summary["duration"] - summary["warmup"]
    # one replica all along, the second from its start (about `grown` s in) to the end
    assert span + 0.5 * (span - grown - 1) < summary["cost"]["by_service"]["api"] < 2 * span
    assert leftovers(out) == []   # no emulator, load worker, proxy or listening port
