"""faultmesh's front door: the ``faultmesh`` command (``cli.py``, one module per command in
``commands/``) and a small facade of the main calls, so a notebook does what the CLI does.

    import faultmesh
    topo = faultmesh.load("topologies/rag-chat.yaml", overrides={"services.llm.replicas": 6})
    summary = faultmesh.simulate_run(topo, "llm-brownout", "results/rag-6")   # files + report
    result = faultmesh.simulate(topo, "llm-brownout", seed=3)   # in memory: .requests, .summary
    faultmesh.write_report(["results/rag-6", "results/rag-4"], "compare.html")

Everything heavy (simpy, pandas, matplotlib) is imported on first use, not here.
"""

from __future__ import annotations

from typing import Any

from topologies import (
    FaultmeshError,
    RunError,
    Topology,
    TopologyError,
    UsageError,
    dump,
    load,
    loads,
    override,
)

from .runs import live_run, scenario_names, simulate_run

__all__ = [
    "FaultmeshError", "RunError", "Topology", "TopologyError", "UsageError",
    "load", "loads", "override", "dump", "simulate", "simulate_run", "live_run", "scenario_names",
    "load_result", "finalize", "write_report", "gate",
]


def simulate(topology: Topology, scenario: Any = None, **kwargs: Any) -> Any:
    """``simulator.simulate``: one simulated run in memory (nothing written)."""
    import simulator

    return simulator.simulate(topology, scenario, **kwargs)


def load_result(result_dir: str) -> Any:
    """``reports.load_result``: a result directory of either engine, as DataFrames."""
    import reports

    return reports.load_result(result_dir)


def finalize(result_dir: str) -> dict:
    """``reports.finalize``: add resilience figures and SLO verdicts to summary.json."""
    import reports

    return reports.finalize(result_dir)


def write_report(result_dirs: list[str], out: str | None = None) -> str:
    """``reports.write_report``: one HTML report (several directories: a comparison)."""
    import reports

    return reports.write_report(result_dirs, out)


def gate(result_dirs: list[str], junit: str | None = None) -> Any:
    """``reports.gate``: judge every SLO of the result directories (``.exit_code``)."""
    import reports

    return reports.gate(result_dirs, junit=junit)
