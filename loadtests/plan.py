"""The load plan: what a topology's workload asks of the load generator, made concrete.

A :class:`LoadPlan` says how many Locust users run, for how long, against which URL, and
how each of them paces its requests. It is plain data (it crosses into the load process as
JSON) and it carries the pacing rules themselves, which are pure Python and seeded:

* **open** workloads (arrivals at a ``rate``, or a piecewise-linear ``profile``): the arrival
  times are the simulator's own for the same seed (``topologies.arrivals``), dealt out in
  turn over ``users`` users (arrival k to user k mod users; :class:`Arrivals`). A user sends
  at the *scheduled* times, not a fixed wait after its last answer, so a slow system does not
  slow the arrivals; a user is late only while its previous request is still unanswered, and
  with enough users (mean gap per user ``headroom`` seconds, well above the latency) that is
  rare. A simulated and a live run with the same seed are offered the same requests.
* **closed** workloads: ``users`` users, each thinking for a draw of ``think`` before each
  request and waiting for its answer (:func:`think_sampler`), as in the simulator.

Randomness comes from ``topologies.arrivals``, seeded by the run seed: the simulator's
arrival schedule (open) and each user's think times (closed, by the user's index).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from topologies.errors import UsageError
from topologies.model import Distribution, RatePoint, Workload

__all__ = ["LoadPlan", "plan_load", "Arrivals", "schedule", "think_sampler",
           "DEFAULT_HEADROOM", "MAX_USERS", "DRAIN_MARGIN"]

#: Mean seconds between two requests of one user of an open workload: a user is late only
#: when an answer takes longer than its gap, so this should be well above the p99 latency.
DEFAULT_HEADROOM = 2.0
#: The most users one load process runs (each holds a connection to the target).
MAX_USERS = 10_000
#: Seconds the load process waits after the client timeout for the last outcomes to land.
DRAIN_MARGIN = 1.0


@dataclass(frozen=True)
class LoadPlan:
    """What one load process does: ``users`` Locust users sending ``GET path`` to
    ``target_url`` for ``duration`` seconds, paced by the open or closed model.

    ``rate``/``profile`` describe open arrivals (``peak`` is the highest rate reached);
    ``think`` is a closed user's think time as a :class:`Distribution`'s fields.
    ``request_timeout`` is the client's timeout (a request unanswered by then fails, 504
    ``client_timeout``); ``grace`` is how long the load process waits, after ``duration``,
    for the requests in flight to end: the timeout and a margin, so every request sent has
    an outcome when the load ends.
    """

    model: str
    target_url: str
    path: str
    duration: float
    seed: int
    users: int
    rate: float | None = None
    profile: tuple[tuple[float, float], ...] | None = None
    peak: float = 0.0
    think: dict[str, Any] | None = None
    request_timeout: float = 60.0
    grace: float = 61.0
    web: bool = False
    web_port: int = 8089
    #: a live run's control API (chaos.live.control): the web UI's faultmesh tab uses it
    control_url: str | None = None

    def rate_at(self, t: float) -> float:
        """The open-model arrival rate at ``t`` seconds into the run (as the simulator's)."""
        return self.workload().rate_at(t)

    def mean_rate(self) -> float | None:
        """The target arrival rate averaged over the run (None for a closed workload)."""
        if self.model != "open":
            return None
        if not self.profile:
            return float(self.rate or 0.0)
        steps = 1000
        h = self.duration / steps
        xs = [self.rate_at(i * h) for i in range(steps + 1)]
        return (sum(xs) - (xs[0] + xs[-1]) / 2) * h / self.duration  # trapezoid rule

    def workload(self) -> Workload:
        """The workload this plan follows, rebuilt from its fields."""
        profile = tuple(RatePoint(at, r) for at, r in self.profile) if self.profile else None
        return Workload(model=self.model, rate=self.rate, profile=profile,  # type: ignore[arg-type]
                        users=self.users if self.model == "closed" else None,
                        think=self.think_distribution(), duration=self.duration)

    def think_distribution(self) -> Distribution | None:
        """A closed user's think time, or None for no thinking."""
        if self.think is None:
            return None
        fields = dict(self.think)
        if fields.get("samples") is not None:
            fields["samples"] = tuple(fields["samples"])
        return Distribution(**fields)

    def to_json(self) -> str:
        """The plan as JSON (how it reaches the load process)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadPlan:
        """The plan :meth:`to_json` wrote."""
        data = json.loads(text)
        if data.get("profile") is not None:
            data["profile"] = tuple(tuple(p) for p in data["profile"])
        return cls(**data)


def plan_load(workload: Workload, target_url: str, *, duration: float | None = None,
              seed: int = 0, path: str = "/", request_timeout: float | None = None,
              headroom: float = DEFAULT_HEADROOM, web: bool = False,
              web_port: int = 8089, control_url: str | None = None) -> LoadPlan:
    """The plan that offers ``workload`` to ``target_url`` (checked; ``UsageError`` names
    the offending argument)."""
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target_url: expected http://HOST:PORT, not {target_url!r}")
    if not path.startswith("/"):
        raise UsageError(f"path: must start with '/', not {path!r}")
    run_for = float(workload.duration if duration is None else duration)
    if not math.isfinite(run_for) or run_for <= 0:
        raise UsageError(f"duration: must be a positive number of seconds, not {duration!r}")
    if not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed: must be a non-negative integer, not {seed!r}")
    if request_timeout is not None and not 0 < request_timeout < math.inf:
        raise UsageError(f"request_timeout: must be a positive number of seconds, not "
                         f"{request_timeout!r}")
    timeout = float(workload.timeout if request_timeout is None else request_timeout)
    if not headroom > 0:
        raise UsageError(f"headroom: must be positive, not {headroom!r}")
    if not 0 < web_port < 65536:
        raise UsageError(f"web_port: not a port number: {web_port!r}")
    common = dict(target_url=target_url.rstrip("/"), path=path, duration=run_for, seed=seed,
                  request_timeout=timeout, grace=timeout + DRAIN_MARGIN, web=web,
                  web_port=web_port, control_url=control_url)
    if workload.model == "closed":
        users = int(workload.users or 0)
        if users <= 0:
            raise UsageError("workload.users: a closed workload needs at least one user")
        think = asdict(workload.think) if workload.think is not None else None
        if think is not None:
            think.pop("file", None)
        return LoadPlan(model="closed", users=users, think=think, **common)  # type: ignore[arg-type]
    if workload.profile:
        profile = tuple((float(p.at), float(p.rate)) for p in workload.profile)
        peak = max(r for _, r in profile)
        rate = None
    else:
        profile, rate = None, float(workload.rate or 0.0)
        peak = rate
    if peak < 0 or not math.isfinite(peak):
        raise UsageError(f"workload.rate: must be a finite non-negative rate, not {peak!r}")
    users = min(MAX_USERS, max(1, math.ceil(peak * headroom))) if peak > 0 else 0
    return LoadPlan(model="open", users=users, rate=rate, profile=profile, peak=peak,
                    **common)  # type: ignore[arg-type]


def schedule(plan: LoadPlan) -> list[float]:
    """Every arrival time of an open plan in its run, as the simulator draws them."""
    from topologies.arrivals import open_arrivals

    return list(open_arrivals(plan.workload(), plan.seed, plan.duration))


class Arrivals:
    """One open-workload user's arrival times: every ``users``-th time of the run's shared
    schedule (:func:`schedule`), starting with number ``index``.

    Times are seconds from the start of the run; :meth:`next` returns None when this user
    has no arrival left.
    """

    def __init__(self, plan: LoadPlan, index: int, times: list[float] | None = None):
        if plan.model != "open":
            raise ValueError(f"plan: Arrivals needs an open plan, not {plan.model!r}")
        if plan.users <= 0:
            self._times: list[float] = []
        else:
            all_times = schedule(plan) if times is None else times
            self._times = all_times[index % plan.users::plan.users]
        self._next = 0

    def next(self) -> float | None:
        """The next scheduled arrival of this user, or None if there is none left."""
        if self._next >= len(self._times):
            return None
        self._next += 1
        return self._times[self._next - 1]


def think_sampler(plan: LoadPlan, index: int) -> Callable[[], float]:
    """Closed-workload user ``index``'s think times: the simulator's user ``index`` draws the
    same ones for the same seed (``topologies.arrivals.think_times``)."""
    from topologies.arrivals import think_times

    return think_times(plan.workload(), plan.seed, index)
