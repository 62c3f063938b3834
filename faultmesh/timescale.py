"""``FAULTMESH_MAX_DURATION``: run any sim, live, gate or sweep run on a shortened clock.

The examples in the documentation are executed by the test suite (tests/test_examples.py),
and a bundled topology runs for minutes. With ``FAULTMESH_MAX_DURATION=5s`` in the
environment a run longer than 5 s is *compressed*: its duration becomes 5 s and every time
on the run's clock shrinks by the same factor -- the warmup, the points of a rate profile and
each fault's start and duration -- so a scenario's fault still happens inside the run, at the
same place in it. Times that belong to the services (latencies, timeouts, cold starts, a
rollout's startup) do not change, so a compressed run is a smoke test of the command, not a
measurement: its figures differ from the full run's. Unset (the default), nothing changes.

Both engines take this one path: :mod:`faultmesh.runs` calls :func:`capped` before every
simulated or live run.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from topologies import Topology
from topologies.model import FrozenMap

__all__ = ["ENV", "max_duration", "capped"]

ENV = "FAULTMESH_MAX_DURATION"


def max_duration() -> float | None:
    """The cap in seconds from ``FAULTMESH_MAX_DURATION`` (None when unset or empty)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    from faultmesh.arguments import duration_option

    return duration_option(text, ENV)  # 5 is 5 s, as --duration reads it


def capped(topology: Topology, duration: float | None) -> tuple[Topology, float | None]:
    """The topology and duration to run: unchanged unless the run is longer than the cap,
    else compressed to the cap (every time on the run's clock scaled alike; see above)."""
    cap = max_duration()
    length = float(duration if duration is not None else topology.workload.duration)
    if cap is None or length <= cap:
        return topology, duration
    k = cap / length
    wl = topology.workload
    profile = None if wl.profile is None else tuple(
        dataclasses.replace(p, at=p.at * k) for p in wl.profile)
    # the workload's own clock shrinks by k too (not to the cap): with --duration shorter
    # than workload.duration, faults after the run's end stay after it, as they were
    workload = dataclasses.replace(wl, duration=wl.duration * k, warmup=wl.warmup * k,
                                   profile=profile)
    scenarios = FrozenMap({
        name: dataclasses.replace(sc, faults=tuple(
            dataclasses.replace(f, start=f.start * k,
                                duration=None if f.duration is None else f.duration * k)
            for f in sc.faults))
        for name, sc in topology.scenarios.items()})
    # said on stderr so that nobody takes a compressed run's figures for a real run's
    print(f"faultmesh: {ENV}={os.environ[ENV].strip()}: {topology.name} runs {cap:g} s "
          f"instead of {length:g} s (warmup and fault times scaled by {k:.3g})",
          file=sys.stderr)
    return dataclasses.replace(topology, workload=workload, scenarios=scenarios), cap
