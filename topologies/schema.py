"""The topology file format, schema version 1, declared once with ``kinds``.

These declarations drive validation (with file and line), the typed model, writing the
resolved topology back to YAML and ``faultmesh schema``. Scalars are in ``scalars.py``,
distributions in ``distributions.py``, scenarios/faults/SLOs in ``faults.py``; rules that
span records (service references, call cycles, fault targets) in ``references.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import units
from .distributions import LATENCY, TOKENS
from .faults import SCENARIO, SLOKind
from .kinds import Checker, Enum, Field, Kind, ListOf, MapOf, Record, Scalar
from .model import (
    BACKOFFS,
    BALANCERS,
    JITTERS,
    RETRY_CLASSES,
    SERVICE_KINDS,
    Autoscale,
    Call,
    CircuitBreaker,
    Cost,
    Distribution,
    Gpu,
    LLMConfig,
    LLMStep,
    Memory,
    OutlierDetection,
    ParallelGroup,
    RatePoint,
    RetryPolicy,
    Service,
    Topology,
    Workload,
)
from .scalars import (
    FRACTION,
    MONEY,
    POSITIVE_RATE,
    RATE,
    SIZE,
    TEXT,
    VERSION,
    duration,
    number,
    whole,
)
from .userservice import CommandKind, EnvKind, HealthKind, env_collisions, is_user_service

__all__ = ["TOPOLOGY", "json_schema"]

# ---------------------------------------------------------------- workload


def _check_workload(w: Workload, raw: Any) -> list[tuple[str, str]]:
    out = []
    if w.model == "open":
        if (w.rate is None) == (w.profile is None):
            out.append(("rate", "an open workload needs either rate or profile (one of them)"))
        for f in ("users", "think"):
            if f in raw:
                out.append((f, f"{f} belongs to a closed workload (model: closed)"))
    else:
        if w.users is None:
            out.append(("users", "a closed workload needs users"))
        for f in ("rate", "profile"):
            if f in raw:
                out.append((f, f"{f} belongs to an open workload (model: open)"))
    if w.profile:
        ats = [p.at for p in w.profile]
        if any(b < a for a, b in zip(ats, ats[1:], strict=False)):
            out.append(("profile", "profile points must be in time order (at increasing)"))
    if w.warmup >= w.duration:
        out.append(("warmup", f"warmup ({w.warmup:g}s) must be shorter than duration "
                              f"({w.duration:g}s)"))
    return out


def _fill_think(w: Workload) -> Workload:
    if w.model == "closed" and w.think is None:
        return dataclasses.replace(w, think=Distribution("constant", value=0.0))
    return w


RATE_POINT = Record(RatePoint, {"at": Field(duration(), required=True),
                                "rate": Field(RATE, required=True)})
WORKLOAD = Record(Workload, {
    "model": Field(Enum(("open", "closed")), "open: Poisson arrivals; closed: users with think"),
    "rate": Field(POSITIVE_RATE, "open model: arrivals per second (40/s, 600/m)"),
    "profile": Field(ListOf(RATE_POINT, min_items=1), "open model: piecewise-linear rate"),
    "users": Field(whole(1), "closed model: concurrent users"),
    "think": Field(LATENCY, "closed model: think time between a user's requests"),
    "duration": Field(duration(lo_open=True), "how long the workload runs"),
    "warmup": Field(duration(), "excluded from summary statistics"),
    "timeout": Field(duration(lo_open=True), "the client gives up on a request after this "
                                             "(504, client_timeout)"),
}, check=_check_workload, finish=_fill_think)

# ---------------------------------------------------------------- calls


def _check_retry(r: RetryPolicy, raw: Any) -> list[tuple[str, str]]:
    if r.base > r.max:
        return [("base", f"base ({r.base:g}s) must not exceed max ({r.max:g}s)")]
    return []


RETRY = Record(RetryPolicy, {
    "attempts": Field(whole(1), "every try counted, the first included"),
    "backoff": Field(Enum(BACKOFFS)),
    "base": Field(duration()),
    "max": Field(duration(), "cap on one backoff wait"),
    "jitter": Field(Enum(JITTERS)),
    "on": Field(ListOf(Enum(RETRY_CLASSES)), "failure classes that are retried"),
    "budget": Field(FRACTION, "retries stay below this share of calls on the edge"),
    "budget_window": Field(duration(lo_open=True), "the sliding window the budget counts over"),
}, check=_check_retry)

BREAKER = Record(CircuitBreaker, {
    "failure_rate": Field(Scalar(units.parse_fraction, FRACTION.schema(), lo=0.0, lo_open=True,
                                 hi=1.0)),
    "min_calls": Field(whole(1)),
    "window": Field(duration(lo_open=True)),
    "open_for": Field(duration(lo_open=True)),
    "half_open_calls": Field(whole(1)),
})

OUTLIER = Record(OutlierDetection, {
    "consecutive_failures": Field(whole(1), "failed attempts in a row that eject a replica"),
    "ejection": Field(duration(lo_open=True), "how long an ejected replica is skipped"),
})

CALL = Record(Call, {
    "to": Field(TEXT, "the called service", required=True),
    "timeout": Field(duration(lo_open=True, nullable=True), "the caller abandons after this"),
    "retry": Field(RETRY),
    "circuit_breaker": Field(BREAKER),
    "outlier_detection": Field(OUTLIER, "eject a replica that keeps failing from the balancer"),
    "fallback": Field(Enum(("fail", "degrade")), "on final failure"),
    "p": Field(FRACTION, "probability the call is made at all"),
    "request_size": Field(SIZE, "bytes sent (for bandwidth faults)"),
})
PARALLEL = Record(ParallelGroup, {"parallel": Field(ListOf(CALL, min_items=1), required=True)})


class StepKind(Kind):
    """One step of a service's calls: a call, or ``{parallel: [calls]}``."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if isinstance(value, dict) and "parallel" in value:
            return PARALLEL.convert(value, path, line, ck)
        return CALL.convert(value, path, line, ck)

    def dump(self, value: Any) -> Any:
        return (PARALLEL if isinstance(value, ParallelGroup) else CALL).dump(value)

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [CALL.schema(), PARALLEL.schema()]}


