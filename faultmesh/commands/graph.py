"""``faultmesh graph TOPOLOGY [-o FILE]``: draw the call graph of a topology (PNG or SVG)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh graph topologies/rag-chat.yaml                 writes ./rag-chat.png
  faultmesh graph topologies/agent.yaml -o docs/agent.svg
  faultmesh graph my-topology.yaml -o /tmp/graph.png

Services are laid out left to right by call depth from the entry and coloured by kind;
each arrow is a call, labelled with its step number, timeout, retry attempts, circuit
breaker (CB), degrade fallback and probability; parallel calls are dashed.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="draw a topology's call graph (PNG or SVG)",
                       description="Draw the call graph of a topology: services, calls and "
                       "their timeouts, retries and breakers.", epilog=EXAMPLES)
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file, .png or .svg (default: <topology name>.png here)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import topologies
    from faultmesh.outputs import check_output_file
    from topologies.draw import draw
    from topologies.graph import summarize

    topology = topologies.load(args.topology)
    output = check_output_file(args.output or f"{topology.name}.png", "-o")
    written = draw(topology, output)
    summary = summarize(topology)
    for name in summary.unreachable:
        print(f"{args.topology}: warning: services.{name}: not reachable from the entry "
              f"{topology.entry!r}", file=sys.stderr)
    print(f"wrote {written} ({summary.services} services, {summary.calls} calls, "
          f"depth {summary.depth})")
    return 0
