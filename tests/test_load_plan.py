"""The load plan as a specification, without starting Locust: how many users an open
workload gets, that their arrivals add up to the workload's Poisson process (or its
profile), that closed users think as the workload says, and that every draw is seeded."""

from __future__ import annotations

import math
import statistics
import sys

import pytest

from loadtests.plan import Arrivals, LoadPlan, plan_load, think_sampler
from topologies.errors import UsageError
from topologies.model import Distribution, RatePoint, Workload

URL = "http://127.0.0.1:9"


def _merged(plan: LoadPlan) -> list[float]:
    times: list[float] = []
    for i in range(plan.users):
        arrivals = Arrivals(plan, i)
        while (t := arrivals.next()) is not None:
            times.append(t)
    return sorted(times)


def test_open_plan_sizes_users_so_each_sends_rarely():
    plan = plan_load(Workload(rate=50.0, duration=4.0), URL)
    assert plan.model == "open" and plan.peak == 50.0
    assert plan.users == 100  # mean gap per user: 2 s, far above a service's latency
    assert plan.mean_rate() == 50.0


def test_users_merged_arrivals_are_poisson_at_the_rate():
    plan = plan_load(Workload(rate=50.0, duration=200.0), URL, seed=3)
    times = _merged(plan)
    assert len(times) == pytest.approx(50 * 200, rel=0.05)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    assert cv == pytest.approx(1.0, abs=0.05)
    # counts in 1 s windows: Poisson, variance equal to the mean
    counts = [0] * 200
    for t in times:
        counts[int(t)] += 1
    assert statistics.pvariance(counts) / statistics.fmean(counts) == pytest.approx(1.0, abs=0.25)


def test_profile_is_followed_by_thinning():
    wl = Workload(profile=(RatePoint(0.0, 10.0), RatePoint(100.0, 60.0)), duration=100.0)
    plan = plan_load(wl, URL, seed=1)
    assert plan.peak == 60.0 and plan.users == 120
    assert plan.mean_rate() == pytest.approx(35.0, rel=1e-3)
    times = _merged(plan)
    first = sum(1 for t in times if t < 50)
    second = len(times) - first
    # integral of 10 + 0.5 t: 500 + 625 = 1125 over [0, 50), 500 + 1875 = 2375 over [50, 100)
    assert first == pytest.approx(1125, rel=0.1)
    assert second == pytest.approx(2375, rel=0.1)


def test_same_seed_same_schedule_other_seed_other_schedule():
    plan = plan_load(Workload(rate=20.0, duration=10.0), URL, seed=7)
    assert _merged(plan) == _merged(plan_load(Workload(rate=20.0, duration=10.0), URL, seed=7))
    assert _merged(plan) != _merged(plan_load(Workload(rate=20.0, duration=10.0), URL, seed=8))


def test_plan_never_touches_the_global_random_module():
    import random

    state = random.getstate()
    _merged(plan_load(Workload(rate=20.0, duration=5.0), URL))
    closed = Workload(model="closed", users=2, think=Distribution("exponential", mean=0.1),
                      duration=5.0)
    think_sampler(plan_load(closed, URL), 0)()
    assert random.getstate() == state


def test_closed_plan_keeps_users_and_think_time():
    wl = Workload(model="closed", users=5, think=Distribution("constant", value=0.1),
                  duration=4.0)
    plan = LoadPlan.from_json(plan_load(wl, URL).to_json())
    assert plan.users == 5 and plan.mean_rate() is None
    assert plan.think_distribution() == Distribution("constant", value=0.1)
    assert think_sampler(plan, 0)() == 0.1


