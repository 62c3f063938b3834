"""Running a load plan: Locust in a child process, the per-request rows back in this one.

:func:`run_load` is the one call: it plans the load for a workload, starts
``python -m loadtests.worker`` (gevent and locust live only there), waits for it to stop by
itself at the end of the duration, and turns its spool into a :class:`LoadResult` (and
``requests.csv`` + ``load.json`` when given a result directory). Ctrl-C stops the child,
which still hands over what it collected; the result is then marked partial. Given a
``progress`` callback, the counts so far reach it about twice a second while the load runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from chaos.watchdog import child_env
from topologies.errors import RunError, UsageError
from topologies.model import Workload

from . import distributed
from .behind import load_note
from .plan import DEFAULT_HEADROOM, LoadPlan, plan_load
from .procfiles import read_json, stop, tail
from .results import LoadResult, quantile, read_spool

__all__ = ["run_load", "run_plan", "WORK_PREFIX", "LoadProgress"]

#: Name prefix of the load's temporary work directory, ``faultmesh-load-<owner pid>-XXXX``.
WORK_PREFIX = "faultmesh-load-"

#: Seconds the load process may take to import Locust and start before it counts as stuck.
STARTUP = 30.0
#: Seconds an interrupted load process gets to hand over its rows before it is killed.
STOP_WAIT = 10.0
#: A user is "late" when it sends more than this behind its schedule.
LATE = 0.010
#: The note of an interrupted load (a live run writes its own and leaves this one out).
INTERRUPTED_NOTE = "interrupted before the end of the duration"
#: Seconds between two looks at the load process's progress file.
PROGRESS_EVERY = 0.5

#: ``progress(counts)``: the load's counts so far (``elapsed`` seconds since the load
#: started, ``sent``, ``answered``, ``errors``), and ``web_url`` once the web UI serves.
LoadProgress = Callable[[dict[str, Any]], None]


def run_load(workload: Workload, target_url: str, *, duration: float | None = None,
             seed: int = 0, out_dir: str | None = None, web: bool = False,
             web_port: int = 8089, path: str = "/",
             request_timeout: float | None = None,
             headroom: float = DEFAULT_HEADROOM,
             progress: LoadProgress | None = None,
             control_url: str | None = None, workers: int = 0) -> LoadResult:
    """Offer ``workload`` to ``target_url`` with Locust and record every request.

    ``duration`` overrides the workload's; ``seed`` fixes every user's random stream;
    ``out_dir`` receives ``requests.csv`` and ``load.json``; ``web`` serves Locust's web UI
    on ``127.0.0.1:web_port`` for the length of the run (which still ends by itself).
    ``headroom`` (open load): seconds of answer time a user can wait without falling behind
    its schedule — give it the p99 latency you expect; users = peak rate x headroom.
    ``progress`` receives the counts so far while the load runs (see :data:`LoadProgress`).
    ``workers`` > 0 runs Locust's distributed mode on this machine, a master and that many
    worker processes, for more load than one process holds (``loadtests.distributed``).
    ``control_url``: a live run's control API, which the web UI's faultmesh tab shows and
    drives (``loadtests.webtab``).
    Raises ``UsageError`` for bad arguments and ``RunError`` when the load process cannot
    run (the web port taken, the child failing).
    """
    plan = plan_load(workload, target_url, duration=duration, seed=seed, path=path,
                     request_timeout=request_timeout, web=web, web_port=web_port,
                     headroom=headroom, control_url=control_url)
    return run_plan(plan, out_dir=out_dir, progress=progress, workers=workers)


def run_plan(plan: LoadPlan, *, out_dir: str | None = None,
             progress: LoadProgress | None = None, workers: int = 0) -> LoadResult:
    """Run an already made :class:`LoadPlan` (see :func:`run_load`)."""
    if not isinstance(workers, int) or not 0 <= workers <= distributed.MAX_WORKERS:
        raise UsageError(f"load workers: expected 0 to {distributed.MAX_WORKERS}, "
                         f"not {workers!r}")
    if workers:   # every worker gets as many users
        plan = distributed.split_plan(plan, workers)
    if plan.web:
        _check_port_free(plan.web_port)
    # the owner's pid in the name: `faultmesh clean` tells a live run's from a dead one's
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-")
    try:
        plan_path = os.path.join(work, "plan.json")
        spool_path = os.path.join(work, "spool.csv")
        status_path = os.path.join(work, "status.json")
        log_path = os.path.join(work, "locust.log")
        progress_path = os.path.join(work, "progress.json")
        with open(plan_path, "w", encoding="utf-8") as fh:
            fh.write(plan.to_json())
        started = time.time()
        done = threading.Event()
        watcher = None
        watched = (distributed.progress_paths(work, workers) if workers else [progress_path])
        if progress is not None:
            watcher = threading.Thread(target=_watch, args=(plan, watched, progress, done),
                                       name="faultmesh-load-progress", daemon=True)
            watcher.start()
        spooled = None
        try:
            if workers:
                spooled, status, interrupted = distributed.run_processes(
                    plan, workers, work, plan_path, _child_env())
            else:
                interrupted = _run_child(plan, [plan_path, spool_path, status_path,
                                                progress_path], log_path)
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
        if spooled is None:
            status = read_json(status_path)
        if "error" in status:
            raise RunError(f"load generator failed: {status['error']}")
        if not status and not interrupted:
            raise RunError("load generator stopped without a report: " + tail(log_path))
        result = _result(plan, read_spool(spool_path) if spooled is None else spooled, status,
                         interrupted or bool(status.get("interrupted")),
                         time.time() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if out_dir is not None:
        result.out_dir = out_dir
        result.write(out_dir)
    return result


def _run_child(plan: LoadPlan, args: list[str], log_path: str) -> bool:
    """Run the load process to its end; whether it was interrupted (Ctrl-C here)."""
    cmd = [sys.executable, "-m", "loadtests.worker", *args]
    env = _child_env()
    deadline = STARTUP + plan.duration + plan.grace + STOP_WAIT
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env)
        except OSError as exc:
            raise RunError(f"cannot start the load generator: {exc}") from exc
        try:
            try:
                proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise RunError(f"load generator did not stop within {deadline:.0f} s: "
                               + tail(log_path)) from None
            return False
        except KeyboardInterrupt:
            _stop(proc)
            return True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _child_env() -> dict[str, str]:
    """A load process's environment: it finds this package, and (``child_env``) ends itself
    and removes the work directory should this process die."""
    env = {**child_env(), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
    return env


def _watch(plan: LoadPlan, paths: list[str], progress: LoadProgress,
           done: threading.Event) -> None:
    """Hand the load processes' counts (summed over ``paths``) to ``progress`` until
    ``done``; add ``web_url`` once the web UI accepts connections."""
    web_url = None
    while not done.wait(PROGRESS_EVERY):
        if plan.web and web_url is None and _accepts(plan.web_port):
            web_url = f"http://127.0.0.1:{plan.web_port}/"
        counts = _sum_counts([read_json(path) for path in paths])
        if web_url is not None:
            counts["web_url"] = web_url
        if counts:
            progress(counts)


def _sum_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One count of several load processes' progress: sums, the longest elapsed."""
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return parts[0] if parts else {}
    out: dict[str, Any] = {k: sum(p.get(k, 0) for p in parts)
                           for k in ("sent", "answered", "errors")}
    out["elapsed"] = max(p.get("elapsed", 0.0) for p in parts)
    return out


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop(proc, STOP_WAIT)


