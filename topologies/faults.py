"""Scenarios, faults and SLOs in the topology format.

A fault's allowed fields depend on its ``type``; an SLO's limit takes the unit of its metric.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import units
from .kinds import (
    INVALID,
    Checker,
    Enum,
    Field,
    Kind,
    ListOf,
    Record,
    Scalar,
    check_known,
    describe,
    join,
    line_of,
)
from .model import FAULT_TYPES, SLO, SLO_METRICS, Fault, Scenario
from .scalars import BANDWIDTH, BOOL, FRACTION, RATE, SIZE, TEXT, duration, number, whole

__all__ = ["FaultKind", "SLOKind", "SCENARIO"]


_FAULT_COMMON = {
    "type": Field(Enum(FAULT_TYPES), required=True),
    "target": Field(TEXT, "a service, or an edge caller->callee", required=True),
    "start": Field(duration()),
    "duration": Field(duration(lo_open=True, nullable=True), "default: to the end of the run"),
}
_REPLICAS = Field(whole(1), "how many replicas")


def _probability(value: Any) -> float:
    p = units.parse_fraction(value)
    if p >= 1.0:
        raise ValueError(f"must be less than 1 (every packet lost is a `down` or a "
                         f"`partition` fault), got {value}")
    return p


_PROBABILITY = Scalar(_probability, FRACTION.schema(), lo=0.0, lo_open=True)
_LIMIT = Scalar(units.parse_size, SIZE.schema(), lo=0.0, lo_open=True)
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
    "loss": {"probability": Field(_PROBABILITY, "share of packets lost, each way",
                                  required=True)},
    "cpu": {"fraction": Field(Scalar(units.parse_fraction, FRACTION.schema(), lo=0.0,
                                     lo_open=True, hi=1.0),
                              "the share of its CPU the service keeps", required=True)},
    "memory": {"limit": Field(_LIMIT, "memory limit per replica (256Mi)", required=True)},
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
        ok = check_known(raw, self.FIELDS, path, line, ck)
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