# ---------------------------------------------------------------- services

def _check_llm(c: LLMConfig, raw: Any) -> list[tuple[str, str]]:
    if c.max_batched_tokens < c.max_batch:
        return [("max_batched_tokens", f"max_batched_tokens ({c.max_batched_tokens}) must be at "
                 f"least max_batch ({c.max_batch}): every decoding sequence takes one token")]
    return []


LLM = Record(LLMConfig, {
    "max_batch": Field(whole(1), "sequences decoding together per replica"),
    "prompt_tokens": Field(TOKENS),
    "output_tokens": Field(TOKENS),
    "prefill_per_token": Field(duration(), "GPU time per prompt token, inside iterations"),
    "step": Field(Record(LLMStep, {"base": Field(duration()),
                                   "per_sequence": Field(duration())}),
                  "one iteration = base + per_sequence x decoding sequences "
                  "+ prefill_per_token x prompt tokens in it"),
    "max_batched_tokens": Field(whole(1), "tokens one iteration may process (decodes take one "
                                          "each, prompt chunks fill the rest)"),
}, check=_check_llm)
GPU = Record(Gpu, {"type": Field(TEXT), "count": Field(whole(1))})


def _check_autoscale(a: Autoscale, raw: Any) -> list[tuple[str, str]]:
    return [("min", f"min ({a.min}) must not exceed max ({a.max})")] if a.min > a.max else []


AUTOSCALE = Record(Autoscale, {
    "metric": Field(Enum(("utilization", "queue"))),
    "target": Field(number(0.0, lo_open=True)),
    "min": Field(whole(0)),
    "max": Field(whole(1)),
    "interval": Field(duration(lo_open=True)),
    "cold_start": Field(duration()),
    "cooldown": Field(duration()),
}, check=_check_autoscale)


