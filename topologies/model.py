"""The typed, immutable model of a topology file (schema version 1).

Every value is resolved: defaults filled in, units converted (seconds, per-second rates,
bytes, fractions). Engines read these objects and never the YAML. Field names are the YAML
keys of the topology file (docs/topology-format.md), so ``service.queue_timeout`` is what the
file calls ``queue_timeout``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FrozenMap",
    "Distribution",
    "RatePoint",
    "Workload",
    "RetryPolicy",
    "CircuitBreaker",
    "OutlierDetection",
    "Call",
    "ParallelGroup",
    "Step",
    "LLMStep",
    "LLMConfig",
    "Gpu",
    "Autoscale",
    "Cost",
    "Memory",
    "Service",
    "Fault",
    "Scenario",
    "SLO",
    "Topology",
    "SERVICE_KINDS",
    "BALANCERS",
    "BACKOFFS",
    "JITTERS",
    "RETRY_CLASSES",
    "FAULT_TYPES",
    "NETWORK_FAULTS",
    "SLO_METRICS",
    "DIST_KINDS",
]

SERVICE_KINDS = ("http", "llm", "embedding", "vectordb", "cache", "external")
BALANCERS = ("round_robin", "random", "least_request")
BACKOFFS = ("constant", "linear", "exponential")
JITTERS = ("none", "full", "equal", "decorrelated")
RETRY_CLASSES = ("timeout", "5xx", "429", "refused", "reset")
NETWORK_FAULTS = ("latency", "bandwidth", "down", "timeout", "reset_peer", "loss")
FAULT_TYPES = NETWORK_FAULTS + ("errors", "slow", "kill", "pause", "partition", "rollout",
                                 "cpu", "memory")
SLO_METRICS = (
    "latency_p50", "latency_p90", "latency_p95", "latency_p99", "latency_p999",
    "latency_mean", "latency_max", "availability", "error_rate", "throughput",
    "cost_total", "cost_per_1k", "recovery_time", "retry_amplification",
)
DIST_KINDS = ("constant", "exponential", "lognormal", "gamma", "uniform", "empirical")

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


class FrozenMap(dict):
    """A dict that cannot change after construction (and still pickles, for Dask)."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("topology mappings are immutable; use topologies.override()")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore
    __ior__ = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


