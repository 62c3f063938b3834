"""``faultmesh sim TOPOLOGY``: run the discrete-event simulation and write a result directory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from faultmesh.console import failed_slos, replications_table, run_table

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh sim topologies/rag-chat.yaml
  faultmesh sim topologies/rag-chat.yaml --scenario llm-brownout --seed 7 --out results/brownout
  faultmesh sim topologies/rag-chat.yaml --scenario all --duration 120s --no-report
  faultmesh sim topologies/rag-chat.yaml --set services.llm.replicas=6 --rate 20/s
  faultmesh sim topologies/rag-chat.yaml --replications 5     # seeds 0..4, means with 95% CIs

Results: results/<topology>-<scenario>/ holds summary.json, requests.csv, calls.csv,
timeseries.csv, faults.csv, topology.yaml (and report.html unless --no-report). With
--scenario all each scenario (and the fault-free baseline) gets its own subdirectory; with
--replications K each seed does, beside replications.json. Ctrl-C stops the run and writes
what was collected, marked "partial": true.

exit codes: 0 every SLO holds, 1 an SLO is violated, 2 bad input, 3 environment problem (an
output path that cannot be written, a run that measured no request), 130 interrupted by
Ctrl-C (SIGTERM 143, SIGHUP 129: the same partial results)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="simulate a topology (discrete-event) and write results",
                       description="Simulate a topology under a scenario with the "
                       "discrete-event engine and write a result directory.", epilog=EXAMPLES)
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("--scenario", default=None, metavar="NAME|all",
                   help="scenario to run (default: baseline, no faults); 'all' runs each")
    p.add_argument("--duration", default=None, metavar="D",
                   help="simulated duration, e.g. 300s or 10m (default: workload.duration)")
    p.add_argument("--rate", default=None, metavar="R",
                   help="open-workload arrival rate, e.g. 40/s (replaces rate and profile)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--replications", type=int, default=1, metavar="K",
                   help="run K seeds (seed..seed+K-1) and aggregate with 95%% CIs")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                   help="override a field by dotted path (value read as YAML scalar); repeatable")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="result directory (default results/<topology>-<scenario>)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(run=run)


def _overrides(sets: list[str]) -> dict[str, str]:
    from topologies.errors import UsageError

    out = {}
    for item in sets:
        path, eq, value = item.partition("=")
        if not eq or not path.strip():
            raise UsageError(f"--set {item!r}: expected PATH=VALUE, e.g. services.llm.replicas=4")
        out[path.strip()] = value
    return out


def _load(args: argparse.Namespace) -> Any:
    import topologies
    from faultmesh.arguments import duration_option
    from topologies.errors import UsageError
    from topologies.units import parse_rate

    args.duration_s = None
    if args.replications < 1:
        raise UsageError("--replications: must be at least 1")
    if args.seed < 0:
        raise UsageError("--seed: must not be negative")
    topo = topologies.load(args.topology, overrides=_overrides(args.sets) or None)
    wl = topo.workload
    try:
        if args.rate is not None:
            rate = parse_rate(args.rate)
            if not rate > 0:
                raise UsageError(f"--rate: must be positive, not {args.rate}")
            wl = dataclasses.replace(wl, model="open", rate=rate, profile=None)
        if args.duration is not None:
            args.duration_s = duration_option(args.duration, warmup=wl.warmup)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return dataclasses.replace(topo, workload=wl) if wl is not topo.workload else topo


def _one(topo: Any, scenario: str, seed: int, out: str, report: bool,
         duration: float | None) -> dict:
    from faultmesh import progress
    from faultmesh.runs import simulate_run

    with progress.simulation(f"sim {topo.name}/{scenario} seed {seed}") as show:
        return simulate_run(topo, scenario, out, seed=seed, duration=duration, report=report,
                            progress=show)


def run(args: argparse.Namespace) -> int:
    from faultmesh.measured import require_measured
    from faultmesh.outputs import check_output_dir
    from faultmesh.runs import scenario_names
    from simulator.replications import aggregate
    from topologies.files import atomic_write_text

    topo = _load(args)
    scenarios = scenario_names(topo, args.scenario)
    label = "all" if args.scenario == "all" else args.scenario or "baseline"
    base = args.out or os.path.join("results", f"{topo.name}-{label}")
    check_output_dir(base, "--out")  # before minutes of simulation, not after
    rows: list[tuple[str, dict]] = []
    report = not args.no_report
    try:
        for scenario in scenarios:
            name = scenario
            out = os.path.join(base, name) if args.scenario == "all" else base
            if args.replications == 1:
                rows.append((name, _one(topo, scenario, args.seed, out, report, args.duration_s)))
                continue
            summaries = []
            for k in range(args.replications):
                seed = args.seed + k
                s = _one(topo, scenario, seed, os.path.join(out, f"seed-{seed}"), report,
                         args.duration_s)
                summaries.append(s)
                rows.append((f"{name} seed {seed}", s))
            agg = aggregate(summaries)
            agg.update({"topology": topo.name, "scenario": name})
            atomic_write_text(os.path.join(out, "replications.json"),
                              json.dumps(agg, indent=2, default=str) + "\n")
            print(f"{name}: {args.replications} replications -> "
                  f"{os.path.join(out, 'replications.json')}")
            print(replications_table(agg))
    except KeyboardInterrupt:
        print(run_table(rows) if rows else "", file=sys.stderr)
        print("faultmesh sim: interrupted; results so far written, marked partial",
              file=sys.stderr)
        from faultmesh.signals import interrupted_exit_code

        return interrupted_exit_code()  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    print(run_table(rows))
    print(f"results: {base}")
    require_measured(rows)  # no request measured: no verdict, exit 3
    failed = sorted({f"{name}: {slo}" for name, summary in rows
                     for slo in failed_slos(summary)})
    if failed:
        print("SLOs violated (exit 1): " + "; ".join(failed))
        return 1
    return 0
