"""A replica's counts in the Prometheus text exposition format, for ``GET /metrics``.

Prometheus (or anything that scrapes its format) can watch a live run's replicas as it
watches production services. Almost everything exposed is read from what the replica already
keeps (:class:`~chaos.emulator.stats.Stats`, its pools, its LLM engine, its held memory) when
the page is asked for, by a custom collector: a scrape costs the request path nothing. Two
things need a count per request, kept here as plain integers (no locks: the replica runs on one
event loop): the answers by status and the latency histogram (one ``bisect`` into
:data:`BUCKETS`), plus the calls to callees by outcome. ``prometheus_client`` is imported at
the first scrape, so a replica that is never scraped never loads it.

Each replica has its own ``CollectorRegistry``, not the library's global one, so several
replicas in one process (tests) never share or collide on a metric.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from .replica import ReplicaServer

__all__ = ["BUCKETS", "ReplicaMetrics", "call_outcome"]

#: Upper bounds (seconds) of the request latency histogram: 1 ms to 60 s, about 2.5x apart
#: (an emulated cache answers in a millisecond, an LLM under a brownout in tens of seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           25.0, 60.0)


def call_outcome(ok: bool, degraded: bool, error: str) -> str:
    """The ``outcome`` label of a call to a callee: ``ok``, ``degraded`` (the fallback
    answered) or the error word (``timeout``, ``refused``, ``circuit_open``, ...)."""
    if ok:
        return "degraded" if degraded else "ok"
    return error or "error"


class ReplicaMetrics:
    """What one replica counts for its metrics page, and the page itself (:meth:`expose`)."""

    def __init__(self, server: ReplicaServer) -> None:
        self.server = server
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one: above 60 s (+Inf only)
        self.seconds = 0.0
        self.calls: dict[tuple[str, str], int] = {}
        self._registry: CollectorRegistry | None = None

    def answered(self, status: int, seconds: float) -> None:
        """One request answered with ``status`` after ``seconds`` (on the request path)."""
        self.by_status[status] = self.by_status.get(status, 0) + 1
        # Prometheus buckets are "<= bound": the first bound >= seconds
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.seconds += seconds

    def call(self, callee: str, outcome: str) -> None:
        """One call to ``callee`` ended with ``outcome`` (:func:`call_outcome`)."""
        key = (callee, outcome)
        self.calls[key] = self.calls.get(key, 0) + 1

    def expose(self) -> tuple[bytes, str]:
        """The page (``generate_latest`` of this replica's registry) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self))
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _Collector:
    """Reads the replica's state at scrape time into metric families."""

    def __init__(self, metrics: ReplicaMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m, server = self.metrics, self.metrics.server
        stats = server.stats
        base = [server.spec.name, str(server.replica)]
        names = ["service", "replica"]

        requests = CounterMetricFamily(
            "faultmesh_requests", "Requests answered, by outcome (ok: status 200) and status.",
            labels=[*names, "outcome", "status"])
        for status, n in sorted(m.by_status.items()):
            requests.add_metric([*base, "ok" if status == 200 else "error", str(status)], n)
        yield requests

        cumulative, buckets = 0, []
        for bound, n in zip((*BUCKETS, float("inf")), m.buckets, strict=True):
            cumulative += n
            buckets.append((_bound(bound), cumulative))
        latency = HistogramMetricFamily(
            "faultmesh_request_duration_seconds",
            "Seconds from a request's arrival to its answer, as this replica served it.",
            labels=names)
        latency.add_metric(base, buckets, m.seconds)
        yield latency

        def counter(name: str, doc: str, value: float) -> Any:
            family = CounterMetricFamily(name, doc, labels=names)
            family.add_metric(base, value)
            return family

        def gauge(name: str, doc: str, value: float) -> Any:
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(base, value)
            return family

        yield counter("faultmesh_errors", "Requests answered with a status other than 200.",
                      stats.failed)
        yield counter("faultmesh_busy_seconds", "Busy units integrated over time (unit-seconds).",
                      stats.meter.total(time.monotonic()))
        yield gauge("faultmesh_in_flight", "Requests past the concurrency slot, not answered.",
                    stats.in_flight)
        yield gauge("faultmesh_queued", "Requests waiting for a slot, a worker or a batch place.",
                    server.queued)
        yield gauge("faultmesh_busy_units", "Busy units now: workers at work plus LLM batch "
                    "places held.", stats.meter.level)
        yield gauge("faultmesh_workers", "Workers of this replica.", stats.workers)
        yield gauge("faultmesh_capacity", "Busy units this replica can have (workers, or an "
                    "LLM's max_batch).", stats.capacity)
        held = server.memory.held
        if held is not None:
            yield gauge("faultmesh_memory_held_bytes", "Memory the model says this replica "
                        "holds now (base + per_request x requests in progress).", held)
        if server.engine is not None:
            yield gauge("faultmesh_llm_batch", "Sequences holding an LLM batch place now.",
                        server.engine.batch)
        calls = CounterMetricFamily(
            "faultmesh_calls", "Calls to callees (retries inside one call count once), by "
                               "callee and outcome.", labels=[*names, "callee", "outcome"])
        for (callee, outcome), n in sorted(m.calls.items()):
            calls.add_metric([*base, callee, outcome], n)
        yield calls


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
