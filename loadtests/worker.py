"""The load process: Locust, driven as a library, following one :class:`LoadPlan`.

Run as ``python -m loadtests.worker PLAN.json SPOOL.csv STATUS.json [PROGRESS.json]`` by
the runner, never
imported by faultmesh's own process: it monkey-patches the standard library through gevent
(as importing locust does), so all of that stays in this process. Importing this module
does nothing; :func:`main` patches, builds one Locust ``Environment`` with a
``FastHttpUser`` class for the plan's model and a :class:`LoadTestShape` that holds the
user pool for the run and ends it, and records one spool row per request from Locust's
``request`` event. Every request carries the client's timeout (``request_timeout``): one
not answered by then is abandoned and recorded as 504 ``client_timeout``. The run stops
sending at the plan's duration and drains: the requests in flight end (answered or timed
out) within the timeout, so every request sent has an outcome. Only an interrupted run
(SIGINT/SIGTERM) may leave some ``unfinished``. A status file closes the run (run time,
drain end, CPU, Locust's ``cpu_warning``); while it runs, the optional progress file holds
the counts so far (rewritten with each spool flush), which the parent shows as progress.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from .procfiles import write_json

__all__ = ["main", "send_start"]

#: How often the spool is flushed to disk (what a killed load process still leaves).
FLUSH_EVERY = 0.5
#: How many of the latest answers the progress file's latency quantiles cover.
RECENT_ANSWERS = 2000
#: Seconds requests in flight get to end when the run is interrupted (Ctrl-C).
INTERRUPTED_GRACE = 0.5


def send_start(now: float, duration: float) -> float | None:
    """The start recorded for a request sent ``now`` seconds into a run of ``duration``
    seconds: ``now`` to the microsecond (as the spool writes it), or None when that is at or
    after the end, where nothing new is sent.

    The check is made on the very number that is recorded, so no row can say a request
    started at or after the end (a reading of 1.9999996 s would be written as 2.000000).
    """
    start = round(now, 6)
    return None if start >= duration else start


def main(argv: list[str] | None = None) -> int:
    """Run the plan in ``argv`` (plan, spool and status paths, and optionally a progress
    path); the exit code: 0 done, 3 the load could not run (the reason is in the status
    file)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4):
        print("usage: python -m loadtests.worker PLAN.json SPOOL.csv STATUS.json "
              "[PROGRESS.json]", file=sys.stderr)
        return 2
    plan_path, spool_path, status_path = args[:3]
    progress_path = args[3] if len(args) == 4 else None
    from gevent import monkey

    from chaos.watchdog import ParentWatch

    # started by faultmesh: stop when it is gone (even killed) and leave no work directory
    watch = ParentWatch.from_env(cleanup=lambda: _remove_work(spool_path))
    monkey.patch_all()
    from .plan import LoadPlan

    with open(plan_path, encoding="utf-8") as fh:
        plan = LoadPlan.from_json(fh.read())
    try:
        status = _run(plan, spool_path, progress_path, watch)
        code = 0
    except Exception as exc:  # reported to the parent, which raises RunError
        status = {"error": f"{type(exc).__name__}: {exc}"}
        code = 3
    write_json(status_path, status)
    if watch.orphaned:  # nobody is left to collect the results
        _remove_work(spool_path)
    return code


def _remove_work(spool_path: str) -> None:
    """Remove the runner's work directory holding ``spool_path`` (only one named as the
    runner names it: files given by hand are kept)."""
    import shutil

    from .runner import WORK_PREFIX

    work = os.path.dirname(os.path.abspath(spool_path))
    if os.path.basename(work).startswith(WORK_PREFIX):
        shutil.rmtree(work, ignore_errors=True)


