"""What a replica process writes: its outgoing call attempts and its per-second state.

Every call attempt a replica makes is one calls.csv row (the columns of docs/results.md, ending with
``call``), times in seconds since the run's ``epoch`` (a wall-clock time all processes of a
run share). Rows are buffered and appended to the log file every ``flush_every`` seconds and
on shutdown, so a killed process loses at most that much. The per-second timeseries rows go
to ``<log>.ts.csv`` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
from collections.abc import Sequence

__all__ = ["CALL_COLUMNS", "TS_COLUMNS", "CsvLog"]

CALL_COLUMNS = ("request_id", "caller", "callee", "replica", "attempt", "start", "end",
                "status", "ok", "error", "ttft", "tpot", "output_tokens", "call")
TS_COLUMNS = ("t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
              "throughput", "errors", "batch")


def fmt(x: float | None) -> str:
    """A time or figure as written in the CSV files (empty when missing)."""
    if x is None or x != x:
        return ""
    return f"{x:.6f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


class CsvLog:
    """A CSV file appended to in batches: ``add`` buffers a row, ``flush`` writes them."""

    def __init__(self, path: str, columns: Sequence[str], flush_every: float = 0.5) -> None:
        if flush_every <= 0:
            raise ValueError(f"flush_every: must be > 0, not {flush_every!r}")
        self.path = path
        self.columns = tuple(columns)
        self.flush_every = flush_every
        self.rows: list[tuple[object, ...]] = []
        self.written = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, row: Sequence[object]) -> None:
        self.rows.append(tuple(row))

    def flush(self) -> None:
        """Append the buffered rows (and the header if the file is new or empty)."""
        rows, self.rows = self.rows, []
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if not rows and not new:
            return
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            if new:
                out.writerow(self.columns)
            out.writerows([tuple(fmt(v) if isinstance(v, float) or v is None else v
                                 for v in row) for row in rows])
        self.written += len(rows)

    def start(self) -> None:
        """Flush every ``flush_every`` seconds from now on (on the running loop)."""
        self.flush()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            self.flush()