def _result(plan: LoadPlan, spooled: list, status: dict, partial: bool,
            wall: float) -> LoadResult:
    rows = [row for row, _ in spooled]
    lags = [lag for _, lag in spooled if lag is not None]
    run_time = float(status.get("run_time") or 0.0)
    if not status:  # the child was killed: judge the run length from what was sent
        run_time = min(plan.duration, max((r.start for r in rows), default=0.0))
    sent = sum(1 for r in rows if r.start < plan.duration)
    notes = []
    if partial:
        notes.append(INTERRUPTED_NOTE)
    notes.extend(status.get("web_notes") or [])  # STOP or EDIT from Locust's web UI
    if status.get("processes"):   # distributed: name every load process that saturated
        note = distributed.cpu_note(status)
        if note:
            notes.append(note)
    elif status.get("cpu_warning"):
        notes.append("Locust cpu_warning: the load generator saturated its CPU; the "
                     "figures may describe the generator, not the system")
    late = sum(1 for x in lags if x > LATE)
    achieved = sent / run_time if run_time > 0 else 0.0
    late_share = late / len(lags) if lags else None
    behind = load_note(plan, sent, run_time, achieved, late_share, quantile(lags, 0.99))
    if behind:   # the figures describe less load than the workload asks (loadtests.behind)
        notes.append(behind)
    return LoadResult(
        model=plan.model, requests=rows, duration=plan.duration, run_time=run_time,
        users=plan.users, target_rate=plan.mean_rate(), achieved_rate=achieved,
        lag_p50=quantile(lags, 0.5), lag_p99=quantile(lags, 0.99),
        lag_max=max(lags) if lags else None, late_share=late_share,
        cpu_share=status.get("cpu_share"), cpu_warning=bool(status.get("cpu_warning")),
        cpu_usage_max=status.get("cpu_usage_max"), partial=partial, seed=plan.seed,
        processes=status.get("processes"),
        t0=float(status["t0"]) if status.get("t0") is not None else None,
        end=_end(rows, status),
        web_url=f"http://127.0.0.1:{plan.web_port}/" if plan.web else None, notes=notes)


def _end(rows: list, status: dict) -> float | None:
    """When the load ended (run time): the drain's end, or the last outcome recorded."""
    if status.get("end") is not None:
        return float(status["end"])
    ends = [r.end for r in rows if r.end is not None]
    return max(ends) if ends else None


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the web server binds: the last run's connections in TIME_WAIT do not hold the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RunError(f"web_port: 127.0.0.1:{port} is not free ({exc.strerror})") from None


def _package_root() -> str:
    """The directory holding the ``loadtests`` package (so the child finds it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
