"""``faultmesh images build [--force]`` and ``faultmesh images list``: the container images
``--runtime docker`` runs, built here with no registry (chaos.images)."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh images list
  faultmesh images build                   # seconds when this source tree's image exists
  faultmesh images build --force           # rebuild the base and the emulator image

build makes faultmesh/base:<recipe hash> (Debian bookworm from this machine's apt sources with
mmdebstrap, docker import) and faultmesh/emulator:<source hash> (faultmesh installed from a
wheelhouse built on the host, in a container without network, docker commit). One line per
step on stderr, the emulator image's tag on stdout. Unchanged sources reuse the image; about
a minute cold. list shows every faultmesh image; * marks this source tree's. See
docs/docker.md.

exit codes: 0 done, 2 bad usage, 3 no Docker engine, no mmdebstrap or a build step failed
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("images", help="build or list the container images (no registry)",
                       description="Build the faultmesh emulator image without any registry, "
                       "or list the faultmesh images the Docker engine holds.",
                       epilog=EXAMPLES)
    p.add_argument("action", choices=("build", "list"),
                   help="build: the images of this source tree; list: every faultmesh image")
    p.add_argument("--force", action="store_true",
                   help="build: rebuild even when images of these tags exist")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from topologies.errors import UsageError

    if args.action == "list":
        if args.force:
            raise UsageError("--force applies to images build, not images list")
        return _list()
    return _build(args.force)


def _build(force: bool) -> int:
    from chaos.images import emulator_image
    from faultmesh import progress

    started = time.monotonic()
    quiet = progress.mode() == "off"

    def step(line: str) -> None:
        if not quiet:
            progress.echo(f"faultmesh images: {line} "
                          f"[{progress.clock(time.monotonic() - started)}]")

    tag = emulator_image(build=True, force=force, progress=step)
    step(f"done: {tag}")
    print(tag, flush=True)
    return 0


def _list() -> int:
    from chaos.images import list_images

    rows = list_images()
    if not rows:
        print("faultmesh images: no faultmesh image built (faultmesh images build)",
              file=sys.stderr)
        return 0
    width = max(len(r["tag"]) for r in rows)
    print(f"  {'TAG':<{width}}  {'ID':<12}  {'SIZE':>8}  CREATED")
    for r in rows:
        mark = "*" if r["current"] else " "
        print(f"{mark} {r['tag']:<{width}}  {r['id']:<12}  {r['size']:>8}  {r['created']}")
    return 0
