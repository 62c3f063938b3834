"""Parameter sweeps: the same topology run at every point of a grid of overrides, on Dask.

A sweep is the Cartesian product of ``--set path=v1,v2,...`` lists, times scenarios, times
seeds. Each run is one :func:`faultmesh.runs.simulate_run` (simulate, write the result
directory, add SLO verdicts) executed as a Dask task: on a local cluster of worker
processes by default (simpy is pure Python, so processes, not threads, use the cores), or on
the cluster whose scheduler address is given. On a remote cluster every worker needs
faultmesh installed and the output directory on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from topologies import Topology, TopologyError, UsageError, override

from .runs import scenario_names, simulate_run

__all__ = ["SweepPoint", "parse_grid", "sweep_points", "run_sweep", "SWEEP_COLUMNS"]

SWEEP_COLUMNS = ["run", "scenario", "seed", "requests", "availability", "throughput",
                 "latency_p50", "latency_p99", "cost_total", "cost_per_1k", "slos_passed",
                 "slos_failed", "score", "directory", "worker"]


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: the overrides it applies, its scenario and seed, and its name."""

    overrides: tuple[tuple[str, str], ...]
    scenario: str
    seed: int

    @property
    def name(self) -> str:
        """A directory name: ``llm.replicas=4,rate=20-s/llm-brownout/seed-0``."""
        parts = [f"{_short(path)}={value}" for path, value in self.overrides] or ["as-is"]
        label = re.sub(r"[^A-Za-z0-9_.,=+-]", "-", ",".join(parts))
        return os.path.join(label, self.scenario, f"seed-{self.seed}")


def _short(path: str) -> str:
    return path.removeprefix("services.").removeprefix("workload.")


def _split_values(text: str) -> list[str]:
    """``2,4,6`` -> three values; commas inside [...] or {...} do not split."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += ch
    values.append(current.strip())
    return values


def parse_grid(sets: Sequence[str]) -> dict[str, list[str]]:
    """``["services.llm.replicas=2,4", "workload.rate=20/s"]`` -> the grid's axes."""
    grid: dict[str, list[str]] = {}
    for item in sets:
        path, eq, values = item.partition("=")
        path = path.strip()
        if not eq or not path or not values.strip():
            raise UsageError(f"--set {item!r}: expected PATH=V1,V2,... e.g. "
                             "services.llm.replicas=2,4,6")
        if path in grid:
            raise UsageError(f"--set {path}: given twice; list every value in one --set")
        split = _split_values(values)
        if any(not v for v in split):
            raise UsageError(f"--set {item!r}: an empty value in the list")
        grid[path] = split
    return grid


def sweep_points(topology: Topology, grid: Mapping[str, Sequence[str]], scenario: str | None,
                 seeds: Sequence[int]) -> list[SweepPoint]:
    """Every run of the sweep, each grid point checked against the topology first, so a bad
    value stops the sweep before anything runs."""
    names = scenario_names(topology, scenario)
    combos = list(itertools.product(*(list(v) for v in grid.values()))) or [()]
    points, problems = [], []
    for combo in combos:
        overrides = tuple(zip(grid.keys(), combo, strict=True))
        try:
            override(topology, dict(overrides))
        except TopologyError as exc:  # every bad point is reported, not only the first
            problems.extend(exc.problems)
        points.extend(SweepPoint(overrides, name, seed) for name in names for seed in seeds)
    if problems:
        raise TopologyError(problems)
    return points


