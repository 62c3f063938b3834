"""Units at the edge: durations, rates, sizes, bandwidths, percentages.

Inside faultmesh every time is seconds (float), every rate per second, every size bytes,
every share a fraction in [0, 1]. These parsers accept what a person writes in YAML and
raise ``ValueError`` with a message fit to show that person.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "parse_duration",
    "parse_rate",
    "parse_size",
    "parse_bandwidth",
    "parse_fraction",
    "format_duration",
]

_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_UNITS = {"s": 1.0, "m": 1 / 60.0, "h": 1 / 3600.0}
# Binary multiples, as Toxiproxy's bandwidth toxic counts them, so a size or bandwidth written
# here maps exactly onto a live fault.
# Ki/Mi/Gi as Kubernetes and Docker write memory limits (256Mi).
_SIZE_UNITS = {"b": 1, "kb": 1024, "kib": 1024, "ki": 1024, "mb": 1024**2, "mib": 1024**2,
               "mi": 1024**2, "gb": 1024**3, "gib": 1024**3, "gi": 1024**3}


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a {what}, got {_show(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite {what}, got {value}")
    return float(value)


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"[:80]


_QUANTITY = re.compile(
    r"\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([^\s0-9.]*)\s*")


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    m = _QUANTITY.fullmatch(text)
    if not m:
        raise ValueError(f"malformed {what} {text!r} (write it like {example})")
    return float(m.group(1)), m.group(2)


def parse_duration(value: object) -> float:
    """``250us``, ``3ms``, ``2s``, ``5m``, ``1h`` or a number of seconds -> seconds."""
    if isinstance(value, str):
        number, unit = _split(value, "duration", "250ms, 2s, 5m or 1h")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown duration unit {unit!r} in {value!r} "
                             "(use us, ms, s, m or h)" if unit else
                             f"duration {value!r} needs a unit: {value.strip()}s, "
                             f"{value.strip()}ms, ... (or a number without quotes, in seconds)")
        return number * _DURATION_UNITS[unit]
    return _number(value, "duration (like 250ms or 2s)")


def parse_rate(value: object) -> float:
    """``40/s``, ``600/m``, ``3600/h`` or a number per second -> per second."""
    if isinstance(value, str):
        text = value.strip()
        count, sep, unit = text.partition("/")
        if not sep or unit.strip() not in _RATE_UNITS:
            raise ValueError(f"malformed rate {value!r} (write it like 40/s, 600/m or 3600/h)")
        try:
            number = float(count)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"malformed rate {value!r} (write it like 40/s, 600/m or 3600/h)")
        return number * _RATE_UNITS[unit.strip()]
    return _number(value, "rate (like 40/s)")


def parse_size(value: object) -> float:
    """``512B``, ``64KB``, ``1MB``, ``256Mi``, ``1GB`` (binary multiples) or a number of
    bytes -> bytes."""
    if isinstance(value, str):
        number, unit = _split(value, "size", "512B, 64KB or 1MB")
        factor = _SIZE_UNITS.get(unit.lower())
        if factor is None:
            raise ValueError(f"unknown size unit {unit!r} in {value!r} "
                             "(use B, KB, MB, GB, Mi or Gi)")
        return number * factor
    return _number(value, "size (like 64KB)")


def parse_bandwidth(value: object) -> float:
    """``100KB/s``, ``1MB/s`` or a number of bytes per second -> bytes per second."""
    if isinstance(value, str):
        size, sep, unit = value.strip().partition("/")
        if not sep or unit.strip() != "s":
            raise ValueError(f"malformed bandwidth {value!r} (write it like 100KB/s or 1MB/s)")
        return parse_size(size)
    return _number(value, "bandwidth (like 100KB/s)")


def parse_fraction(value: object) -> float:
    """``99.5%`` or ``0.995`` -> 0.995 (range checks are the caller's)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                return float(text[:-1]) / 100.0
            except ValueError:
                pass
        raise ValueError(f"malformed percentage {value!r} (write it like 99.5% or 0.995)")
    return _number(value, "fraction (like 0.995 or 99.5%)")


def format_duration(seconds: float) -> str:
    """A short human form of a duration in seconds, for labels and messages."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:g}us"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:g}ms"
    if abs(seconds) < 120:
        return f"{seconds:g}s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
