"""Units at the edge of the reports: how a metric's value in base units reads to a person."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["metric_unit", "format_metric", "format_seconds", "format_usd", "json_number"]

_UNITS = {
    "availability": "%", "error_rate": "%", "throughput": "req/s", "cost_total": "USD",
    "cost_per_1k": "USD", "recovery_time": "s", "retry_amplification": "x",
}


def metric_unit(metric: str) -> str:
    """The display unit of an SLO metric (latency metrics and recovery_time are seconds)."""
    return "s" if metric.startswith("latency_") else _UNITS.get(metric, "")


def format_seconds(value: float) -> str:
    """``0.0123`` -> ``12.3 ms``, ``3.2`` -> ``3.20 s``, ``inf`` -> ``never``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "never"
    if value == 0:
        return "0 s"
    if abs(value) < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if abs(value) < 1:
        return f"{value * 1e3:.3g} ms"
    if abs(value) < 600:
        return f"{value:.3g} s"
    return f"{value / 60:.1f} min"


def format_usd(value: float) -> str:
    """Dollars with enough digits for cents-level and sub-cent bills."""
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 10:
        return f"${value:,.2f}"
    if value == 0 or abs(value) >= 1e-6:
        # fixed-point with 4 significant digits: $0.3142, $0.00005098, never 5.098e-05
        digits = max(0, 3 - math.floor(math.log10(abs(value)))) if value else 2
        return f"${value:.{digits}f}"
    return "<$0.000001"


def format_metric(metric: str, value: float | None) -> str:
    """A metric's value in its display unit, e.g. ``availability`` 0.995 -> ``99.50 %``."""
    return format_value(metric_unit(metric), value)


def format_value(unit: str, value: float | None) -> str:
    """A value in a display unit: ``s``, ``%`` (of a fraction), ``USD``, ``x``, ``req/s`` or
    plain (anything else)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        return format_seconds(value)
    if unit == "%":
        return f"{value * 100:.2f} %"
    if unit == "USD":
        return format_usd(value)
    if unit == "x":
        return f"{value:.3g}x" if abs(value) >= 10 else f"{value:.2f}x"
    if unit == "req/s":
        return f"{value:.3g} req/s"
    return f"{value:.4g}"


def json_number(value: Any) -> Any:
    """A float for JSON: NaN and infinities become None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