@dataclass(frozen=True)
class Distribution:
    """A random quantity (a processing time in seconds, or a token count).

    ``kind`` is one of ``DIST_KINDS``; only the parameters of that kind are set.
    ``lognormal`` is given by ``median`` and ``p99`` or by ``mean`` and ``cv``.
    """

    kind: str
    value: float | None = None
    mean: float | None = None
    median: float | None = None
    p99: float | None = None
    cv: float | None = None
    low: float | None = None
    high: float | None = None
    samples: tuple[float, ...] | None = None
    file: str | None = field(default=None, compare=False)

    def lognormal_params(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal of a lognormal distribution."""
        if self.median is not None and self.p99 is not None:
            mu = math.log(self.median)
            return mu, (math.log(self.p99) - mu) / _Z99
        assert self.mean is not None and self.cv is not None
        sigma2 = math.log1p(self.cv**2)
        return math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2)

    @property
    def expected(self) -> float:
        """The mean of the distribution."""
        k = self.kind
        if k == "constant":
            return float(self.value or 0.0)
        if k in ("exponential", "gamma"):
            return float(self.mean or 0.0)
        if k == "uniform":
            return (float(self.low or 0.0) + float(self.high or 0.0)) / 2
        if k == "empirical":
            return sum(self.samples or (0.0,)) / max(1, len(self.samples or ()))
        if self.mean is not None:
            return self.mean
        mu, sigma = self.lognormal_params()
        return math.exp(mu + sigma**2 / 2)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (0 for constant, 1 for exponential)."""
        k = self.kind
        m = self.expected
        if m == 0 or k == "constant":
            return 0.0
        if k == "exponential":
            return 1.0
        if k == "gamma":
            return float(self.cv or 0.0) ** 2
        if k == "uniform":
            return ((float(self.high or 0) - float(self.low or 0)) ** 2 / 12) / m**2
        if k == "empirical":
            xs = self.samples or ()
            return (sum((x - m) ** 2 for x in xs) / max(1, len(xs))) / m**2
        _, sigma = self.lognormal_params()
        return math.expm1(sigma**2)


ZERO = Distribution("constant", value=0.0)


@dataclass(frozen=True)
class RatePoint:
    """One corner of a piecewise-linear arrival-rate profile."""

    at: float
    rate: float


@dataclass(frozen=True)
class Workload:
    """The client load offered to the entry service."""

    model: Literal["open", "closed"] = "open"
    rate: float | None = None
    profile: tuple[RatePoint, ...] | None = None
    users: int | None = None
    think: Distribution | None = None
    duration: float = 300.0
    warmup: float = 0.0
    timeout: float = 60.0

    def rate_at(self, t: float) -> float:
        """The open-model arrival rate at time ``t`` (linear between profile points)."""
        if self.profile is None:
            return float(self.rate or 0.0)
        pts = self.profile
        if t <= pts[0].at:
            return pts[0].rate
        for a, b in zip(pts, pts[1:], strict=False):
            if t <= b.at:
                if b.at == a.at:
                    return b.rate
                return a.rate + (b.rate - a.rate) * (t - a.at) / (b.at - a.at)
        return pts[-1].rate


@dataclass(frozen=True)
class RetryPolicy:
    """How a caller retries a failed call on one edge. ``attempts`` counts the first try."""

    attempts: int = 3
    backoff: str = "exponential"
    base: float = 0.1
    max: float = 10.0
    jitter: str = "full"
    on: tuple[str, ...] = RETRY_CLASSES
    budget: float | None = None
    budget_window: float = 10.0


@dataclass(frozen=True)
class CircuitBreaker:
    """A per-edge breaker: opens when the failure share over ``window`` reaches ``failure_rate``."""

    failure_rate: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    open_for: float = 15.0
    half_open_calls: int = 3


@dataclass(frozen=True)
class OutlierDetection:
    """Per caller and edge: ``consecutive_failures`` failed attempts in a row to one callee
    replica eject it from the caller's balancer for ``ejection`` seconds (Envoy's pattern)."""

    consecutive_failures: int = 5
    ejection: float = 30.0


@dataclass(frozen=True)
class Call:
    """One dependency call a service makes while handling a request (one edge of the graph)."""

    to: str
    timeout: float | None = None
    retry: RetryPolicy | None = None
    circuit_breaker: CircuitBreaker | None = None
    outlier_detection: OutlierDetection | None = None
    fallback: Literal["fail", "degrade"] = "fail"
    p: float = 1.0
    request_size: float = 1024.0


@dataclass(frozen=True)
class ParallelGroup:
    """Calls made at the same time; the step ends when all of them have ended."""

    parallel: tuple[Call, ...]


Step = Call | ParallelGroup


@dataclass(frozen=True)
class LLMStep:
    """Fixed costs of one iteration: ``base`` plus ``per_sequence`` per decoding sequence."""

    base: float = 0.02
    per_sequence: float = 0.0005


@dataclass(frozen=True)
class LLMConfig:
    """Continuous batching of an LLM server replica."""

    max_batch: int = 16
    prompt_tokens: Distribution = Distribution("constant", value=500.0)
    output_tokens: Distribution = Distribution("constant", value=150.0)
    prefill_per_token: float = 0.0002
    step: LLMStep = LLMStep()
    max_batched_tokens: int = 2048


@dataclass(frozen=True)
class Gpu:
    """Accelerators per replica (a label for reports and cost, not simulated hardware)."""

    type: str = "generic"
    count: int = 1


@dataclass(frozen=True)
class Autoscale:
    """A replica autoscaler acting every ``interval`` on ``metric`` against ``target``."""

    metric: Literal["utilization", "queue"] = "utilization"
    target: float = 0.7
    min: int = 1
    max: int = 10
    interval: float = 15.0
    cold_start: float = 0.0
    cooldown: float = 300.0


@dataclass(frozen=True)
class Cost:
    """What one replica costs while it runs (cold start included)."""

    per_replica_hour: float = 0.0


@dataclass(frozen=True)
class Memory:
    """What one replica holds in memory: ``base`` bytes plus ``per_request`` bytes for each
    request in progress (a ``memory`` fault's limit is compared with this)."""

    base: float = 0.0
    per_request: float = 0.0

    def held(self, in_progress: int) -> float:
        """Bytes held with ``in_progress`` requests in progress."""
        return self.base + self.per_request * in_progress


@dataclass(frozen=True)
class Service:
    """One service of the topology: its replicas, limits, own work, calls and cost."""

    name: str
    kind: str = "http"
    description: str = ""
    replicas: int = 1
    workers: int = 1
    concurrency: int | None = None
    queue: int | None = None
    queue_timeout: float | None = None
    balancer: str = "round_robin"
    latency: Distribution = ZERO
    error_rate: float = 0.0
    rate_limit: float | None = None
    restart: float = 10.0
    response_size: float | None = None
    calls: tuple[Step, ...] = ()
    llm: LLMConfig | None = None
    gpu: Gpu | None = None
    autoscale: Autoscale | None = None
    cost: Cost = Cost()
    # a user service: the program that runs it (docker image or process command) instead of
    # the emulator; the simulator still models it from latency/workers above
    image: str | None = None
    command: tuple[str, ...] | None = None
    port: int = 8080
    health: str = "/healthz"
    env: FrozenMap = field(default_factory=FrozenMap)
    memory: Memory | None = None

    def response_bytes(self, output_tokens: float = 0.0) -> float:
        """Bytes of one answer: ``response_size``, or by default 1KB (an LLM: 4 per token)."""
        if self.response_size is not None:
            return self.response_size
        return 4.0 * output_tokens if self.kind == "llm" else 1024.0

    def edges(self) -> tuple[Call, ...]:
        """Every call this service makes, parallel groups flattened, in order."""
        out: list[Call] = []
        for step in self.calls:
            out.extend(step.parallel if isinstance(step, ParallelGroup) else (step,))
        return tuple(out)


@dataclass(frozen=True)
class Fault:
    """One fault of a scenario, active from ``start`` for ``duration`` (None: to the end).

    ``target`` is a service name or an edge ``caller->callee``. Only the parameters of the
    fault's ``type`` are set; the others stay None.
    """

    type: str
    target: str
    start: float = 0.0
    duration: float | None = None
    latency: float | None = None
    jitter: float | None = None
    rate: float | None = None
    timeout: float | None = None
    status: int | None = None
    factor: float | None = None
    replicas: int | None = None
    batch: int | None = None
    startup: float | None = None
    surge: bool | None = None
    probability: float | None = None
    fraction: float | None = None
    limit: float | None = None

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.start + self.duration

    @property
    def edge(self) -> tuple[str, str] | None:
        """(caller, callee) when the target is an edge, else None."""
        if "->" not in self.target:
            return None
        caller, callee = (part.strip() for part in self.target.split("->", 1))
        return caller, callee

    @property
    def service(self) -> str:
        """The service the fault lands on (the callee of an edge target)."""
        edge = self.edge
        return edge[1] if edge else self.target

    def parameters(self) -> dict[str, Any]:
        """The type-specific parameters that are set (for faults.csv and reports)."""
        keys = ("latency", "jitter", "rate", "timeout", "status", "factor", "replicas",
                "batch", "startup", "surge", "probability", "fraction", "limit")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class Scenario:
    """A named set of faults to run the workload under."""

    name: str
    description: str = ""
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True)
class SLO:
    """A service-level objective on one metric: ``op`` is ``min`` or ``max`` of ``limit``.

    Limits are in base units: seconds, fractions, requests per second, USD.
    """

    metric: str
    op: Literal["min", "max"]
    limit: float
    name: str = ""
    window: Literal["all", "fault", "steady"] = "all"
    count_degraded: bool = True

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.limit if self.op == "min" else value <= self.limit


@dataclass(frozen=True)
class Topology:
    """A whole AI service graph: workload, services, scenarios and SLOs."""

    name: str
    entry: str
    services: FrozenMap
    workload: Workload = Workload()
    version: int = 1
    description: str = ""
    scenarios: FrozenMap = field(default_factory=FrozenMap)
    slos: tuple[SLO, ...] = ()
    source: str = field(default="", compare=False)

    def service(self, name: str) -> Service:
        return self.services[name]

    def scenario(self, name: str | None) -> Scenario:
        """The named scenario; None (or "baseline" when not defined) is the fault-free run."""
        if name is None or (name == "baseline" and name not in self.scenarios):
            return Scenario("baseline", "no faults")
        return self.scenarios[name]
