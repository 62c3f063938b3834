"""The processes of a distributed load: one Locust master and its workers, on this machine.

Run by :mod:`loadtests.distributed`, never imported by faultmesh's own process (gevent
monkey-patches the standard library here, as in :mod:`loadtests.worker`):

* ``python -m loadtests.distworker master PLAN.json STATUS.json --port P --workers N``
  binds Locust's master runner to ``127.0.0.1:P``, waits for its N workers, and runs the
  plan's :class:`LoadTestShape` (the whole user pool from the start), which Locust spreads
  over the workers. It sends no request itself. It tells the workers the run's start (its
  wall clock, carried in the spawn message's options) and stops when the runner tells it to
  (SIGINT/SIGTERM, once every worker has ended) or at its own deadline.
* ``python -m loadtests.distworker worker PLAN.json SPOOL.csv STATUS.json PROGRESS.json
  --port P --index K --of N`` connects to the master and runs the users it is given. Worker
  ``K`` of ``N`` takes the plan's user indices ``K, K+N, K+2N, ...`` (Locust deals a pool
  that is a multiple of N out evenly), so together the workers run the very users one load
  process would, each with its own seeded stream. It stops sending at the plan's duration
  and drains on its own clock, as the single load process does, then writes its status.

Request ids must be unique over all workers and still join the services' call logs: an
open user sends arrival *i* of the run's schedule with id *i* (the schedule's index, so ids
follow the schedule's order), a closed user's requests are numbered ``K + N x count``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from .distusers import T0_OPTION, WorkerState, user_class
from .procfiles import write_json

__all__ = ["main"]

#: Seconds the master waits for its workers, and a worker for its first users.
STARTUP = 30.0
#: Seconds between the master's go and the run's start, for the users to reach the workers.
LEAD = 1.0
#: Seconds past the plan's end (drain included) after which a process stops by itself.
SLACK = 15.0


def main(argv: list[str] | None = None) -> int:
    """Run one process of a distributed load (``master`` or ``worker``); the exit code:
    0 done, 3 the load could not run (the reason is in the status file)."""
    p = argparse.ArgumentParser(prog="python -m loadtests.distworker")
    p.add_argument("role", choices=("master", "worker"))
    p.add_argument("files", nargs="+")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--of", type=int, default=1)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    need = 2 if args.role == "master" else 4
    if len(args.files) != need:
        p.error(f"{args.role} takes {need} files")
    from gevent import monkey

    from chaos.watchdog import ParentWatch

    from .worker import _remove_work

    status_path = args.files[-1] if args.role == "master" else args.files[2]
    # started by faultmesh: stop when it is gone (even killed) and leave no work directory
    watch = ParentWatch.from_env(cleanup=lambda: _remove_work(status_path))
    monkey.patch_all()
    from .plan import LoadPlan

    with open(args.files[0], encoding="utf-8") as fh:
        plan = LoadPlan.from_json(fh.read())
    _hard_deadline(STARTUP + plan.duration + plan.grace + SLACK)
    try:
        if args.role == "master":
            status = _master(plan, args.port, args.workers, watch)
        else:
            status = _worker(plan, args.files[1], args.files[3], args.port, args.index,
                             args.of, watch)
        code = 0 if "error" not in status else 3
    except Exception as exc:  # reported to the parent, which raises RunError
        status = {"error": f"{type(exc).__name__}: {exc}"}
        code = 3
    write_json(status_path, status)
    if watch.orphaned:  # nobody is left to collect the results
        _remove_work(status_path)
    return code


def _hard_deadline(seconds: float) -> None:
    """End this process after ``seconds`` whatever it is doing: a real OS thread, so a
    stuck event loop (or a master that never answers) cannot keep it alive."""
    from gevent import monkey

    start_thread = monkey.get_original("_thread", "start_new_thread")
    sleep = monkey.get_original("time", "sleep")

    def later() -> None:
        sleep(seconds)
        os.write(2, f"load process {os.getpid()}: past its deadline; exiting\n".encode())
        os._exit(3)

    start_thread(later, ())


def _stop_event() -> Any:
    """An event SIGINT/SIGTERM set: the process's clean stop."""
    import signal

    import gevent
    import gevent.event

    stop = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    return stop