def _check_service(s: Service, raw: Any) -> list[tuple[str, str]]:
    out = []
    if s.llm is not None and s.kind != "llm":
        out.append(("llm", f"an llm block needs kind: llm (this service is kind: {s.kind})"))
    a = s.autoscale
    if a is not None and not a.min <= s.replicas <= a.max:
        out.append(("replicas", f"replicas ({s.replicas}) must lie within autoscale min..max "
                                f"({a.min}..{a.max})"))
    if is_user_service(s):
        # its program learns each callee's address from one variable per callee
        out.extend(("calls", message) for message in env_collisions(s))
    return out


def _fill_service(s: Service) -> Service:
    if s.kind == "llm" and s.llm is None:
        return dataclasses.replace(s, llm=LLMConfig())
    return s


SERVICE = Record(Service, {
    "kind": Field(Enum(SERVICE_KINDS)),
    "description": Field(TEXT),
    "replicas": Field(whole(0)),
    "workers": Field(whole(1), "requests in own processing at once, per replica"),
    "concurrency": Field(whole(1, nullable=True), "requests in progress per replica"),
    "queue": Field(whole(0, nullable=True), "waiting for a concurrency slot, per replica"),
    "queue_timeout": Field(duration(lo_open=True, nullable=True)),
    "balancer": Field(Enum(BALANCERS)),
    "latency": Field(LATENCY, "own processing time, before the calls"),
    "error_rate": Field(FRACTION, "probability the service itself answers 500"),
    "rate_limit": Field(Scalar(units.parse_rate, RATE.schema(), lo=0.0, lo_open=True,
                               nullable=True, unit="/s"), "token bucket, burst = 1 s of rate"),
    "restart": Field(duration(), "a killed replica serves again after this"),
    "response_size": Field(Scalar(units.parse_size, SIZE.schema(), lo=0.0, nullable=True),
                           "bytes per answer; default 1KB, an LLM 4 per output token"),
    "calls": Field(ListOf(StepKind()), "in order; a step is a call or a parallel group"),
    "llm": Field(LLM, "continuous batching (kind: llm)"),
    "gpu": Field(GPU),
    "autoscale": Field(AUTOSCALE),
    "cost": Field(Record(Cost, {"per_replica_hour": Field(MONEY)}), "USD"),
    "image": Field(TEXT, "user service: the docker image the docker runtime runs"),
    "command": Field(CommandKind(), "user service: the program the process runtime runs "
                                    "(a list, or one line split as a shell would)"),
    "port": Field(whole(1, 65535), "user service: where its program listens"),
    "health": Field(HealthKind(), "user service: HTTP path answering 2xx when ready"),
    "env": Field(EnvKind(), "user service: environment variables NAME: value"),
    "memory": Field(Record(Memory, {"base": Field(SIZE, "held by an idle replica"),
                                    "per_request": Field(SIZE, "held per request in progress")}),
                    "what a replica holds (for memory faults)"),
}, check=_check_service, finish=_fill_service, title="service")

# ---------------------------------------------------------------- the whole file

TOPOLOGY = Record(Topology, {
    "version": Field(VERSION, "schema version", required=True),
    "name": Field(TEXT, "default: the file name without .yaml"),
    "description": Field(TEXT),
    "entry": Field(TEXT, "the service client requests enter", required=True),
    "workload": Field(WORKLOAD, "the client load", required=True),
    "services": Field(MapOf(SERVICE), required=True),
    "scenarios": Field(MapOf(SCENARIO)),
    "slos": Field(ListOf(SLOKind())),
}, title="faultmesh topology")


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the topology file, for editors."""
    schema = TOPOLOGY.schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://faultmesh.dev/schema/topology-v1.json"
    schema["description"] = "faultmesh topology file, schema version 1"
    return schema
