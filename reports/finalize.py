"""The end-of-run step: resilience figures and SLO verdicts added to summary.json."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from topologies.files import atomic_write_text

from .analysis import analyse
from .result import load_result

__all__ = ["finalize", "write_summary", "readable"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _clean(value.item())
    return value


def readable(path: str) -> None:
    """Give a written file the usual permissions (atomic_write's temporary file is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_summary(result_dir: str, summary: dict[str, Any]) -> None:
    """Write summary.json atomically as strict JSON (NaN and infinities become null)."""
    text = json.dumps(_clean(summary), indent=2, allow_nan=False) + "\n"
    path = os.path.join(result_dir, "summary.json")
    atomic_write_text(path, text)
    readable(path)


def finalize(result_dir: str) -> dict[str, Any]:
    """Compute ``resilience`` and ``slos`` of a result directory and rewrite its summary.json.

    ``resilience`` is {recovery_time, recovered, retry_amplification, blast_radius, cascade,
    score} (``cascade``: :meth:`Analysis.cascade`);
    ``slos`` is a list of {name, metric, limit, op, value, pass, window}. Works without
    faults (recovery_time 0, empty blast radius) and without SLOs (empty list). Returns the
    summary as written.
    """
    analysis = analyse(load_result(result_dir, lean=True))
    summary = dict(analysis.result.summary)
    summary["resilience"] = analysis.resilience()
    summary["slos"] = [s.to_dict() for s in analysis.slos]
    summary = _clean(summary)
    write_summary(result_dir, summary)
    return summary
