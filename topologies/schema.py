"""The topology file format, schema version 1, declared once with ``kinds``.

These declarations drive validation (with file and line), the typed model, writing the
resolved topology back to YAML and ``faultmesh schema``. Rules that span records (service
references, call cycles, fault targets) are in ``references.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Any

from . import units
from .kinds import (
    INVALID,
    Checker,
    Enum,
    Field,
    Kind,
    ListOf,
    MapOf,
    Record,
    Scalar,
    describe,
    join,
    line_of,
    suggest,
)
from .model import (
    BACKOFFS,
    BALANCERS,
    DIST_KINDS,
    FAULT_TYPES,
    JITTERS,
    RETRY_CLASSES,
    SERVICE_KINDS,
    SLO,
    SLO_METRICS,
    Autoscale,
    Call,
    CircuitBreaker,
    Cost,
    Distribution,
    Fault,
    Gpu,
    LLMConfig,
    LLMStep,
    ParallelGroup,
    RatePoint,
    RetryPolicy,
    Scenario,
    Service,
    Topology,
    Workload,
)

__all__ = ["TOPOLOGY", "SUPPORTED_VERSION", "json_schema"]

SUPPORTED_VERSION = 1

# ---------------------------------------------------------------- scalar kinds


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"expected a whole number, got {describe(value)}")
    return int(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {describe(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a text, got {describe(value)}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


def _version(value: Any) -> int:
    if value != SUPPORTED_VERSION or isinstance(value, bool):
        raise ValueError(f"unsupported version {value!r}; this faultmesh reads version "
                         f"{SUPPORTED_VERSION}")
    return SUPPORTED_VERSION


_NUM = {"type": "number"}
_UNIT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*"


def _with_units(pattern: str) -> dict[str, Any]:
    return {"anyOf": [_NUM, {"type": "string", "pattern": _UNIT + pattern + r"\s*$"}]}


DURATION_SCHEMA = _with_units("(us|µs|ms|s|m|h)")


def duration(lo: float = 0.0, *, lo_open: bool = False, nullable: bool = False) -> Scalar:
    return Scalar(units.parse_duration, DURATION_SCHEMA, lo=lo, lo_open=lo_open,
                  nullable=nullable, unit="s")


def whole(lo: int = 0, hi: int | None = None, *, nullable: bool = False) -> Scalar:
    return Scalar(_int, {"type": "integer"}, lo=lo, hi=hi, nullable=nullable)


def number(lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = False) -> Scalar:
    return Scalar(_number, _NUM, lo=lo, hi=hi, lo_open=lo_open)


RATE = Scalar(units.parse_rate, _with_units(r"/\s*(s|m|h)"), lo=0.0, unit="/s")
POSITIVE_RATE = Scalar(units.parse_rate, _with_units(r"/\s*(s|m|h)"), lo=0.0, lo_open=True,
                       unit="/s")
SIZE = Scalar(units.parse_size, _with_units("(B|KB|KiB|MB|MiB|GB|GiB|b|kb|mb|gb)"), lo=0.0)
BANDWIDTH = Scalar(units.parse_bandwidth, _with_units(r"(B|KB|MB|GB)/s"), lo=0.0, lo_open=True)
FRACTION = Scalar(units.parse_fraction, {"anyOf": [_NUM, {"type": "string",
                                                          "pattern": r"^[0-9.]+%$"}]},
                  lo=0.0, hi=1.0)
TEXT = Scalar(_text, {"type": "string"})
BOOL = Scalar(_bool, {"type": "boolean"})
MONEY = number(0.0)

# ---------------------------------------------------------------- distributions

_DIST_PARAMS = {
    "constant": ("value",),
    "exponential": ("mean",),
    "lognormal": ("median", "p99", "mean", "cv"),
    "gamma": ("mean", "cv"),
    "uniform": ("low", "high"),
    "empirical": ("samples", "file"),
}
_DIST_NEEDS = {
    "constant": (("value",),),
    "exponential": (("mean",),),
    "lognormal": (("median", "p99"), ("mean", "cv")),
    "gamma": (("mean", "cv"),),
    "uniform": (("low", "high"),),
    "empirical": (("samples",), ("file",)),
}


class DistributionKind(Kind):
    """A random quantity: ``{dist: lognormal, median: 3ms, p99: 15ms}``, or a bare value for
    a constant. ``value`` is the kind of each quantity (a duration, or a token count)."""

    def __init__(self, value: Scalar, what: str):
        self.value, self.what = value, what

    def convert(self, raw: Any, path: str, line: int, ck: Checker) -> Any:
        if not isinstance(raw, dict):
            v = self.value.convert(raw, path, line, ck)
            return INVALID if v is INVALID else Distribution("constant", value=v)
        kind = raw.get("dist")
        if kind is None:
            return ck.report(line, path, "missing required field 'dist' (one of: "
                             + ", ".join(DIST_KINDS) + ")")
        if kind not in DIST_KINDS:
            return ck.report(line_of(raw, "dist", line), join(path, "dist"),
                             f"unknown distribution {describe(kind)}"
                             f"{suggest(str(kind), DIST_KINDS)}; expected one of: "
                             + ", ".join(DIST_KINDS))
        allowed = _DIST_PARAMS[kind]
        params: dict[str, Any] = {}
        ok = True
        for key, val in raw.items():
            at, ln = join(path, key), line_of(raw, key, line)
            if key == "dist":
                continue
            if key not in allowed:
                ck.report(ln, at, f"not a parameter of a {kind} distribution{suggest(key, allowed)}"
                          f" (it takes: {', '.join(allowed)})")
                ok = False
                continue
            params[key] = self._param(key, val, at, ln, ck)
            ok = ok and params[key] is not INVALID
        if not ok:
            return INVALID
        needs = _DIST_NEEDS[kind]
        if not any(set(n) == set(params) for n in needs):
            forms = " or ".join("+".join(n) for n in needs)
            return ck.report(line, path, f"a {kind} distribution needs {forms}"
                             f" (got: {', '.join(params) or 'none'})")
        if kind == "empirical" and "file" in params:
            params["samples"] = self._read_samples(params["file"], join(path, "file"),
                                                   line_of(raw, "file", line), ck)
            if params["samples"] is INVALID:
                return INVALID
        dist = Distribution(kind, **params)
        problem = _distribution_problem(dist)
        if problem:
            return ck.report(line, path, problem)
        return dist

    def _param(self, key: str, val: Any, path: str, line: int, ck: Checker) -> Any:
        if key == "cv":
            return number(0.0, lo_open=True).convert(val, path, line, ck)
        if key == "file":
            return TEXT.convert(val, path, line, ck)
        if key == "samples":
            return ListOf(self.value, min_items=1).convert(val, path, line, ck)
        return self.value.convert(val, path, line, ck)

    def _read_samples(self, name: str, path: str, line: int, ck: Checker) -> Any:
        full = os.path.join(ck.base_dir, name)
        try:
            with open(full, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh) if r and r[0].strip()]
        except OSError as exc:
            return ck.report(line, path, f"cannot read samples file {full!r}: {exc.strerror}")
        samples = []
        for i, row in enumerate(rows):
            try:
                samples.append(float(row[0]))
            except ValueError:
                if i == 0:
                    continue  # a header
                return ck.report(line, path, f"{full}:{i + 1}: not a number: {row[0]!r}")
        if not samples or min(samples) < 0:
            return ck.report(line, path, f"{full}: needs non-negative numbers, one per row")
        return tuple(samples)

    def dump(self, value: Distribution) -> Any:
        out: dict[str, Any] = {"dist": value.kind}
        for f in _DIST_PARAMS[value.kind]:
            v = getattr(value, f)
            if v is not None and f != "file":
                out[f] = list(v) if f == "samples" else v
        return out

    def schema(self) -> dict[str, Any]:
        v = self.value.schema()
        variants = []
        for kind, params in _DIST_PARAMS.items():
            props: dict[str, Any] = {"dist": {"const": kind}}
            for p in params:
                props[p] = ({"type": "array", "items": v} if p == "samples" else
                            {"type": "string"} if p == "file" else
                            _NUM if p == "cv" else v)
            variants.append({"type": "object", "properties": props, "required": ["dist"],
                             "additionalProperties": False})
        return {"description": f"a distribution of {self.what}, or a constant",
                "anyOf": [v, *variants]}


def _distribution_problem(d: Distribution) -> str:
    if d.kind == "exponential" and not (d.mean or 0) > 0:
        return "an exponential distribution needs mean > 0"
    if d.kind == "lognormal":
        if d.median is not None and d.p99 is not None:
            if d.median <= 0:
                return "a lognormal distribution needs median > 0"
            if d.p99 <= d.median:
                return f"p99 ({d.p99:g}) must be greater than the median ({d.median:g})"
        elif not (d.mean or 0) > 0:
            return "a lognormal distribution needs mean > 0"
    if d.kind == "gamma" and not (d.mean or 0) > 0:
        return "a gamma distribution needs mean > 0"
    if d.kind == "uniform" and (d.low or 0) > (d.high or 0):
        return f"low ({d.low:g}) must not exceed high ({d.high:g})"
    return ""


LATENCY = DistributionKind(duration(), "durations")
TOKENS = DistributionKind(number(0.0), "token counts")

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
}, check=_check_retry)

BREAKER = Record(CircuitBreaker, {
    "failure_rate": Field(Scalar(units.parse_fraction, FRACTION.schema(), lo=0.0, lo_open=True,
                                 hi=1.0)),
    "min_calls": Field(whole(1)),
    "window": Field(duration(lo_open=True)),
    "open_for": Field(duration(lo_open=True)),
    "half_open_calls": Field(whole(1)),
})

CALL = Record(Call, {
    "to": Field(TEXT, "the called service", required=True),
    "timeout": Field(duration(lo_open=True, nullable=True), "the caller abandons after this"),
    "retry": Field(RETRY),
    "circuit_breaker": Field(BREAKER),
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

LLM = Record(LLMConfig, {
    "max_batch": Field(whole(1), "sequences decoding together per replica"),
    "prompt_tokens": Field(TOKENS),
    "output_tokens": Field(TOKENS),
    "prefill_per_token": Field(duration(), "prefill time = prompt tokens x this"),
    "step": Field(Record(LLMStep, {"base": Field(duration()),
                                   "per_sequence": Field(duration())}),
                  "one decode step = base + per_sequence x batch size"),
})
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
}, check=_check_service, finish=_fill_service, title="service")

# ---------------------------------------------------------------- scenarios and faults

_FAULT_COMMON = {
    "type": Field(Enum(FAULT_TYPES), required=True),
    "target": Field(TEXT, "a service, or an edge caller->callee", required=True),
    "start": Field(duration()),
    "duration": Field(duration(lo_open=True, nullable=True), "default: to the end of the run"),
}
_REPLICAS = Field(whole(1), "how many replicas")
_FAULT_PARAMS: dict[str, dict[str, Field]] = {
    "latency": {"latency": Field(duration(), required=True), "jitter": Field(duration())},
    "bandwidth": {"rate": Field(BANDWIDTH, "bytes per second (100KB/s)", required=True)},
    "down": {},
    "timeout": {"timeout": Field(duration(), "connections close after this; 0: hang")},
    "reset_peer": {},
    "errors": {"rate": Field(FRACTION, "share of requests answered with status"),
               "status": Field(whole(400, 599))},
    "slow": {"factor": Field(number(0.0, lo_open=True), required=True)},
    "kill": {"replicas": _REPLICAS},
    "pause": {"replicas": _REPLICAS},
    "partition": {"replicas": _REPLICAS},
    "rollout": {"batch": Field(whole(1)), "startup": Field(duration()), "surge": Field(BOOL)},
}
_FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "latency": {"jitter": 0.0},
    "timeout": {"timeout": 0.0},
    "errors": {"rate": 1.0, "status": 500},
    "kill": {"replicas": 1},
    "pause": {"replicas": 1},
    "partition": {"replicas": 1},
    "rollout": {"batch": 1, "startup": 30.0, "surge": True},
}
_NO_DURATION = ("kill", "rollout")


def _fault_record(kind: str) -> Record:
    fields = dict(_FAULT_COMMON)
    if kind in _NO_DURATION:
        del fields["duration"]
    fields.update(_FAULT_PARAMS[kind])
    defaults = _FAULT_DEFAULTS.get(kind, {})
    return Record(Fault, fields, title=f"{kind} fault", finish=lambda f: dataclasses.replace(
        f, **{k: v for k, v in defaults.items() if getattr(f, k) is None}))


_FAULT_RECORDS = {kind: _fault_record(kind) for kind in FAULT_TYPES}


class FaultKind(Kind):
    """A fault: the fields allowed depend on its ``type``."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if not isinstance(value, dict):
            return ck.report(line, path, f"expected a fault mapping, got {describe(value)}")
        kind = value.get("type")
        if kind not in FAULT_TYPES:
            return _FAULT_COMMON["type"].kind.convert(kind, join(path, "type"),
                                                      line_of(value, "type", line), ck) \
                if kind is not None else ck.report(line, path, "missing required field 'type'")
        return _FAULT_RECORDS[kind].convert(value, path, line, ck)

    def dump(self, value: Fault) -> Any:
        return _FAULT_RECORDS[value.type].dump(value)

    def schema(self) -> dict[str, Any]:
        variants = []
        for kind, rec in _FAULT_RECORDS.items():
            s = rec.schema()
            s["properties"]["type"] = {"const": kind}
            variants.append(s)
        return {"oneOf": variants}


