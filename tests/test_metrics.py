"""``GET /metrics``: the Prometheus page of an emulated replica (a real replica process, real
requests) and of the fault proxy server (a real ProxyServer, real connections through a
proxy), parsed with prometheus_client's own parser."""

from __future__ import annotations

import http.client
import json
import time
import timeit

import test_proxy_fixtures as fx
from emulator_helpers import running, send
from prometheus_client.parser import text_string_to_metric_families
from test_proxy_fixtures import connect, round_trip

from chaos.emulator.metrics import BUCKETS, ReplicaMetrics
from chaos.emulator.replica import ReplicaServer
from chaos.proxy import ProxyServer
from topologies import loads

__all__: list[str] = []

echo, server, client = fx.echo, fx.server, fx.client  # the fixtures

TWO = """\
    version: 1
    name: pair
    entry: front
    workload: {rate: 1/s, duration: 10s}
    services:
      front:
        workers: 4
        latency: 2ms
        calls: [{to: back}]
      back: {workers: 2, latency: 1ms}
"""


def scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The page's content type and its samples, keyed by (name, sorted labels)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200, text
        ctype = resp.getheader("content-type", "")
    finally:
        conn.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return ctype, samples


def pick(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def test_replica_metrics_count_what_it_answered(tmp_path):
    n = 25
    with running(tmp_path, TWO, ["back", "front"]) as reps:
        front = reps["front"][0].port
        for _ in range(n):
            assert send(front)[0] == 200
        ctype, m = scrape(front)
        assert ctype.startswith("text/plain") and "version=" in ctype
        who = {"service": "front", "replica": "0"}
        assert pick(m, "faultmesh_requests_total", **who) == n
        assert pick(m, "faultmesh_requests_total", **who, outcome="ok", status="200") == n
        assert pick(m, "faultmesh_request_duration_seconds_count", **who) == n
        # 2 ms of own work plus a call: every request above 1 ms, all below 60 s
        assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="0.001") == 0
        assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="60.0") == n
        assert pick(m, "faultmesh_request_duration_seconds_sum", **who) >= n * 0.002
        assert pick(m, "faultmesh_in_flight", **who) == 0
        assert pick(m, "faultmesh_queued", **who) == 0
        assert pick(m, "faultmesh_workers", **who) == 4
        assert pick(m, "faultmesh_errors_total", **who) == 0
        assert pick(m, "faultmesh_calls_total", **who, callee="back", outcome="ok") == n
        assert pick(m, "faultmesh_busy_seconds_total", **who) > 0
        # the callee counted the same calls as its own requests; the scrapes are not counted
        _, back = scrape(reps["back"][0].port)
        assert pick(back, "faultmesh_requests_total", service="back") == n

        # an injected errors fault on the callee: its answers count as errors by status,
        # the caller's calls by the error word the callee sent
        fault = json.dumps({"type": "errors", "rate": 1.0, "status": 503}).encode()
        assert send(reps["back"][0].port, "POST", "/_faultmesh/faults", fault)[0] == 200
        for _ in range(5):
            assert send(front)[0] == 503
        _, back = scrape(reps["back"][0].port)
        assert pick(back, "faultmesh_requests_total", outcome="error", status="503") == 5
        assert pick(back, "faultmesh_errors_total") == 5
        _, m = scrape(front)
        assert pick(m, "faultmesh_calls_total", callee="back", outcome="injected") == 5
        assert pick(m, "faultmesh_requests_total", **who, status="503") == 5
        assert pick(m, "faultmesh_request_duration_seconds_count", **who) == n + 5