def _refused_at_once(scheduler: str) -> None:
    """OSError when nothing listens at a ``tcp://host:port`` scheduler address: Dask's client
    would retry a refused connection for its whole timeout (20 s) before saying so. A host
    that does not answer at all is left to that timeout."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(scheduler)
        address = (parts.hostname, parts.port) if parts.scheme == "tcp" else None
    except ValueError:
        return
    if address is None or address[0] is None or address[1] is None:
        return
    try:
        socket.create_connection(address, timeout=5).close()
    except ConnectionRefusedError as exc:
        raise OSError(f"nothing listens at {address[0]}:{address[1]} ({exc.strerror})") from None
    except OSError:
        return  # not answering, or not resolvable yet: Dask's own wait decides


def _run_point(topology: Topology, point: SweepPoint, out: str, report: bool) -> dict[str, Any]:
    """One sweep run, as a Dask task: the final summary, where it was written and the
    address of the Dask worker that ran it (which cluster did the work, for the user)."""
    from distributed import get_worker

    topo = override(topology, dict(point.overrides))
    directory = os.path.join(out, point.name)
    summary = simulate_run(topo, point.scenario, directory, seed=point.seed, report=report)
    return {"summary": summary, "directory": directory, "worker": get_worker().address}


def _row(point: SweepPoint, outcome: Mapping[str, Any]) -> dict[str, Any]:
    s = outcome["summary"]
    slos = [x for x in s.get("slos", []) if not x.get("skipped")]
    row: dict[str, Any] = {
        "run": os.path.dirname(os.path.dirname(point.name)), "scenario": point.scenario,
        "seed": point.seed, "requests": s.get("requests"),
        "availability": s.get("availability"), "throughput": s.get("throughput"),
        "latency_p50": s.get("latency", {}).get("p50"),
        "latency_p99": s.get("latency", {}).get("p99"),
        "cost_total": s.get("cost", {}).get("total"),
        "cost_per_1k": s.get("cost", {}).get("per_1k"),
        "slos_passed": sum(1 for x in slos if x.get("pass")),
        "slos_failed": sum(1 for x in slos if x.get("pass") is False),
        "score": s.get("resilience", {}).get("score"),
        "directory": outcome["directory"],
        "worker": outcome.get("worker"),
    }
    row.update({path: value for path, value in point.overrides})
    return row


def _quiet_distributed_logs() -> None:
    """Run on each local worker before it retires: only Dask's errors are shown."""
    logging.getLogger("distributed").setLevel(logging.ERROR)


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Silence Dask's log handlers in this process while the cluster is taken down.

    Closing races are Dask's own and harmless once every result is gathered, yet a nanny
    whose worker had just retired logged the cancelled close as an error with a traceback.
    """
    handlers = [h for h in logging.getLogger("distributed").handlers
                if isinstance(h, logging.StreamHandler)]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def run_sweep(topology: Topology, points: Sequence[SweepPoint], out: str, *,
              scheduler: str | None = None, workers: int | None = None,
              report: bool = False) -> list[dict[str, Any]]:
    """Run every point on Dask; returns one row per run (also written to sweep.csv and
    sweep.json in ``out``), in the order of ``points``."""
    import pandas as pd
    from distributed import Client, LocalCluster, as_completed

    from topologies.files import atomic_write, atomic_write_text

    from . import progress

    # the workers write there: a relative path would land in each worker's own directory
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    cluster = None
    # runs done of all (each run's simulated time stays in its worker process)
    with progress.Task(f"sweep {topology.name}", total=len(points), text="starting",
                       announce=False) as task:
        try:
            if scheduler:
                task.phase(f"connecting to the Dask scheduler {scheduler}")
                _refused_at_once(scheduler)
                client = Client(scheduler, timeout="20s")
            else:
                n = workers or max(1, min(len(points), os.cpu_count() or 1))
                task.phase(f"starting a local Dask cluster of {n} worker process(es)")
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address=None, host="127.0.0.1")
                client = Client(cluster)
        except OSError as exc:
            from topologies import RunError

            raise RunError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        try:
            futures = [client.submit(_run_point, topology, p, out, report, pure=False,
                                     key=f"faultmesh-{i}-{p.name}")
                       for i, p in enumerate(points)]
            task.phase(f"0/{len(points)} runs done")
            for done, _ in enumerate(as_completed(futures), start=1):
                task.update(done, f"{done}/{len(points)} runs done")
            outcomes = client.gather(futures)
        finally:
            with _quiet_distributed():
                if cluster is not None:
                    # the workers end first: one whose heartbeat met the scheduler closing
                    # printed "Failed to communicate with scheduler during heartbeat"
                    with contextlib.suppress(Exception):
                        # our workers, so their goodbyes too: at info each one logged
                        # "Connection ... has been closed" at the end of every sweep
                        client.run(_quiet_distributed_logs)
                        client.retire_workers(close_workers=True)
                client.close()
                if cluster is not None:
                    cluster.close()
    rows = [_row(p, o) for p, o in zip(points, outcomes, strict=True)]
    axes = [path for path, _ in points[0].overrides] if points else []
    table = pd.DataFrame(rows, columns=[*axes, *SWEEP_COLUMNS])
    atomic_write(os.path.join(out, "sweep.csv"), lambda fh: table.to_csv(fh, index=False))
    atomic_write_text(os.path.join(out, "sweep.json"),
                      json.dumps({"axes": axes, "runs": rows}, indent=2, default=str) + "\n")
    return rows