SCENARIO = Record(Scenario, {"description": Field(TEXT),
                             "faults": Field(ListOf(FaultKind()))}, title="scenario")

# ---------------------------------------------------------------- SLOs


def _metric_kind(metric: str) -> Scalar:
    if metric.startswith("latency_") or metric == "recovery_time":
        return duration()
    if metric in ("availability", "error_rate"):
        return FRACTION
    if metric == "throughput":
        return RATE
    return number(0.0)


class SLOKind(Kind):
    """``{name, metric, min|max, window, count_degraded}``; the limit's unit follows the metric."""

    FIELDS = ("name", "metric", "min", "max", "window", "count_degraded")

    def convert(self, raw: Any, path: str, line: int, ck: Checker) -> Any:
        if not isinstance(raw, dict):
            return ck.report(line, path, f"expected an SLO mapping, got {describe(raw)}")
        ok = True
        for key in raw:
            if key not in self.FIELDS:
                ck.report(line_of(raw, key, line), join(path, key),
                          f"unknown field{suggest(key, self.FIELDS)}")
                ok = False
        metric = raw.get("metric")
        if metric is None:
            return ck.report(line, path, "missing required field 'metric'")
        metric = Enum(SLO_METRICS).convert(metric, join(path, "metric"),
                                           line_of(raw, "metric", line), ck)
        ops = [op for op in ("min", "max") if op in raw]
        if len(ops) != 1:
            return ck.report(line, path, "give exactly one of min or max" if ops else
                             "missing the limit: give min or max")
        if metric is INVALID or not ok:
            return INVALID
        op = ops[0]
        values: dict[str, Any] = {
            "limit": _metric_kind(metric).convert(raw[op], join(path, op),
                                                  line_of(raw, op, line), ck),
            "name": TEXT.convert(raw.get("name", metric), join(path, "name"),
                                 line_of(raw, "name", line), ck),
            "window": Enum(("all", "fault", "steady")).convert(
                raw.get("window", "all"), join(path, "window"), line_of(raw, "window", line), ck),
            "count_degraded": BOOL.convert(raw.get("count_degraded", True),
                                           join(path, "count_degraded"),
                                           line_of(raw, "count_degraded", line), ck),
        }
        if any(v is INVALID for v in values.values()):
            return INVALID
        return SLO(metric=metric, op=op, **values)

    def dump(self, value: SLO) -> Any:
        return {"name": value.name, "metric": value.metric, value.op: value.limit,
                "window": value.window, "count_degraded": value.count_degraded}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["metric"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "metric": {"enum": list(SLO_METRICS)},
                               "min": {}, "max": {}, "window": {"enum": ["all", "fault",
                                                                          "steady"]},
                               "count_degraded": {"type": "boolean"}},
                "oneOf": [{"required": ["min"]}, {"required": ["max"]}]}


# ---------------------------------------------------------------- the whole file

TOPOLOGY = Record(Topology, {
    "version": Field(Scalar(_version, {"const": SUPPORTED_VERSION}), "schema version",
                     required=True),
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
