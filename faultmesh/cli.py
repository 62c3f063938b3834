"""The ``faultmesh`` command: parse, call one function, map errors to exit codes.

Each subcommand lives in ``faultmesh/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Exit codes: 0 success, 1 an SLO or check failed, 2 bad input or usage,
3 an environment problem, 128+signal when stopped by SIGINT, SIGTERM or SIGHUP
(:mod:`faultmesh.signals`). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from topologies.errors import FaultmeshError, TopologyError

__all__ = ["main", "build_parser", "version", "COMMANDS"]

COMMANDS = ("validate", "graph", "schema", "sim", "live", "report", "gate", "sweep", "proxy",
            "clean", "images", "export")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (its default), examples kept verbatim."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def version() -> str:
    """The installed distribution's version; from pyproject.toml when run from a checkout
    that was never installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("faultmesh")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        try:
            with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as fh:
                return str(tomllib.load(fh)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="faultmesh",
        description="Simulate and chaos-test AI service topologies before production does.",
        epilog="examples:\n"
        "  faultmesh validate topologies/rag-chat.yaml\n"
        "  faultmesh sim topologies/rag-chat.yaml --scenario llm-brownout --out results/rag\n"
        "  faultmesh report results/rag\n"
        "  faultmesh gate topologies/rag-chat.yaml --scenario all --junit slo.xml\n\n"
        "exit codes: 0 success, 1 an SLO or check failed, 2 bad input, 3 environment problem,\n"
        "130/143/129 interrupted by Ctrl-C/SIGTERM/SIGHUP (partial results written)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"faultmesh {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"faultmesh.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"faultmesh.commands.{name}":
                raise
            continue  # not built yet
        module.add_parser(sub)
    return parser


_NEGATIVE = re.compile(r"-\.?[0-9]")


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--duration -10s`` -> ``--duration=-10s``: argparse takes ``-10s`` for an option and
    says "expected one argument"; attached, the value reaches the command's own check, which
    says what is wrong with it ("must be positive")."""
    out: list[str] = []
    for arg in argv:
        if out and _NEGATIVE.match(arg) and out[-1].startswith("--") and "=" not in out[-1] \
                and out[-1] != "--":
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere, not only before the command
    argv = _attach_negative_values([a for a in argv if a != "--debug"])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    if not args.command:
        parser.print_help()
        return 2
    from faultmesh.signals import interrupted_exit_code, stop_signals

    # SIGTERM and SIGHUP end a command as Ctrl-C does: partial results, teardown, 128+signal
    with stop_signals():
        try:
            return int(args.run(args) or 0)
        except FaultmeshError as exc:
            if args.debug:
                raise
            # problems in files stay bare FILE:LINE: path: message lines, for editors to parse
            located = isinstance(exc, TopologyError) or "\n" in str(exc)
            print(str(exc) if located else f"faultmesh {args.command}: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print("faultmesh: interrupted", file=sys.stderr)
            return interrupted_exit_code()
        except BrokenPipeError:
            return 0
        except OSError as exc:
            # the disk filled up or a directory went away mid-run (outputs are checked before
            # a run starts; this is what the check cannot foresee): the environment, exit 3
            if args.debug:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            print(f"faultmesh {args.command}: {(exc.strerror or str(exc)).lower()}{where}",
                  file=sys.stderr)
            return 3


if __name__ == "__main__":
    raise SystemExit(main())
