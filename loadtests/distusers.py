"""The users of a distributed load's workers (``loadtests.distworker``), and what the users of
one worker share.

Imported only inside the load processes (the user classes import locust when built).
:func:`user_class` builds the Locust user class of a plan's model, under the same name on
the master (which only dispatches it) and on the workers (which run it). On a worker the
users share a :class:`WorkerState`: the run's start on this process's clock (the master's
wall-clock start, carried in its spawn message's options as :data:`T0_OPTION`), the plan's
user indices this worker hands out (``K, K+N, ...``), the open schedule, and the requests
in flight. Importing this module does nothing.
"""

from __future__ import annotations

import time
from typing import Any

from .worker import send_start

__all__ = ["T0_OPTION", "WorkerState", "user_class"]

#: The option of the master's spawn message that carries the run's start (its wall clock).
T0_OPTION = "faultmesh_t0"


class WorkerState:
    """What one worker's users share: its clock (from the master's start), its index, the
    open schedule, the requests in flight."""

    def __init__(self, plan: Any, index: int, of: int) -> None:
        import gevent.event

        from .plan import schedule

        self.plan = plan
        self.index = index
        self.of = of
        self.times = schedule(plan) if plan.model == "open" else []
        self.t0: float | None = None
        self.t0_wall: float | None = None
        self.started = gevent.event.Event()
        self.users = 0
        self.closed_sent = 0
        self.in_flight: dict[int, tuple[float, float | None, Any]] = {}

    def start(self, t0_wall: float | None) -> None:
        """The run's start on this worker's monotonic clock (same machine: one wall clock)."""
        if self.t0 is None:
            self.t0_wall = float(t0_wall) if t0_wall is not None else time.time()
            self.t0 = time.monotonic() - (time.time() - self.t0_wall)
            self.started.set()

    def now(self) -> float:
        """Seconds since the run's start."""
        return time.monotonic() - (self.t0 or 0.0)

    def send_start(self) -> float | None:
        """The recorded start of a request sent now, None at or after the end."""
        return send_start(self.now(), self.plan.duration)

    def next_user(self) -> int:
        """The plan's index of the next user this worker starts."""
        self.users += 1
        return self.index + (self.users - 1) * self.of

    def next_closed_id(self) -> int:
        """A closed request's id: unique over all workers."""
        self.closed_sent += 1
        return self.index + (self.closed_sent - 1) * self.of


def user_class(plan: Any, worker: WorkerState | None) -> type:
    """The Locust user class of the plan's model (the same name on master and workers:
    Locust dispatches users by class name). Only workers (``worker`` given) run users."""
    import gevent
    from locust import task
    from locust.contrib.fasthttp import FastHttpUser

    from .plan import DRAIN_MARGIN, think_sampler

    timeout = float(plan.request_timeout)
    forever = plan.duration + plan.grace + 3600.0

    class ClientUser(FastHttpUser):
        """A client of the entry service on one worker: sends ``GET path``, records it."""

        abstract = True
        host = plan.target_url
        network_timeout = timeout + DRAIN_MARGIN
        connection_timeout = timeout + DRAIN_MARGIN

        def begin(self) -> int:
            """This user's index in the plan (and the worker's clock, on its first user)."""
            assert worker is not None
            worker.start(getattr(self.environment.parsed_options, T0_OPTION, None))
            gevent.sleep(max(0.0, -worker.now()))  # nothing is sent before the run starts
            return worker.next_user()

        def send(self, rid: int, lag: float | None) -> None:
            assert worker is not None
            now = worker.send_start()
            if now is None:  # a late turn after the end: nothing new is sent
                return
            timer = gevent.Timeout(timeout)
            worker.in_flight[rid] = (now, lag, timer)
            timer.start()
            try:
                self.client.get(plan.path, name=plan.path, context={"faultmesh_request": rid},
                                headers={"X-Faultmesh-Request": str(rid)})
            finally:
                timer.close()

    class OpenUser(ClientUser):
        """One user of an open workload: its share of the run's schedule, each arrival
        sent with its schedule index as the request id."""

        def on_start(self) -> None:
            assert worker is not None
            index = self.begin()
            # a user past the plan's pool (an uneven deal) gets no arrivals, never another's
            self.ids = (range(index, len(worker.times), plan.users) if index < plan.users
                        else range(0))
            self.k = 0
            self.due: float | None = None
            self.rid = -1
            self.wait()

        def wait_time(self) -> float:
            assert worker is not None
            if self.k >= len(self.ids):
                self.due = None
                return forever
            self.rid = self.ids[self.k]
            self.due = worker.times[self.rid]
            self.k += 1
            return max(0.0, self.due - worker.now())

        @task
        def arrive(self) -> None:
            assert worker is not None
            if self.due is not None:
                self.send(self.rid, max(0.0, worker.now() - self.due))

    class ClosedUser(ClientUser):
        """One user of a closed workload: thinks, sends, waits for the answer, repeats."""

        def on_start(self) -> None:
            self.think = think_sampler(plan, self.begin())
            self.wait()

        def wait_time(self) -> float:
            return self.think()

        @task
        def arrive(self) -> None:
            assert worker is not None
            self.send(worker.next_closed_id(), None)

    return OpenUser if plan.model == "open" else ClosedUser
