"""One module per ``faultmesh`` subcommand: ``add_parser(subparsers)`` and ``run(args) -> int``."""

__all__: list[str] = []
