"""``faultmesh report RESULT_DIR... [-o FILE]``: the HTML report of a run, or a comparison."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  faultmesh report results/rag                       writes results/rag/report.html
  faultmesh report results/rag -o /tmp/rag.html
  faultmesh report results/sim results/live          sim against live: results/compare-report.html
  faultmesh report results/rag-chat-all/*/ -o compare.html   every scenario side by side

One directory: a report that opens with the verdict (SLO table, pass/fail, resilience score),
then blast radius, latency, throughput, services, LLM token timings, cascade, cost and the
resolved topology. Several: the runs overlaid, labelled engine/scenario/seed, with a table
of differences against the first. The file is self-contained (no network needed).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the HTML report of result directories",
                       description="Write a self-contained HTML report of one result "
                       "directory, or a comparison report of several.", epilog=EXAMPLES)
    p.add_argument("result_dirs", nargs="+", metavar="RESULT_DIR",
                   help="result directory written by `faultmesh sim` or `faultmesh live`")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default: RESULT_DIR/report.html for one directory, "
                   "compare-report.html next to the first for several)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import reports
    from faultmesh.outputs import check_output_file
    from reports.html import report_path

    dirs = list(args.result_dirs)
    check_output_file(report_path(dirs, args.output), "-o")  # before reading the runs
    path = reports.write_report(dirs, args.output)
    print(f"wrote {path}")
    return 0
