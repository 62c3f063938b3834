"""``faultmesh live`` records every request's outcome as the simulator does, on 127.0.0.1: a
gateway retrying a backend (3 attempts on 5xx) at 25 requests/s for 3 s, with a 400 ms client
timeout; the backend answers 503 for a second (``errors``), then from 2 s on every answer of
the backend reaches the gateway a second late (``latency`` to the end of the run).

What is measured: requests in the errors window fail with 503 and the root cause the backend
gave (``injected``), after 4 attempts (the client's call and the gateway's 3 tries: requests.csv
``attempts`` = the request's rows in calls.csv, for every request); requests in the latency
window fail with 504 ``client_timeout`` after ~0.4 s, those sent just before the end included:
the run drains past ``duration`` until they have their outcome, so none is ``unfinished``;
the client rows of calls.csv say the same; availability = ok / requests. About 10 s.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from live_helpers import live_cli, rows

# a live run with timeouts and a drain (~6 s): CI runs it, the quick loop does not
pytestmark = pytest.mark.slow

TOPOLOGY = """\
version: 1
name: outcomes
entry: gateway
workload: {model: open, rate: 25/s, duration: 3s, warmup: 0s, timeout: 400ms}
services:
  gateway:
    workers: 32
    latency: {dist: constant, value: 1ms}
    calls:
      - {to: backend, timeout: 5s,
         retry: {attempts: 3, backoff: constant, base: 10ms, jitter: none, on: [5xx]}}
  backend:
    workers: 32
    latency: {dist: constant, value: 5ms}
scenarios:
  mixed:
    faults:
      - {type: errors, target: backend, start: 0.5s, duration: 1s, rate: 1.0, status: 503}
      - {type: latency, target: gateway->backend, start: 2s, latency: 1s}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    return live_cli(tmp_path_factory.mktemp("outcomes"), "outcomes.yaml", TOPOLOGY, "mixed")


def _windows(out: str) -> dict[str, tuple[float, float]]:
    return {f["type"]: (float(f["start"]), float(f["end"]))
            for f in rows(os.path.join(out, "faults.csv"))}


def test_attempts_count_every_call_attempt_and_error_is_the_root_cause(run) -> None:
    rc, output, out = run
    assert rc in (0, 1), output
    requests = rows(os.path.join(out, "requests.csv"))
    calls = rows(os.path.join(out, "calls.csv"))
    per_request = Counter(c["request_id"] for c in calls)
    assert all(int(r["attempts"]) == per_request[r["request_id"]] for r in requests)
    a, b = _windows(out)["errors"]
    failed = [r for r in requests if a + 0.05 <= float(r["start"]) <= b - 0.05]
    assert len(failed) >= 10
    assert all(r["status"] == "503" and r["error"] == "injected" and r["attempts"] == "4"
               for r in failed)
    steady = [r for r in requests if float(r["start"]) < a - 0.05]
    assert steady and all(r["ok"] == "True" and r["attempts"] == "2" for r in steady)


def test_unanswered_requests_time_out_at_the_client_and_the_run_drains(run) -> None:
    rc, output, out = run
    assert rc in (0, 1), output
    requests = rows(os.path.join(out, "requests.csv"))
    start = _windows(out)["latency"][0]
    late = [r for r in requests if float(r["start"]) >= start + 0.05]
    assert len(late) >= 10
    assert all(r["status"] == "504" and r["error"] == "client_timeout" for r in late)
    assert all(0.39 <= float(r["latency"]) < 0.6 for r in late)
    assert max(float(r["end"]) for r in late) > 3.0          # ended during the drain
    assert not [r for r in requests if r["error"] == "unfinished" or not r["end"]]
    client = {c["request_id"]: c for c in rows(os.path.join(out, "calls.csv"))
              if c["caller"] == "client"}
    assert all(client[r["request_id"]]["status"] == "504"
               and client[r["request_id"]]["error"] == "client_timeout" for r in late)
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["unfinished"] == 0 and summary["partial"] is False
    assert summary["requests"] == len(requests)
    assert summary["availability"] == pytest.approx(summary["ok"] / summary["requests"])
    assert summary["availability"] < 0.6
    assert summary["end"] > summary["duration"] == 3.0
