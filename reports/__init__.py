"""Reports: metrics over result files, SLO evaluation, HTML reports and CI gate output.

Core abstraction: :class:`Result` (``result.py``), one run's result directory read back
(summary.json, requests/calls/timeseries/faults CSVs, topology.yaml) — the seam between the
engines and everything here; this package never imports an engine.

* ``metrics``    latency percentiles, availability, error rate, throughput, 5 s windows, LLM
                 token timings, per-service series
* ``resilience`` recovery time, retry amplification, blast radius, cascade timeline
* ``cost``       the bill from summary.json and cost over time from replicas x price
* ``slo``        SLO metric values over ``all`` / ``fault`` / ``steady`` windows and verdicts
* ``score``      the 0-100 resilience score and how it is made
* ``analysis``   every figure of one run computed once
* ``finalize``   the end-of-run step that writes resilience and SLOs into summary.json
* ``plots``      matplotlib figures as inline SVG (imported lazily)
* ``html``       the self-contained HTML report (one run, or a comparison of several)
* ``compare``    the table of differences and overlays between runs
* ``gate``       CI gate: results of many scenarios judged, JUnit XML and Markdown summary
"""

from .analysis import Analysis, analyse
from .finalize import finalize
from .gate import GateOutcome, gate
from .result import Result, is_result_dir, load_result
from .slo import SLOResult, evaluate_slos, metric_value

__all__ = [
    "Analysis",
    "GateOutcome",
    "Result",
    "SLOResult",
    "analyse",
    "evaluate_slos",
    "finalize",
    "is_result_dir",
    "load_result",
    "metric_value",
    "write_report",
    "gate",
]


def write_report(result_dirs: list[str], out: str | None = None) -> str:
    """Write the HTML report of one result directory, or a comparison of several; its path."""
    from .html import write_report as _write

    return _write(result_dirs, out)

