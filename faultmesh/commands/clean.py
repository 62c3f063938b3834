"""``faultmesh clean``: remove what crashed runs left behind (processes, temporary dirs,
containers and networks)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh clean --dry-run       # list what would be removed
  faultmesh clean

Removes emulator, load worker and proxy processes of the current user started by a
faultmesh that is gone (reparented to PID 1 or a subreaper; a paused one is resumed first),
the user's load work directories faultmesh-load-<pid>-* in the temporary directory whose
faultmesh process is gone, and docker containers and networks labelled
faultmesh.run=faultmesh-<pid>-* (and image build containers faultmesh-image-build-<pid>-*)
whose process <pid> is gone. Running runs are not touched, nor gate result directories
(faultmesh-gate-*), which hold results. One line per thing removed. See docs/live.md.

exit codes: 0 done (also when nothing was left over), 3 something could not be removed
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clean", help="remove leftovers of crashed runs (processes, temp "
                       "dirs, containers)",
                       description="Find the processes, temporary directories, containers and "
                       "networks that crashed or killed faultmesh runs left behind, and "
                       "remove them.",
                       epilog=EXAMPLES)
    p.add_argument("--dry-run", action="store_true",
                   help="only list what would be removed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from faultmesh.leftovers import Leftover, clean

    failed = 0

    def report(item: Leftover, error: str | None) -> None:
        nonlocal failed
        if error is not None:
            failed += 1
            print(f"faultmesh clean: cannot remove {item.what}: {error}", file=sys.stderr)
        else:
            print(f"{'would remove' if args.dry_run else 'removed'} {item}", flush=True)

    done = clean(dry_run=args.dry_run, on_item=report)
    if not done:
        print("faultmesh clean: nothing left over", file=sys.stderr)
    return 3 if failed else 0
