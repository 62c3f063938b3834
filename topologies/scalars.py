"""Scalar field kinds of the topology format: numbers, texts and quantities with units."""

from __future__ import annotations

from typing import Any

from . import units
from .kinds import Scalar, describe

__all__ = ["duration", "whole", "number", "RATE", "POSITIVE_RATE", "SIZE", "BANDWIDTH",
           "FRACTION", "TEXT", "BOOL", "MONEY", "NUMBER_SCHEMA", "SUPPORTED_VERSION", "VERSION"]

SUPPORTED_VERSION = 1



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


NUMBER_SCHEMA = {"type": "number"}
_UNIT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*"


def _with_units(pattern: str) -> dict[str, Any]:
    return {"anyOf": [NUMBER_SCHEMA, {"type": "string", "pattern": _UNIT + pattern + r"\s*$"}]}


DURATION_SCHEMA = _with_units("(us|µs|ms|s|m|h)")


def duration(lo: float = 0.0, *, lo_open: bool = False, nullable: bool = False) -> Scalar:
    return Scalar(units.parse_duration, DURATION_SCHEMA, lo=lo, lo_open=lo_open,
                  nullable=nullable, unit="s")


def whole(lo: int = 0, hi: int | None = None, *, nullable: bool = False) -> Scalar:
    return Scalar(_int, {"type": "integer"}, lo=lo, hi=hi, nullable=nullable)


def number(lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = False) -> Scalar:
    return Scalar(_number, NUMBER_SCHEMA, lo=lo, hi=hi, lo_open=lo_open)


RATE = Scalar(units.parse_rate, _with_units(r"/\s*(s|m|h)"), lo=0.0, unit="/s")
POSITIVE_RATE = Scalar(units.parse_rate, _with_units(r"/\s*(s|m|h)"), lo=0.0, lo_open=True,
                       unit="/s")
SIZE = Scalar(units.parse_size, _with_units("(B|KB|KiB|Ki|MB|MiB|Mi|GB|GiB|Gi|b|kb|mb|gb)"), lo=0.0)
BANDWIDTH = Scalar(units.parse_bandwidth, _with_units(r"(B|KB|MB|GB)/s"), lo=0.0, lo_open=True)
FRACTION = Scalar(units.parse_fraction, {"anyOf": [NUMBER_SCHEMA, {"type": "string",
                                                          "pattern": r"^[0-9.]+%$"}]},
                  lo=0.0, hi=1.0)
TEXT = Scalar(_text, {"type": "string"})
BOOL = Scalar(_bool, {"type": "boolean"})
MONEY = number(0.0)
VERSION = Scalar(_version, {"const": SUPPORTED_VERSION})
