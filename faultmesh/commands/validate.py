"""``faultmesh validate TOPOLOGY...``: check files whole, report every problem."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh validate topologies/rag-chat.yaml
  faultmesh validate topologies/*.yaml
  faultmesh validate --json topologies/agent.yaml

Each problem is one line, FILE:LINE: path.to.field: message; exit 0 when every file is
valid, 2 otherwise. Services the entry cannot reach are warned about (exit stays 0).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check topology files and report every problem",
                       description="Validate topology files: the whole file is checked and "
                       "every problem reported.", epilog=EXAMPLES)
    p.add_argument("topologies", nargs="+", metavar="TOPOLOGY", help="topology YAML file(s)")
    p.add_argument("--json", action="store_true", help="print the graph analysis as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import topologies
    from topologies.graph import summarize

    failed = False
    reports = []
    for path in args.topologies:
        try:
            topo = topologies.load(path)
        except topologies.TopologyError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        summary = summarize(topo)
        if args.json:
            reports.append({"file": path, **summary.to_dict()})
            continue
        for name in summary.unreachable:
            print(f"{path}: warning: services.{name}: not reachable from the entry "
                  f"{topo.entry!r}; it receives no traffic", file=sys.stderr)
        if not args.quiet:
            print(f"{path}: ok")
            for line in summary.lines():
                print("  " + line)
    if args.json:
        json.dump(reports, sys.stdout, indent=2)
        print()
    return 2 if failed else 0