def test_replica_page_has_llm_and_memory_gauges_and_histogram_edges():
    topo = loads("""\
version: 1
name: chat
entry: llm
workload: {rate: 1/s, duration: 10s}
services:
  llm:
    kind: llm
    latency: 10ms
    memory: {base: 1MiB, per_request: 64KiB}
    llm: {max_batch: 4, prompt_tokens: 10, output_tokens: 5, prefill_per_token: 1ms,
          step: {base: 20ms, per_sequence: 5ms}}
""")
    rep = ReplicaServer(topo, "llm", 1, "127.0.0.1", 0, {}, "/dev/null", 0.0, 1)
    for seconds in (0.001, 0.0011, 61.0):  # on a bound: in it (le); past the last: +Inf only
        rep.metrics.answered(200, seconds)
    page, _ = rep.metrics.expose()
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for f in text_string_to_metric_families(page.decode()) for s in f.samples}
    who = {"service": "llm", "replica": "1"}
    assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="0.001") == 1
    assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="0.0025") == 2
    assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="60.0") == 2
    assert pick(m, "faultmesh_request_duration_seconds_bucket", **who, le="+Inf") == 3
    assert pick(m, "faultmesh_llm_batch", **who) == 0
    assert pick(m, "faultmesh_capacity", **who) == 4
    assert pick(m, "faultmesh_memory_held_bytes", **who) == 1 << 20
    # a second replica in the same process has its own registry: no collision, own counts
    other = ReplicaServer(topo, "llm", 2, "127.0.0.1", 0, {}, "/dev/null", 0.0, 1)
    def counts(server: ReplicaServer) -> float:
        return pick({(s.name, tuple(sorted(s.labels.items()))): s.value
                     for f in text_string_to_metric_families(server.metrics.expose()[0].decode())
                     for s in f.samples}, "faultmesh_request_duration_seconds_count")
    assert (counts(other), counts(rep)) == (0, 3)


def test_request_path_cost_of_counting_is_printed(capsys):
    """What the per-request counting adds: two perf_counter reads and ``answered``."""
    metrics = ReplicaMetrics(None)  # type: ignore[arg-type]  # answered() never reads it
    n = 200_000
    counted = min(timeit.repeat(
        "t = perf(); m.answered(200, perf() - t)", repeat=5, number=n,
        globals={"perf": time.perf_counter, "m": metrics})) / n
    bare = min(timeit.repeat("pass", repeat=5, number=n)) / n
    with capsys.disabled():
        print(f"\nper request: counting {counted * 1e6:.2f} µs (empty statement "
              f"{bare * 1e6:.3f} µs), {len(BUCKETS)} buckets")
    assert sum(metrics.buckets) == 5 * n and metrics.by_status == {200: 5 * n}


def test_proxy_metrics_count_connections_and_toxics(server, client, echo):
    proxy = client.create(upstream=echo.address, name="to-echo", listen="127.0.0.1:0")
    k = 4
    for _ in range(k):
        with connect(proxy.listen) as sock:
            round_trip(sock)
    held = connect(proxy.listen)
    round_trip(held)
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    try:
        ctype, m = scrape(server.port)
        assert ctype.startswith("text/plain")
        assert pick(m, "faultmesh_proxy_connections_total", proxy="to-echo") == k + 1
        assert pick(m, "faultmesh_proxy_connections_open", proxy="to-echo") >= 1
        assert pick(m, "faultmesh_proxy_enabled", proxy="to-echo") == 1
        assert pick(m, "faultmesh_proxy_toxics", proxy="to-echo") == 1
    finally:
        held.close()
    proxy.disable()
    deadline = time.monotonic() + 5
    while True:
        _, m = scrape(server.port)
        if pick(m, "faultmesh_proxy_connections_open", proxy="to-echo") == 0:
            break
        assert time.monotonic() < deadline, "connections still open after disable"
        time.sleep(0.05)
    assert pick(m, "faultmesh_proxy_enabled", proxy="to-echo") == 0
    assert pick(m, "faultmesh_proxy_connections_total", proxy="to-echo") == k + 1
    # a second server in this process: its own registry and its own (empty) proxies
    other = ProxyServer("127.0.0.1", 0).start()
    try:
        _, m2 = scrape(other.port)
        assert not [key for key in m2 if key[0].startswith("faultmesh_proxy_")]
    finally:
        other.stop()
