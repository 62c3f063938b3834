"""``faultmesh live TOPOLOGY``: run the topology as real processes or containers under load and
faults."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "run", "warn_notes"]

EXAMPLES = """examples:
  faultmesh live topologies/rag-chat.yaml --duration 60s
  faultmesh live topologies/rag-chat.yaml --scenario vectordb-outage --out results/outage-live
  faultmesh live topologies/rag-chat.yaml --scenario llm-brownout --toxiproxy http://127.0.0.1:8474
  faultmesh live topologies/rag-chat.yaml --web          # Locust's web UI on 127.0.0.1:8089
  faultmesh live topologies/recommender.yaml --runtime docker --scenario online-store-packet-loss
  faultmesh live topologies/rag-chat.yaml --duration 60s --load-workers 2

Every replica of every service runs as one emulator process on 127.0.0.1 (--runtime
docker: one container on a network of the run's own, your image: services included), a
Toxiproxy proxy sits on every dependency edge (the built-in server unless --toxiproxy),
Locust offers the
workload and the scenario's faults are injected while it runs (--load-workers N: from a
Locust master and N worker processes on this machine, for rates one process cannot hold;
requests.csv still has every request once). Results: the simulator's
result directory (default results/<topology>-<scenario>-live); compare them with
`faultmesh report SIM_DIR LIVE_DIR`. Ctrl-C stops the run and writes what was collected,
marked "partial": true. See docs/live.md.

exit codes: 0 every SLO holds, 1 an SLO is violated, 2 bad input, 3 environment problem
(a port taken, a process that would not start, no Docker engine for --runtime docker, an
output path that cannot be written, a run that measured no request), 130 interrupted by
Ctrl-C (SIGTERM 143, SIGHUP 129: the same partial results and teardown)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="run a topology as real processes or containers under "
                       "load and faults",
                       description="Start the topology as local processes or containers "
                       "behind fault proxies, load it with Locust, inject a scenario's faults "
                       "and write a result directory.", epilog=EXAMPLES)
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("--scenario", default=None, metavar="NAME",
                   help="scenario to run (default: baseline, no faults)")
    p.add_argument("--runtime", choices=("process", "docker"), default="process",
                   help="how replicas run: local processes (default) or Docker containers")
    p.add_argument("--web", action="store_true", help="serve Locust's web UI during the run")
    p.add_argument("--load-workers", type=int, default=0, metavar="N",
                   help="run the load as a Locust master and N worker processes on this "
                   "machine (default 0: one load process)")
    p.add_argument("--duration", default=None, metavar="D",
                   help="run length, e.g. 60s (default: workload.duration)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--toxiproxy", default=None, metavar="URL",
                   help="use this Toxiproxy server instead of the built-in one")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="result directory (default results/<topology>-<scenario>-live)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import topologies
    from faultmesh.arguments import duration_option
    from faultmesh.console import failed_slos, run_table
    from faultmesh.measured import require_measured
    from faultmesh.outputs import check_output_dir
    from faultmesh.runs import live_run, scenario_names
    from topologies.errors import UsageError

    if args.seed < 0:
        raise UsageError("--seed: must not be negative")
    from loadtests.distributed import MAX_WORKERS

    if not 0 <= args.load_workers <= MAX_WORKERS:
        raise UsageError(f"--load-workers: expected 0 to {MAX_WORKERS}, not {args.load_workers}")
    topo = topologies.load(args.topology)
    duration = None
    if args.duration is not None:
        duration = duration_option(args.duration, warmup=topo.workload.warmup)
    scenario = args.scenario or "baseline"
    if scenario == "all":
        raise UsageError("--scenario all: a live run takes one scenario at a time")
    scenario = scenario_names(topo, scenario)[0]
    out = args.out or os.path.join("results", f"{topo.name}-{scenario}-live")
    check_output_dir(out, "--out")  # before starting a process, not after the run
    try:
        summary = live_run(topo, scenario, out, seed=args.seed, duration=duration,
                           report=not args.no_report, toxiproxy_url=args.toxiproxy, web=args.web,
                           runtime=args.runtime, load_workers=args.load_workers)
    except KeyboardInterrupt:
        written = _written_summary(out)
        # interrupted while the replicas started, before the load: nothing was measured
        print("faultmesh live: interrupted; " + (
            f"results so far written to {out}, marked partial" if written
            and written.get("partial") else "stopped before the load began, no results"),
            file=sys.stderr)
        warn_notes(written)
        from faultmesh.signals import interrupted_exit_code

        return interrupted_exit_code()  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    # the table sim prints, in the same units
    print(run_table([(f"{scenario} live", summary)]))
    print(f"results: {out}")
    warn_notes(summary)   # e.g. the load generator fell behind: the figures are not whole
    require_measured([(f"{topo.name}/{scenario} live", summary)])  # else no verdict: exit 3
    failed = failed_slos(summary)
    if failed:
        print("SLOs violated (exit 1): " + "; ".join(failed))
        return 1
    return 0


def warn_notes(summary: dict | None) -> None:
    """Every note of a run's summary.json as ``warning: ...`` on stderr (the load generator
    fell behind, its CPU saturated, an interruption): what makes the figures less than whole."""
    for note in (summary or {}).get("notes") or []:
        print(f"warning: {note}", file=sys.stderr)


def _written_summary(out: str) -> dict | None:
    """summary.json in ``out`` when an interrupted run got to write it, else None."""
    import json

    try:
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
