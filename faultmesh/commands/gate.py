"""``faultmesh gate TOPOLOGY|RESULT_DIR``: judge every SLO, exit 0 pass / 1 fail / 2 bad input.

The one command besides sim that may import the simulator: given a topology file it runs the
scenarios in the simulator first; given result directories (either engine) it only reads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from topologies.errors import UsageError

__all__ = ["add_parser", "run", "simulate_scenarios"]

EXAMPLES = """examples:
  faultmesh gate topologies/rag-chat.yaml                       every scenario, simulated
  faultmesh gate topologies/rag-chat.yaml --scenario llm-brownout --seed 7 --junit slo.xml
  faultmesh gate results/nightly --junit slo.xml                judge runs already made
  faultmesh gate results/live-run --engine live                 only the live runs found there

With a topology, `--scenario all` (the default) simulates the fault-free baseline and every
scenario, into --out (default: a new temporary directory, printed). With a directory, every
result directory in it (or it itself) is judged. Each SLO is evaluated per run, including
`window: fault` and `window: steady`. A Markdown table goes to stdout and is appended to
$GITHUB_STEP_SUMMARY when set; --junit writes one testcase per run and SLO.

A partial (interrupted) run is no verdict: the gate exits 3 unless --allow-partial, which
judges it as it stands (still labelled partial in the table and the JUnit XML).

exit codes: 0 every SLO holds, 1 an SLO is violated, 2 bad input (no results, no SLOs),
3 a run is partial (interrupted; see --allow-partial) or measured no request, or an output
path cannot be written
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate", help="judge SLOs for CI (exit 0 pass, 1 fail)",
                       description="Evaluate every SLO of every scenario and exit 0 when all "
                       "hold, 1 when any fails, 2 on bad input.", epilog=EXAMPLES)
    p.add_argument("target", metavar="TOPOLOGY|RESULT_DIR",
                   help="topology YAML file (runs the simulator) or result directory(ies)")
    p.add_argument("--engine", choices=("sim", "live"), default=None,
                   help="engine to run a topology with (default sim); with directories, only "
                   "judge runs of this engine")
    p.add_argument("--scenario", default="all", metavar="NAME|all",
                   help="scenario to gate (default: all, which includes the baseline)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.add_argument("--allow-partial", action="store_true",
                   help="judge partial (interrupted) runs as they stand instead of exit 3; "
                   "they stay labelled partial")
    p.add_argument("--out", metavar="DIR", help="where simulated runs go (topology only)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0, as sim)")
    p.add_argument("--report", action="store_true",
                   help="also write report.html in each simulated result directory")
    p.set_defaults(run=run)


def simulate_scenarios(topology_path: str, scenario: str, out: str | None, seed: int,
                       report: bool = False, engine: str = "sim") -> list[str]:
    """Run the scenarios of a topology on an engine (``sim`` or ``live``); the result
    directories written."""
    import topologies
    from faultmesh import progress
    from faultmesh.runs import live_run, scenario_names, simulate_run

    topology = topologies.load(topology_path)
    names = scenario_names(topology, scenario)
    out = out or tempfile.mkdtemp(prefix=f"faultmesh-gate-{topology.name}-")
    dirs = []
    # scenarios done of all, and below it each run's own progress (a live run shows its own)
    with progress.Task(f"gate {topology.name}", total=len(names),
                       text=f"0/{len(names)} scenarios done") as task:
        for done, name in enumerate(names, start=1):
            directory = os.path.join(out, name)
            task.echo(f"{'simulating' if engine == 'sim' else 'running live'} "
                      f"{topology.name} / {name} (seed {seed}) -> {directory}")
            if engine == "live":
                live_run(topology, name, directory, seed=seed, report=report)
            else:
                with progress.simulation(f"sim {topology.name}/{name} seed {seed}") as show:
                    simulate_run(topology, name, directory, seed=seed, report=report,
                                 progress=show)
            dirs.append(directory)
            task.update(done, f"{done}/{len(names)} scenarios done")
    return dirs


def run(args: argparse.Namespace) -> int:
    import reports
    from faultmesh.outputs import check_output_dir, check_output_file
    from reports.gate import append_step_summary, markdown

    target = args.target
    # every output checked before minutes of simulating, not after
    if args.junit:
        check_output_file(args.junit, "--junit")
    if args.out and os.path.isfile(target):
        check_output_dir(args.out, "--out")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        check_output_file(os.environ["GITHUB_STEP_SUMMARY"], "$GITHUB_STEP_SUMMARY")
    if os.path.isfile(target):
        dirs = simulate_scenarios(target, args.scenario, args.out, args.seed, args.report,
                                  engine=args.engine or "sim")
        outcome = reports.gate(dirs, junit=args.junit, allow_partial=args.allow_partial)
    else:
        if not os.path.exists(target):
            raise UsageError(f"{target}: no such topology file or result directory")
        outcome = reports.gate([target], scenario=args.scenario, junit=None,
                               allow_partial=args.allow_partial)
        if args.engine:
            outcome.runs = [r for r in outcome.runs if r.result.engine == args.engine]
            if not outcome.runs:
                raise UsageError(f"{target}: no {args.engine} results here")
        if args.junit:
            from reports.junit import write_junit

            write_junit(outcome, args.junit)
    text = markdown(outcome)
    print(text, end="")
    summary_path = append_step_summary(text)
    if summary_path:
        print(f"appended the summary to {summary_path}", file=sys.stderr)
    if args.junit:
        print(f"wrote {args.junit}", file=sys.stderr)
    for r in outcome.unmeasured_runs:  # no verdict whatever the flags: exit 3, saying why
        print(f"faultmesh gate: {r.label}: not an SLO verdict: {r.unmeasured}", file=sys.stderr)
    if outcome.incomplete and any(r.partial for r in outcome.runs):
        print(f"faultmesh gate: {len(outcome.partial_runs)} run(s) partial (interrupted): no "
              "verdict (exit 3); --allow-partial judges them as they stand", file=sys.stderr)
    return outcome.exit_code