def _master(plan: Any, port: int, workers: int, watch: Any) -> dict[str, Any]:
    """The master: spread the plan's users over ``workers`` workers; no request of its own."""
    import logging

    import gevent
    from locust import LoadTestShape, argument_parser
    from locust.env import Environment

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    class WorkloadShape(LoadTestShape):
        """The whole user pool from the start, for as long as the master runs (the
        workers end the run on their own clocks)."""

        def tick(self) -> tuple[int, float] | None:
            return plan.users, float(max(plan.users, 1))

    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    options = parser.parse(args=[])
    env = Environment(user_classes=[user_class(plan, None)], shape_class=WorkloadShape(),
                      host=plan.target_url, stop_timeout=plan.grace, parsed_options=options)
    runner = env.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    web_ui = None
    if plan.web:
        # a master's web UI parses the process's command line as Locust's own: this
        # process's arguments are not Locust's, so it sees none
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            web_ui = env.create_web_ui(host="127.0.0.1", port=plan.web_port)
        finally:
            sys.argv = argv
    stop = _stop_event()
    web_notes: list[str] = []  # what was asked from Locust's web UI, and when
    if web_ui is not None:
        from .webtab import WebControls, install

        def refused(what: str) -> str:
            at = time.time() - float(getattr(options, T0_OPTION, None) or time.time())
            web_notes.append(f"{what} from Locust's web UI at {max(at, 0.0):.1f} s refused: "
                             f"with --load-workers each worker ends the run at its duration")
            return (f"{what} is not taken with --load-workers: each worker ends the run at its "
                    f"duration (its requests drain)")

        # the faultmesh tab works as with one process; STOP and EDIT would stop or respread
        # the users over the workers mid-run (requests lost or sent twice): refused, noted
        install(web_ui, plan, WebControls(on_stop=lambda: refused("STOP"),
                                          on_edit=lambda n: (False, refused(f"users {n}"))))
    if watch is not None:
        watch.start()
    waited = time.monotonic() + STARTUP
    while len(runner.clients.ready) < workers:
        if stop.is_set() or time.monotonic() > waited:
            runner.quit()
            return {"error": f"{len(runner.clients.ready)} of {workers} load workers "
                             f"connected within {STARTUP:.0f} s"}
        gevent.sleep(0.05)
    cpu0 = time.process_time()
    t0 = time.monotonic()
    # the run starts a moment from now: the users' dispatch to the workers (~0.3 s) must not
    # make the first arrivals late; this start reaches every worker with its spawn message
    t0_wall = time.time() + LEAD
    setattr(options, T0_OPTION, t0_wall)
    if plan.users > 0:
        runner.start_shape()
    stop.wait(timeout=LEAD + plan.duration + plan.grace + SLACK / 2)
    cpu_share = (time.process_time() - cpu0) / max(time.monotonic() - t0, 1e-9)
    warned = bool(runner.cpu_warning_emitted)
    worker_warned = bool(runner.worker_cpu_warning_emitted)
    runner.quit()
    if web_ui is not None:
        web_ui.stop()
    return {"t0": t0_wall, "cpu_share": round(cpu_share, 4), "cpu_warning": warned,
            "worker_cpu_warning": worker_warned, "workers": workers, "web_notes": web_notes}


