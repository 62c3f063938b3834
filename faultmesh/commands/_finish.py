"""What every engine run does after its result files are written: figures, SLOs, report."""

from __future__ import annotations

__all__ = ["finish_run"]


def finish_run(result_dir: str, *, report: bool = True) -> dict:
    """Add resilience figures and SLO verdicts to summary.json and (unless told not) report.html.

    Returns the final summary.
    """
    import reports

    summary = reports.finalize(result_dir)
    if report:
        reports.write_report([result_dir])
    return summary
