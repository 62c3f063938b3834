"""A load beyond one process: Locust's distributed mode on this machine.

One load process holds about 1500 requests/s here (docs/load.md). With ``workers`` > 0,
:func:`run_processes` runs the plan as a Locust master plus ``workers`` worker processes
(``python -m loadtests.distworker``, where gevent and locust live): the master binds to a
free port on 127.0.0.1 and spreads the user pool over the workers; worker *K* runs the
plan's users ``K, K+N, ...`` and spools one row per request. Each process gets the
watchdog environment (``chaos.watchdog.child_env``) and a deadline of its own, so every one
ends by itself. When the workers have drained, the master is told to stop.

The spools are merged into one list of rows: every request exactly once (request ids are
unique across workers by construction: ``loadtests.distworker``), sorted by id. The status
of the whole load takes the latest run time and drain end, and the CPU of *every* process:
``cpu_share`` is the busiest one's (the one that saturates first), ``cpu_warning`` is set
when any raised it, and ``processes`` lists each with its role.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from topologies.errors import RunError

from .plan import LoadPlan
from .procfiles import read_json, stop, tail
from .results import RequestRow, read_spool

__all__ = ["MAX_WORKERS", "split_plan", "run_processes", "merge_spools", "free_port",
           "worker_paths", "progress_paths", "cpu_note"]

#: The most load worker processes one run may start.
MAX_WORKERS = 32
#: Seconds between two looks at the processes.
POLL = 0.1
#: Seconds a stopped process gets to write its status before it is killed.
STOP_WAIT = 10.0
#: Seconds the processes may take to start and connect.
STARTUP = 30.0


def split_plan(plan: LoadPlan, workers: int) -> LoadPlan:
    """The plan for ``workers`` workers: an open pool rounded up to a multiple of
    ``workers``, so Locust deals every worker the same number of users (a few more users
    share the same schedule; a closed pool is the workload's and stays)."""
    if plan.model != "open" or plan.users <= 0:
        return plan
    users = -(-plan.users // workers) * workers
    return replace(plan, users=users)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now (the master binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_paths(work: str, index: int) -> tuple[str, str, str, str]:
    """Worker ``index``'s spool, status, progress and log files in ``work``."""
    return tuple(os.path.join(work, f"worker{index}.{ext}")  # type: ignore[return-value]
                 for ext in ("spool.csv", "status.json", "progress.json", "log"))


def run_processes(plan: LoadPlan, workers: int, work: str, plan_path: str,
                  env: dict[str, str]) -> tuple[list[tuple[RequestRow, float | None]],
                                                dict[str, Any], bool]:
    """Run ``plan`` (written at ``plan_path``) with a master and ``workers`` workers in
    the directory ``work``; the merged spooled rows, the load's status, and whether it was
    interrupted (Ctrl-C here). ``env``: the processes' environment (``child_env`` and the
    package path). Raises ``RunError`` when a process fails or outlives its deadline."""
    port = free_port()
    cmd = [sys.executable, "-m", "loadtests.distworker"]
    master_status = os.path.join(work, "master.status.json")
    master_log = os.path.join(work, "master.log")
    procs: list[tuple[str, subprocess.Popen[bytes], str]] = []
    logs = []
    interrupted = False
    try:
        procs.append(("master", _spawn(
            [*cmd, "master", plan_path, master_status, "--port", str(port),
             "--workers", str(workers)], master_log, env, logs), master_log))
        for k in range(workers):
            spool, status, progress, log = worker_paths(work, k)
            procs.append((f"worker {k}", _spawn(
                [*cmd, "worker", plan_path, spool, status, progress, "--port", str(port),
                 "--index", str(k), "--of", str(workers)], log, env, logs), log))
        deadline = time.monotonic() + STARTUP + plan.duration + plan.grace + STOP_WAIT
        try:
            _wait_workers(procs, master_status, deadline)
        except KeyboardInterrupt:
            interrupted = True
            for _, proc, _ in procs:  # every process stops and hands over what it has
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
        for _, proc, _ in procs:   # the workers have ended: the master is told to stop
            _stop(proc)
    finally:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for fh in logs:
            fh.close()
    master = read_json(master_status)
    if "error" in master:
        raise RunError(f"load master failed: {master['error']}")
    statuses = []
    for k in range(workers):
        status = read_json(worker_paths(work, k)[1])
        if "error" in status:
            raise RunError(f"load worker {k} failed: {status['error']}")
        if not status and not interrupted:
            raise RunError(f"load worker {k} stopped without a report: "
                           + tail(worker_paths(work, k)[3]))
        statuses.append(status)
    rows = merge_spools([worker_paths(work, k)[0] for k in range(workers)])
    return rows, _combine(master, statuses), interrupted


def merge_spools(paths: list[str]) -> list[tuple[RequestRow, float | None]]:
    """Every worker's spooled rows as one list sorted by request id; a request id seen
    twice is an error (ids are unique by construction, so it would be a bug)."""
    rows = [row for path in paths for row in read_spool(path)]
    rows.sort(key=lambda r: (r[0].request_id, r[0].start))
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0].request_id == b[0].request_id:
            raise RunError(f"load workers recorded request {a[0].request_id} twice")
    return rows


def _combine(master: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
    """The load's status from its processes' (what one load process would report)."""
    done = [s for s in workers if s]
    if not done:
        return {}
    processes = [{"role": "master", "cpu_share": master.get("cpu_share"),
                  "cpu_warning": bool(master.get("cpu_warning"))}]
    processes += [{"role": f"worker {k}", "cpu_share": s.get("cpu_share"),
                   "cpu_warning": bool(s.get("cpu_warning")), "users": s.get("users")}
                  for k, s in enumerate(workers)]
    shares = [p["cpu_share"] for p in processes if p["cpu_share"] is not None]
    usage = [s["cpu_usage_max"] for s in done if s.get("cpu_usage_max") is not None]
    return {
        "t0": master.get("t0") or min(s["t0"] for s in done if s.get("t0") is not None),
        "run_time": max(float(s.get("run_time") or 0.0) for s in done),
        "end": max((float(s["end"]) for s in done if s.get("end") is not None), default=None),
        "interrupted": any(s.get("interrupted") for s in done) or len(done) < len(workers),
        "users": sum(int(s.get("users") or 0) for s in done),
        "cpu_share": max(shares) if shares else None,
        "cpu_warning": (any(p["cpu_warning"] for p in processes)
                        or bool(master.get("worker_cpu_warning"))),
        "cpu_usage_max": max(usage) if usage else None,
        "processes": processes,
        "web_notes": master.get("web_notes") or [],  # STOP or EDIT asked from the web UI
    }


def progress_paths(work: str, workers: int) -> list[str]:
    """The workers' progress files (their counts add up to the load's)."""
    return [worker_paths(work, k)[2] for k in range(workers)]


def _spawn(cmd: list[str], log_path: str, env: dict[str, str],
           logs: list[Any]) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by run_processes
    logs.append(log)
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env)
    except OSError as exc:
        raise RunError(f"cannot start the load generator: {exc}") from exc


def _wait_workers(procs: list[tuple[str, subprocess.Popen[bytes], str]], master_status: str,
                  deadline: float) -> None:
    """Wait for every worker to end; a master that fails first ends the wait (its workers
    are stopped), so does the deadline (``RunError``)."""
    master = procs[0][1]
    workers = [p for _, p, _ in procs[1:]]
    while any(p.poll() is None for p in workers):
        if master.poll() is not None and "error" in read_json(master_status):
            return  # reported by the caller; the workers are stopped there
        if time.monotonic() > deadline:
            for _, proc, _ in procs:
                _stop(proc)
            raise RunError("load generator did not stop in time: " + tail(procs[0][2]))
        time.sleep(POLL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop(proc, STOP_WAIT)


def cpu_note(status: dict[str, Any]) -> str | None:
    """The note naming the load processes whose CPU saturated, or None."""
    hot = [p for p in status.get("processes") or []
           if p.get("cpu_warning") or (p.get("cpu_share") or 0.0) > 0.9]
    if not hot and not status.get("cpu_warning"):
        return None
    names = ", ".join(f"{p['role']} ({(p.get('cpu_share') or 0.0):.0%} of a core)"
                      for p in hot) or "a load worker (Locust's cpu_warning)"
    return (f"load processes with a saturated CPU: {names} of {len(status['processes'])} "
            "processes; the figures may describe the generator, not the system")