def _run(plan: Any, spool_path: str, progress_path: str | None = None,
         watch: Any = None) -> dict[str, Any]:
    """Generate the plan's load; the figures for the status file."""
    import csv
    import itertools
    import logging
    import signal
    from collections import deque

    import gevent
    import gevent.event
    from locust import LoadTestShape, task
    from locust.contrib.fasthttp import FastHttpUser
    from locust.env import Environment

    from .plan import DRAIN_MARGIN, Arrivals, schedule, think_sampler
    from .results import ERROR_HEADER, SPOOL_COLUMNS, error_word

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # run-relative times come from the monotonic clock: a wall-clock step (NTP) must not
    # move a send past the end or reorder starts; the wall time of t0 is reported apart
    clock = time.monotonic
    t0 = clock()
    t0_wall = time.time()
    request_ids = itertools.count()
    user_ids = itertools.count()
    in_flight: dict[int, tuple[float, float | None, Any]] = {}
    cpu: dict[str, Any] = {"warning": False, "max": None}
    counts = {"answered": 0, "errors": 0}  # for the progress file
    recent: deque[float] = deque(maxlen=RECENT_ANSWERS)  # latencies for the progress file
    users = {"n": plan.users}  # the shape's user count (EDIT in the web UI may change it)
    web_notes: list[str] = []  # what was done from Locust's web UI, and when
    web_stop: dict[str, float] = {}  # "at": run seconds of a STOP from the web UI
    spool = open(spool_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    out = csv.writer(spool, lineterminator="\n")
    out.writerow(SPOOL_COLUMNS)
    forever = plan.duration + plan.grace + 3600.0
    timeout = float(plan.request_timeout)
    times = schedule(plan) if plan.model == "open" else []   # the simulator's arrivals

    def fmt(x: float | None) -> str:
        return "" if x is None else "%.6f" % x  # noqa: UP031

    def on_request(response_time: float = 0.0, response: Any = None, context: Any = None,
                   exception: BaseException | None = None, **_: Any) -> None:
        rid = (context or {}).get("faultmesh_request")
        if rid is None:
            return
        if rid not in in_flight:
            # not sent by ``send`` or already written as unfinished by the drain: Locust's
            # own start_time is another clock's reading, so it never makes a row
            return
        start, lag, timer = in_flight.pop(rid)
        timer.close()
        latency = response_time / 1000.0
        status = int(getattr(response, "status_code", 0) or 0)
        if exception is None:
            exception = getattr(response, "error", None)
        ok = 200 <= status < 300 and exception is None
        counts["answered"] += 1
        counts["errors"] += not ok
        recent.append(latency)
        headers = getattr(response, "headers", None)
        cause = headers.get(ERROR_HEADER) if headers is not None and not ok else None
        error = error_word(status, exception, cause)
        if error == "client_timeout":
            status = 504  # the client gave up; a timeout reads as 504 (docs/results.md)
        degraded = bool(ok and headers is not None
                        and str(headers.get("X-Faultmesh-Degraded", "")).strip() == "1")
        out.writerow((fmt(start), fmt(start + latency), fmt(latency), status, int(ok),
                      int(degraded), error, fmt(lag), rid))

    class ClientUser(FastHttpUser):
        """A client of the entry service: sends ``GET path`` and records the answer."""

        abstract = True
        host = plan.target_url
        # the socket timeouts only back up the request's own timeout (below)
        network_timeout = timeout + DRAIN_MARGIN
        connection_timeout = timeout + DRAIN_MARGIN

        def send(self, lag: float | None) -> None:
            now = send_start(clock() - t0, plan.duration)
            if now is None:  # a late turn after the end: nothing new is sent
                return
            rid = next(request_ids)
            # the client's timeout covers the whole exchange (connect, send, answer); when
            # it fires inside the request Locust records the request as failed with it
            timer = gevent.Timeout(timeout)
            in_flight[rid] = (now, lag, timer)
            timer.start()
            try:
                # the id travels with the request, so the services' call logs join requests
                self.client.get(plan.path, name=plan.path,
                                context={"faultmesh_request": rid},
                                headers={"X-Faultmesh-Request": str(rid)})
            finally:
                timer.close()

    class OpenUser(ClientUser):
        """One share of an open workload's arrivals: sends at its scheduled times, whether
        or not the system has kept up (late only while its last request is unanswered)."""

        def on_start(self) -> None:
            self.arrivals = Arrivals(plan, next(user_ids), times)
            self.due: float | None = None
            self.wait()

        def wait_time(self) -> float:
            self.due = self.arrivals.next()
            return forever if self.due is None else max(0.0, self.due - (clock() - t0))

        @task
        def arrive(self) -> None:
            if self.due is not None:
                self.send(max(0.0, clock() - t0 - self.due))

    class ClosedUser(ClientUser):
        """One user of a closed workload: thinks, sends, waits for the answer, repeats."""

        def on_start(self) -> None:
            self.think = think_sampler(plan, next(user_ids))
            self.wait()

        def wait_time(self) -> float:
            return self.think()

        @task
        def arrive(self) -> None:
            self.send(None)

    class WorkloadShape(LoadTestShape):
        """The run's user pool over time: every user from the start (open users pace
        themselves along the rate profile). The run itself is stopped at ``duration`` by
        the load process (below); the shape only ends a run that outlived its drain. A
        closed workload's users may be changed from the web UI (EDIT)."""

        use_common_options = plan.model == "closed"  # the UI's EDIT then offers a user count

        def tick(self) -> tuple[int, float] | None:
            if self.get_run_time() >= plan.duration + plan.grace + 5.0:
                return None
            return users["n"], float(max(users["n"], 1))

    user_class = OpenUser if plan.model == "open" else ClosedUser
    env = Environment(user_classes=[user_class], shape_class=WorkloadShape(),
                      host=plan.target_url, stop_timeout=plan.grace)
    env.events.request.add_listener(on_request)

    def on_cpu_warning(cpu_usage: float = 0.0, **_: Any) -> None:
        cpu["warning"] = True

    def on_usage(cpu_usage: float = 0.0, **_: Any) -> None:
        cpu["max"] = max(cpu["max"] or 0.0, cpu_usage)

    env.events.cpu_warning.add_listener(on_cpu_warning)
    env.events.usage_monitor.add_listener(on_usage)
    runner = env.create_local_runner()
    web_ui = env.create_web_ui(host="127.0.0.1", port=plan.web_port) if plan.web else None
    stop = gevent.event.Event()
    if web_ui is not None:
        from .webtab import WebControls, install

        def on_stop() -> str:
            web_stop.setdefault("at", clock() - t0)
            web_notes.append(f"stopped from Locust's web UI at {web_stop['at']:.1f} s")
            stop.set()
            return "faultmesh ends the run: no new request; those in flight drain"

        def on_edit(n: int) -> tuple[bool, str]:
            at = clock() - t0
            if plan.model == "open":  # arrivals are dealt over the users by index
                web_notes.append(f"users change to {n} from Locust's web UI at {at:.1f} s "
                                 f"refused: an open workload's arrivals are dealt over its "
                                 f"{plan.users} users")
                return False, (f"an open workload's arrivals are dealt over its {plan.users} "
                               f"users: changing them would drop or repeat arrivals")
            users["n"] = n
            web_notes.append(f"users changed to {n} from Locust's web UI at {at:.1f} s")
            return True, f"users changed to {n}"

        install(web_ui, plan, WebControls(on_stop=on_stop, on_edit=on_edit))
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    if watch is not None:  # after the handlers: the watch stops the run with SIGTERM
        watch.start()

    def flusher() -> None:
        while True:
            gevent.sleep(FLUSH_EVERY)
            spool.flush()
            if progress_path is not None:
                _write_progress(progress_path, {
                    "elapsed": clock() - t0, "sent": counts["answered"] + len(in_flight),
                    **counts, "latency": _quantiles(recent)})

    flushing = gevent.spawn(flusher)
    if plan.users > 0:
        _raise_open_files(plan.users)
    cpu0 = time.process_time()
    t0 = clock()
    t0_wall = time.time()
    if plan.users > 0:
        runner.start_shape()
    interrupted = bool(stop.wait(timeout=plan.duration)) and "at" not in web_stop
    stopped_at = web_stop.get("at", clock() - t0)
    # the drain: users waiting for their next turn stop at once; those with a request in
    # flight get until it ends (at most the client timeout). Interrupted: a short grace.
    env.stop_timeout = INTERRUPTED_GRACE if interrupted else plan.grace
    runner.quit()
    drained_at = clock() - t0
    for rid, (start, lag, timer) in in_flight.items():
        timer.close()
        out.writerow((fmt(start), "", "", 0, 0, 0, "unfinished", fmt(lag), rid))
    in_flight.clear()
    cpu_share = (time.process_time() - cpu0) / max(clock() - t0, 1e-9)
    flushing.kill()
    spool.flush()
    os.fsync(spool.fileno())
    spool.close()
    if web_ui is not None:
        web_ui.stop()
    return {"t0": t0_wall, "run_time": min(stopped_at, plan.duration), "end": drained_at,
            "interrupted": interrupted, "web_notes": web_notes,
            "users": plan.users, "cpu_share": round(cpu_share, 4),
            "cpu_warning": bool(cpu["warning"] or runner.cpu_warning_emitted),
            "cpu_usage_max": cpu["max"]}


def _quantiles(latencies: Any) -> dict[str, float]:
    """The recent answers' latency quantiles, named as the SLO metrics name them."""
    if not latencies:
        return {}
    xs = sorted(latencies)
    at = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
    out = {k: round(xs[min(len(xs) - 1, int(q * len(xs)))], 6) for k, q in at.items()}
    out["mean"] = round(sum(xs) / len(xs), 6)
    out["max"] = round(xs[-1], 6)
    return out


def _write_progress(path: str, counts: dict[str, Any]) -> None:
    """The counts so far, replaced whole (the parent never reads half a file)."""
    try:
        write_json(path, counts)
    except OSError:
        pass  # progress is a courtesy: a full disk must not stop the load


def _raise_open_files(users: int) -> None:
    """Let each user hold its connection: raise the soft open-files limit if it is short."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = users + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            limit = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


if __name__ == "__main__":
    sys.exit(main())
