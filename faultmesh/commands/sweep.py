"""``faultmesh sweep TOPOLOGY --set path=v1,v2,...``: a grid of simulations on Dask."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh sweep topologies/rag-chat.yaml --set services.llm.replicas=3,4,6,8
  faultmesh sweep topologies/rag-chat.yaml --set services.llm.replicas=3,6 \\
      --set workload.rate=4/s,8/s --scenario llm-brownout --replications 3
  faultmesh sweep topologies/router.yaml --set services.large-llm.replicas=2,3,4 \\
      --scheduler tcp://127.0.0.1:8786 --out results/router-sweep

Every combination of the --set lists is run for each scenario (--scenario all: the baseline
and every scenario) and each seed (--seed .. --seed+K-1 with --replications K), as tasks on a
local Dask cluster of worker processes (--workers N, default one per core) or on the cluster
at --scheduler (its workers need faultmesh installed and --out on a shared filesystem;
`dask scheduler` and `dask worker tcp://127.0.0.1:8786` make one on this machine).
A service's replicas must stay within its autoscale min..max: sweep
services.NAME.autoscale.min (or .max) with it to go outside them.
Each run is a full result directory under --out; sweep.csv and sweep.json list them all,
one row per run, and report.html compares them (unless --no-report).

exit codes: 0 every SLO of every run holds, 1 an SLO is violated somewhere, 2 bad input,
3 the scheduler cannot be reached or --out cannot be written
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of simulations (parameter sweep) on Dask",
                       description="Simulate a topology at every point of a grid of "
                       "overrides, as Dask tasks.", epilog=EXAMPLES)
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("--set", dest="sets", action="append", default=[], required=True,
                   metavar="PATH=V1,V2,...", help="one axis of the grid; repeatable")
    p.add_argument("--scenario", default=None, metavar="NAME|all",
                   help="scenario to run at every point (default: the baseline)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="first seed (default 0)")
    p.add_argument("--replications", type=int, default=1, metavar="K",
                   help="seeds per point (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default: a local cluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local cluster worker processes (default: one per core)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="sweep directory (default results/<topology>-sweep)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import topologies
    from faultmesh.console import format_latency, format_share, format_usd
    from faultmesh.outputs import check_output_dir
    from faultmesh.sweep import parse_grid, run_sweep, sweep_points
    from topologies import UsageError

    if args.replications < 1:
        raise UsageError("--replications: must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers: must be at least 1")
    topology = topologies.load(args.topology)
    grid = parse_grid(args.sets)
    seeds = list(range(args.seed, args.seed + args.replications))
    points = sweep_points(topology, grid, args.scenario, seeds)
    out = args.out or os.path.join("results", f"{topology.name}-sweep")
    check_output_dir(out, "--out")  # before a cluster starts, not after the runs
    print(f"sweep: {len(points)} runs ({' x '.join(str(len(v)) for v in grid.values())} points"
          f", {len({p.scenario for p in points})} scenario(s), {len(seeds)} seed(s)) -> {out}")
    rows = run_sweep(topology, points, out, scheduler=args.scheduler, workers=args.workers)
    axes = list(grid)
    head = " ".join(f"{_short_axis(a):>14}" for a in axes)
    print(f"{head} {'scenario':<22} {'seed':>4} {'avail':>8} {'p50':>8} {'p99':>8} "
          f"{'$/1k':>8} {'SLOs':>5}")
    for row in rows:
        cells = " ".join(f"{str(row[a]):>14}" for a in axes)
        judged = row["slos_passed"] + row["slos_failed"]
        print(f"{cells} {row['scenario'][:22]:<22} {row['seed']:>4} "
              f"{format_share(row['availability']):>8} {format_latency(row['latency_p50']):>8} "
              f"{format_latency(row['latency_p99']):>8} {format_usd(row['cost_per_1k']):>8} "
              f"{(str(row['slos_passed']) + '/' + str(judged)) if judged else '-':>5}")
    if not args.no_report:
        import reports

        path = reports.write_report([r["directory"] for r in rows],
                                    os.path.join(out, "report.html"))
        print(f"report: {path}")
    print(f"results: {os.path.join(out, 'sweep.csv')}")
    return 1 if any(r["slos_failed"] for r in rows) else 0


def _short_axis(path: str) -> str:
    return path.removeprefix("services.").removeprefix("workload.")[-14:]