def _worker(plan: Any, spool_path: str, progress_path: str, port: int, index: int, of: int,
            watch: Any) -> dict[str, Any]:
    """One worker: run the users the master gives it, record one spool row per request."""
    import csv
    import logging

    import gevent
    from locust.env import Environment

    from .results import ERROR_HEADER, SPOOL_COLUMNS, error_word
    from .worker import FLUSH_EVERY, INTERRUPTED_GRACE, _raise_open_files, _write_progress

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    state = WorkerState(plan, index, of)
    counts = {"answered": 0, "errors": 0}
    cpu: dict[str, Any] = {"warning": False, "max": None}
    spool = open(spool_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    out = csv.writer(spool, lineterminator="\n")
    out.writerow(SPOOL_COLUMNS)

    def fmt(x: float | None) -> str:
        return "" if x is None else "%.6f" % x  # noqa: UP031

    def on_request(response_time: float = 0.0, response: Any = None, context: Any = None,
                   exception: BaseException | None = None, **_: Any) -> None:
        rid = (context or {}).get("faultmesh_request")
        if rid is None or rid not in state.in_flight:
            return
        start, lag, timer = state.in_flight.pop(rid)
        timer.close()
        latency = response_time / 1000.0
        status = int(getattr(response, "status_code", 0) or 0)
        if exception is None:
            exception = getattr(response, "error", None)
        ok = 200 <= status < 300 and exception is None
        counts["answered"] += 1
        counts["errors"] += not ok
        headers = getattr(response, "headers", None)
        cause = headers.get(ERROR_HEADER) if headers is not None and not ok else None
        error = error_word(status, exception, cause)
        if error == "client_timeout":
            status = 504
        degraded = bool(ok and headers is not None
                        and str(headers.get("X-Faultmesh-Degraded", "")).strip() == "1")
        out.writerow((fmt(start), fmt(start + latency), fmt(latency), status, int(ok),
                      int(degraded), error, fmt(lag), rid))

    env = Environment(user_classes=[user_class(plan, state)], host=plan.target_url,
                      stop_timeout=plan.grace)
    env.events.request.add_listener(on_request)
    env.events.cpu_warning.add_listener(lambda **_: cpu.update(warning=True))
    env.events.usage_monitor.add_listener(
        lambda cpu_usage=0.0, **_: cpu.update(max=max(cpu["max"] or 0.0, cpu_usage)))
    if plan.users > 0:
        _raise_open_files(plan.users // max(of, 1) + 1)
    stop = _stop_event()
    if watch is not None:
        watch.start()
    runner = env.create_worker_runner(master_host="127.0.0.1", master_port=port)

    def flusher() -> None:
        while True:
            gevent.sleep(FLUSH_EVERY)
            spool.flush()
            _write_progress(progress_path, {"elapsed": state.now() if state.t0 else 0.0,
                                            "sent": counts["answered"] + len(state.in_flight),
                                            **counts})

    flushing = gevent.spawn(flusher)
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    gevent.wait([state.started, stop], count=1, timeout=STARTUP)
    if not state.started.is_set() and not stop.is_set():
        runner.quit()
        flushing.kill()
        spool.close()
        return {"error": f"load worker {index}: no users from the master within "
                         f"{STARTUP:.0f} s"}
    interrupted = False
    if state.t0 is not None:
        interrupted = bool(stop.wait(timeout=max(0.0, plan.duration - state.now())))
    else:
        interrupted = True
    stopped_at = state.now() if state.t0 is not None else 0.0
    # the drain, as one load process does it: requests in flight run to their outcome
    env.stop_timeout = INTERRUPTED_GRACE if interrupted else plan.grace
    runner.quit()
    drained_at = state.now() if state.t0 is not None else 0.0
    for rid, (start, lag, timer) in state.in_flight.items():
        timer.close()
        out.writerow((fmt(start), "", "", 0, 0, 0, "unfinished", fmt(lag), rid))
    state.in_flight.clear()
    cpu_share = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    flushing.kill()
    spool.flush()
    os.fsync(spool.fileno())
    spool.close()
    return {"t0": state.t0_wall, "run_time": min(stopped_at, plan.duration),
            "end": drained_at, "interrupted": interrupted, "users": state.users,
            "cpu_share": round(cpu_share, 4),
            "cpu_warning": bool(cpu["warning"] or runner.cpu_warning_emitted),
            "cpu_usage_max": cpu["max"]}


if __name__ == "__main__":
    sys.exit(main())
