"""``faultmesh export compose TOPOLOGY -o FILE``: the topology as a docker-compose file a person
runs by hand (chaos.compose)."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh export compose topologies/rag-chat.yaml -o docker-compose.yml
  faultmesh export compose topologies/recommender.yaml -o rec.yml --port-base 18474

writes FILE (compose format 2.4: docker-compose 1.29 and Compose v2 run it) and beside it
<FILE stem>.faultmesh/ with the resolved topology, the proxies' Toxiproxy -config file and
the replicas' logs. One service per replica (the emulator image, built here when missing, or
the service's image:), one proxy service with a proxy on every edge, health checks and
depends_on service_healthy. The proxy API (8474) and the entry's proxies are published on
127.0.0.1: ephemeral host ports (docker-compose port proxy 8474), or --port-base N: the API on
N, the entry's proxies on N+1, N+2, ... The header comment says how to inject each scenario's
faults by hand. Then: docker-compose -f docker-compose.yml up -d. See docs/docker.md.

exit codes: 0 written, 2 bad input (topology, option, output path), 3 no Docker engine to
build the emulator image (use --image TAG to name one)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a topology as a docker-compose file",
                       description="Write a topology as a docker-compose file that runs its "
                       "replicas, the fault proxy on every edge and health checks by hand.",
                       epilog=EXAMPLES)
    p.add_argument("format", choices=("compose",), help="what to write: compose")
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("-o", "--output", metavar="FILE", default="docker-compose.yml",
                   help="the compose file (default docker-compose.yml here)")
    p.add_argument("--port-base", type=int, default=None, metavar="N",
                   help="publish the proxy API on 127.0.0.1:N and the entry's proxies on "
                   "N+1... (default: ephemeral host ports)")
    p.add_argument("--image", metavar="TAG", default=None,
                   help="the emulator image to name (default: this source tree's, built if "
                   "missing with faultmesh images build)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import topologies
    from chaos.compose import build, write
    from faultmesh.outputs import check_output_file
    from topologies.errors import UsageError

    output = check_output_file(args.output, "-o")
    topology = topologies.load(args.topology)
    entry_replicas = topology.service(topology.entry).replicas
    if args.port_base is not None and not 1 <= args.port_base <= 65535 - entry_replicas:
        raise UsageError(f"--port-base must be 1..{65535 - entry_replicas}, not "
                         f"{args.port_base}")
    if args.image is None:
        from chaos.images import emulator_image

        image = emulator_image(build=True)
    else:
        image = args.image
    stem = os.path.splitext(os.path.basename(output))[0]
    export = build(topology, image, stem, args.port_base, compose_file=os.path.basename(output))
    written = write(export, output)
    print(f"wrote {written[0]} ({len(export.compose['services']) - 1} replicas, "
          f"{len(export.edges)} proxies; image {image}) and {os.path.dirname(written[1])}/",
          file=sys.stderr)
    return 0
