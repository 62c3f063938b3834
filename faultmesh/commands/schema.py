"""``faultmesh schema``: the JSON Schema of the topology file, for editors."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh schema > faultmesh-topology.schema.json
  # VS Code (YAML extension), at the top of a topology file:
  # yaml-language-server: $schema=./faultmesh-topology.schema.json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of the topology file format",
                       description="Print the JSON Schema (draft 2020-12) of topology files "
                       "so editors can validate and autocomplete them.", epilog=EXAMPLES)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from faultmesh.outputs import check_output_file
    from topologies import json_schema
    from topologies.files import atomic_write_text

    if args.output:
        check_output_file(args.output, "-o")
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
    else:
        print(text, end="")
    return 0
