"""Distributions in the topology format: processing times and token counts."""

from __future__ import annotations

import csv
import os
from typing import Any

from .kinds import INVALID, Checker, Kind, ListOf, Scalar, describe, join, line_of, suggest
from .model import DIST_KINDS, Distribution
from .scalars import NUMBER_SCHEMA, TEXT, duration, number

__all__ = ["DistributionKind", "LATENCY", "TOKENS"]


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
                            NUMBER_SCHEMA if p == "cv" else v)
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