@pytest.mark.parametrize("dist,mean", [
    (Distribution("exponential", mean=0.2), 0.2),
    (Distribution("lognormal", mean=0.2, cv=0.5), 0.2),
    (Distribution("gamma", mean=0.2, cv=2.0), 0.2),
    (Distribution("uniform", low=0.1, high=0.3), 0.2),
    (Distribution("empirical", samples=(0.1, 0.3)), 0.2),
])
def test_think_time_draws_have_the_distributions_mean(dist, mean):
    plan = plan_load(Workload(model="closed", users=3, think=dist, duration=5.0), URL)
    draw = think_sampler(plan, 1)
    xs = [draw() for _ in range(20000)]
    assert statistics.fmean(xs) == pytest.approx(mean, rel=0.05)


def test_profile_round_trips_through_json():
    wl = Workload(profile=(RatePoint(0.0, 10.0), RatePoint(4.0, 60.0)), duration=4.0)
    plan = plan_load(wl, URL)
    again = LoadPlan.from_json(plan.to_json())
    assert again == plan
    assert again.rate_at(2.0) == pytest.approx(35.0)


@pytest.mark.parametrize("kwargs,field", [
    ({"target_url": "127.0.0.1:80"}, "target_url"),
    ({"duration": 0.0}, "duration"),
    ({"duration": math.inf}, "duration"),
    ({"seed": -1}, "seed"),
    ({"path": "x"}, "path"),
    ({"request_timeout": 0}, "request_timeout"),
    ({"web_port": 0}, "web_port"),
])
def test_bad_arguments_are_named(kwargs, field):
    args = {"target_url": URL, **kwargs}
    url = args.pop("target_url")
    with pytest.raises(UsageError, match=field):
        plan_load(Workload(rate=10.0, duration=4.0), url, **args)


def test_closed_workload_without_users_is_refused():
    with pytest.raises(UsageError, match="workload.users"):
        plan_load(Workload(model="closed", users=0, duration=4.0), URL)


def test_importing_loadtests_imports_no_locust_or_gevent():
    import loadtests  # noqa: F401
    import loadtests.plan  # noqa: F401
    import loadtests.results  # noqa: F401
    import loadtests.runner  # noqa: F401

    assert not [m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")]


@pytest.mark.parametrize("workload", [
    Workload(rate=20.0, duration=30.0),
    Workload(profile=(RatePoint(0.0, 5.0), RatePoint(20.0, 40.0)), duration=30.0),
])
def test_the_load_offers_the_simulators_arrivals_for_the_same_seed(workload):
    """Same seed, same requests at the same moments in both engines: a sim-vs-live
    difference is behaviour, not the luck of the arrival draw."""
    import simulator
    from topologies.model import FrozenMap, Service, Topology

    topology = Topology(name="t", entry="s", services=FrozenMap({"s": Service("s")}),
                        workload=workload)
    simulated = simulator.simulate(topology, seed=7).requests["start"].to_numpy()
    plan = plan_load(workload, URL, seed=7)
    assert _merged(plan) == pytest.approx(list(simulated), abs=1e-9)
    assert len(simulated) > 100


def test_closed_users_think_as_the_simulators_users_for_the_same_seed():
    """User i draws the same think times in both engines (topologies.arrivals)."""
    from topologies.arrivals import think_times

    wl = Workload(model="closed", users=4, think=Distribution("exponential", mean=2.0),
                  duration=30.0)
    plan = plan_load(wl, URL, seed=5)
    for i in range(4):
        live, sim = think_sampler(plan, i), think_times(wl, 5, i)
        assert [live() for _ in range(50)] == [sim() for _ in range(50)]
    assert think_sampler(plan, 0)() != think_sampler(plan, 1)()


def test_no_send_is_recorded_at_or_after_the_end():
    """The worker's end-of-run check is made on the start as written (to the microsecond):
    a reading a hair before the end rounds to the end and is not sent (issue 8: a request
    was once recorded at 2.0007 s of a 2.0 s run)."""
    from loadtests.worker import send_start

    assert send_start(1.999999, 2.0) == 1.999999
    assert send_start(1.9999996, 2.0) is None   # written as 2.000000: the end
    assert send_start(2.0, 2.0) is None
    assert send_start(2.0007, 2.0) is None
    assert send_start(0.0, 2.0) == 0.0
