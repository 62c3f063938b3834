"""One engine run, end to end: simulate, write the result directory, add the SLO verdicts
and (unless told not) the HTML report. The CLI commands and notebooks take this one path."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from typing import Any

from topologies import Topology, UsageError

__all__ = ["scenario_names", "simulate_run", "live_run"]


def scenario_names(topology: Topology, scenario: str | None) -> list[str]:
    """The scenarios ``--scenario`` asks for: ``all`` is the fault-free baseline and every
    scenario; None is the baseline."""
    if scenario in (None, "baseline"):
        return ["baseline"]
    if scenario == "all":
        return ["baseline", *(n for n in topology.scenarios if n != "baseline")]
    if scenario not in topology.scenarios:
        from topologies.kinds import suggest

        choices = ["baseline", *topology.scenarios, "all"]
        hint = suggest(scenario, choices) or f" (known: {', '.join(choices)})"
        raise UsageError(f"--scenario {scenario!r}: not defined in {topology.name}{hint}")
    return [scenario]


def simulate_run(topology: Topology, scenario: str | None, out: str, *, seed: int = 0,
                 duration: float | None = None, report: bool = True,
                 progress: Callable[[float, float, int], None] | None = None) -> dict[str, Any]:
    """Simulate one scenario into the result directory ``out``; returns the final summary.
    ``progress(now, duration, requests)`` is called as the simulated time advances.

    An interrupted simulation still writes its results (``"partial": true``), their
    figures and its report (flagged partial), and then raises KeyboardInterrupt.
    """
    import simulator
    from faultmesh.commands._finish import finish_run
    from faultmesh.timescale import capped

    topology, duration = capped(topology, duration)  # FAULTMESH_MAX_DURATION, if set
    result = simulator.simulate(topology, scenario, seed=seed, duration=duration,
                                progress=progress)
    result.write(out)
    partial = result.summary.get("partial")
    # the tables are on disk: free them (and the simulation's reference cycles, which hold
    # the recorder's columns) before finalize reads the files back
    del result
    gc.collect()
    finish_run(out, report=report)  # a partial run gets its figures and flagged report too
    if partial:
        raise KeyboardInterrupt
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def live_run(topology: Topology, scenario: str | None, out: str, *, seed: int = 0,
             duration: float | None = None, report: bool = True,
             toxiproxy_url: str | None = None, web: bool = False,
             runtime: str = "process", load_workers: int = 0) -> dict[str, Any]:
    """Run one scenario live (local processes or containers, proxies, Locust) into ``out``
    (``runtime``: ``process`` or ``docker``; ``load_workers`` > 0: the load from a Locust
    master and that many worker processes); returns the
    final summary. Interrupted during the load, it writes what it has (``"partial": true``),
    its figures and its report (flagged partial), and raises KeyboardInterrupt."""
    from chaos.live import LiveRun
    from faultmesh import progress
    from faultmesh.commands._finish import finish_run
    from faultmesh.timescale import capped

    topology, duration = capped(topology, duration)  # FAULTMESH_MAX_DURATION, if set
    label = f"live {topology.name}/{scenario or 'baseline'}"
    with progress.LiveView(label, duration or topology.workload.duration) as view:
        run = LiveRun(topology, scenario, seed=seed, duration=duration, out=out,
                      toxiproxy_url=toxiproxy_url, web=web, watch=view, runtime=runtime,
                      load_workers=load_workers)
        try:
            run.run()
        except KeyboardInterrupt:
            if run.results_written:  # stopped during the load: what it measured is on disk
                if report:
                    view.phase("writing the report of the partial run")
                finish_run(out, report=report)
            raise
        if report:
            view.phase("writing the report")
        return finish_run(out, report=report)
