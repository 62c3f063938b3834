"""Every bundled scenario shows its lesson: run with the simulator (seed 0, the topology's own
duration), it differs from the baseline the way its description and docs/topologies.md say.

Each topology runs as ``faultmesh sim TOPOLOGY --scenario all --seed 0 --no-report`` and the
checks read only the result files (summary.json, requests.csv, calls.csv, timeseries.csv,
faults.csv). Figures "in the window" cover what started inside the scenario's fault window as
faults.csv records it (first start to last end), and the baseline is measured over the same
seconds. ``EXPECTED`` holds, per (topology, scenario), the checks; a scenario added to a
bundled YAML without an entry fails ``test_every_bundled_scenario_has_expectations``.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import topologies
from faultmesh.cli import main

BUNDLED_DIR = Path(topologies.__file__).parent
NAMES = sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))


class Run:
    """One scenario's (or the baseline's) result directory."""

    def __init__(self, path: Path):
        self.path = path

    @cached_property
    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text(encoding="utf-8"))

    def _csv(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.path / name)

    @cached_property
    def requests(self) -> pd.DataFrame:
        return self._csv("requests.csv")

    @cached_property
    def calls(self) -> pd.DataFrame:
        return self._csv("calls.csv")

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        return self._csv("timeseries.csv")

    @cached_property
    def window(self) -> tuple[float, float]:
        """The fault window: first fault start to last fault end (the run's end at most)."""
        faults = self._csv("faults.csv")
        end = float(self.summary["duration"])
        return float(faults["start"].min()), min(end, float(faults["end"].fillna(end).max()))

    def failed_slos(self) -> set[str]:
        return {s["name"] for s in self.summary["slos"] if not s["pass"]}


# -- metrics: f(run, window) -> number --------------------------------------------------------

Window = tuple[float, float]
Metric = Callable[[Run, Window], float]


def _in(frame: pd.DataFrame, w: Window, column: str = "start") -> pd.DataFrame:
    return frame[(frame[column] >= w[0]) & (frame[column] < w[1])]


def _flag(col: pd.Series) -> np.ndarray:
    return col.astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def avail(run: Run, w: Window) -> float:
    """Share of the window's requests answered (degraded answers count)."""
    return float(_flag(_in(run.requests, w)["ok"]).mean())


def full(run: Run, w: Window) -> float:
    """Share of the window's requests answered and not degraded."""
    r = _in(run.requests, w)
    return float((_flag(r["ok"]) & ~_flag(r["degraded"])).mean())


def _answered_latency(run: Run, w: Window) -> pd.Series:
    r = _in(run.requests, w)
    return r.loc[_flag(r["ok"]), "latency"]


def p50(run: Run, w: Window) -> float:
    """Median latency of the window's answered requests (s)."""
    lat = _answered_latency(run, w)
    return float(lat.quantile(0.5)) if len(lat) else math.nan


def p99(run: Run, w: Window) -> float:
    """p99 latency of the window's answered requests (s)."""
    lat = _answered_latency(run, w)
    return float(lat.quantile(0.99)) if len(lat) else math.nan


def started(run: Run, w: Window) -> float:
    """Requests started in the window (a closed workload's throughput)."""
    return float(len(_in(run.requests, w)))


def _edge(run: Run, w: Window, edge: str) -> pd.DataFrame:
    caller, callee = edge.split("->")
    c = _in(run.calls, w)
    return c[(c["caller"] == caller) & (c["callee"] == callee)]


def retries(edge: str) -> Metric:
    def metric(run: Run, w: Window) -> float:
        return float((_edge(run, w, edge)["attempt"] > 1).sum())
    metric.__doc__ = f"retried attempts on {edge} in the window"
    return metric


def edge_p50(edge: str) -> Metric:
    def metric(run: Run, w: Window) -> float:
        c = _edge(run, w, edge)
        return float((c["end"] - c["start"]).median())
    metric.__doc__ = f"median attempt time on {edge} in the window (s)"
    return metric


def _series(run: Run, service: str) -> pd.DataFrame:
    ts = run.timeseries
    return ts[ts["service"] == service]


def replicas_max(service: str) -> Metric:
    def metric(run: Run, w: Window) -> float:
        ts = _series(run, service)
        return float(ts.loc[ts["t"] >= w[0], "replicas"].max())
    metric.__doc__ = f"most {service} replicas from the fault's start to the end"
    return metric


def first_rise(service: str) -> Metric:
    def metric(run: Run, w: Window) -> float:
        ts = _series(run, service)
        before = ts.loc[ts["t"] <= w[0], "replicas"].iloc[-1]
        rose = ts.loc[(ts["t"] > w[0]) & (ts["replicas"] > before), "t"]
        return float(rose.min()) if len(rose) else math.inf
    metric.__doc__ = f"first time {service} has more replicas than at the fault's start (s)"
    return metric


def _series_stat(service: str, column: str, how: str, doc: str) -> Metric:
    """A metric: ``how`` (min or mean) of a timeseries column of ``service`` in the window."""
    def metric(run: Run, w: Window) -> float:
        return float(getattr(_in(_series(run, service), w, "t")[column], how)())
    metric.__doc__ = doc
    return metric


def ready_min(service: str) -> Metric:
    return _series_stat(service, "ready_replicas", "min",
                        f"fewest ready {service} replicas in the window")


def busy(service: str) -> Metric:
    return _series_stat(service, "busy", "mean", f"mean busy units of {service} in the window")


def queued(service: str) -> Metric:
    return _series_stat(service, "queued", "mean",
                        f"mean requests queued at {service} in the window")


def short_circuited(service: str) -> Metric:
    def metric(run: Run, w: Window) -> float:
        return float(run.summary["services"][service]["short_circuited"])
    metric.__doc__ = f"calls to {service} refused by an open breaker (whole run)"
    return metric


def cost(run: Run, w: Window) -> float:
    """Total cost of the run (USD)."""
    return float(run.summary["cost"]["total"])


@dataclass(frozen=True)
class Check:
    """``metric`` of the scenario compared with the baseline's: ``op`` is ``>=x``/``<=x``
    (``value`` times the baseline), ``>=+``/``<=+`` (the baseline plus ``value``) or
    ``>=``/``<=`` (``value`` itself)."""

    metric: Metric
    op: str
    value: float

    def bound(self, base: float) -> float:
        kind = self.op[2:]
        return base * self.value if kind == "x" else base + self.value if kind == "+" \
            else self.value

    def holds(self, scen: float, base: float) -> bool:
        compare = operator.ge if self.op.startswith(">=") else operator.le
        return compare(scen, self.bound(base))


def C(metric: Metric, op: str, value: float) -> Check:
    return Check(metric, op, value)


# -- what each bundled scenario must show (docs/topologies.md gives the lessons) -------------

EXPECTED: dict[tuple[str, str], tuple[Check, ...]] = {
    # rag-chat
    ("rag-chat", "llm-brownout"): (C(p50, ">=+", 1.5),),
    ("rag-chat", "vectordb-outage"): (
        C(avail, "<=", 0.05), C(retries("gateway->vectordb"), ">=", 10),
        C(short_circuited("vectordb"), ">=", 50)),
    ("rag-chat", "crash-one-llm"): (      # black hole: idle survivors, autoscaler blind
        C(avail, "<=", 0.5), C(short_circuited("llm"), ">=", 50),
        C(busy("llm"), "<=x", 0.25), C(replicas_max("llm"), "<=x", 1.0)),
    ("rag-chat", "deploy-llm-at-peak"): (  # surge: two extra GPUs, nothing else moves
        C(replicas_max("llm"), ">=+", 2), C(ready_min("llm"), ">=x", 1.0),
        C(cost, ">=x", 1.1), C(p50, "<=x", 1.05), C(avail, ">=+", -0.005)),
    ("rag-chat", "reranker-errors"): (C(full, "<=+", -0.5), C(avail, ">=+", -0.001)),
    ("rag-chat", "embedder-cpu-throttle"): (
        C(retries("gateway->embedder"), ">=+", 30), C(p50, ">=+", 0.1)),
    ("rag-chat", "slow-network-to-vectordb"): (
        C(edge_p50("gateway->vectordb"), ">=x", 5.0), C(p50, ">=+", 0.05),
        C(avail, ">=+", -0.001)),
    ("rag-chat", "vectordb-replica-partition"): (
        C(avail, "<=+", -0.02), C(retries("gateway->vectordb"), ">=+", 20)),
    # agent
    ("agent", "frontier-api-slowdown"): (C(p50, ">=x", 1.5), C(started, "<=x", 0.9)),
    ("agent", "frontier-api-429-storm"): (
        C(retries("agent-api->frontier-api"), ">=+", 100), C(avail, "<=+", -0.02)),
    ("agent", "frontier-api-outage"): (
        C(avail, "<=", 0.05), C(short_circuited("frontier-api"), ">=", 100)),
    ("agent", "search-hangs"): (
        C(full, "<=+", -0.3), C(p50, ">=+", 2.0), C(avail, ">=", 0.9)),
    ("agent", "sandbox-overload"): (
        C(edge_p50("agent-api->code-sandbox"), ">=x", 2.5), C(p99, ">=x", 1.05)),
    ("agent", "planner-crash"): (         # ejected: the survivor queues, then one more replica
        C(p50, ">=x", 1.3), C(queued("planner"), ">=", 2.0),
        C(replicas_max("planner"), ">=+", 1), C(avail, ">=", 0.95)),
    ("agent", "kb-vectordb-resets"): (
        C(full, "<=+", -0.4), C(avail, ">=+", -0.001),
        C(retries("kb-search->vectordb"), ">=+", 20)),
    ("agent", "session-store-pause"): (C(full, "<=", 0.1), C(avail, ">=+", -0.001)),
    # rag-real (real cache and retriever in containers; the simulator models them)
    ("rag-real", "redis-outage"): (C(full, "<=", 0.05), C(avail, ">=", 0.999)),
    ("rag-real", "slow-retriever"): (
        C(edge_p50("gateway->retriever"), ">=+", 0.25), C(p50, ">=+", 0.25),
        C(avail, ">=", 0.999)),
    # recommender
    ("recommender", "cache-outage"): (C(full, "<=", 0.05), C(avail, ">=", 0.999)),
    ("recommender", "ranker-slow"): (C(p99, ">=x", 2.0), C(full, "<=+", -0.1)),
    ("recommender", "online-store-latency"): (C(p99, ">=x", 1.4), C(avail, ">=", 0.999)),
    ("recommender", "candidate-gen-crash"): (  # personalisation lost, not latency
        C(full, "<=+", -0.25), C(avail, ">=", 0.999), C(p99, "<=x", 1.05),
        C(short_circuited("candidate-gen"), ">=", 100)),
    ("recommender", "ranker-rollout-no-surge"): (
        C(ready_min("ranker"), "<=", 0), C(full, "<=+", -0.3), C(avail, ">=", 0.999)),
    ("recommender", "feature-store-errors"): (
        C(retries("pipeline->feature-store"), ">=+", 200), C(full, "<=+", -0.015)),
    ("recommender", "online-store-shard-partition"): (
        C(p99, ">=x", 1.25), C(retries("feature-store->online-store"), ">=+", 100)),
    ("recommender", "ranker-bandwidth"): (C(p99, ">=x", 1.5), C(avail, ">=", 0.999)),
    ("recommender", "online-store-packet-loss"): (   # a lost segment outlasts the timeout
        C(retries("feature-store->online-store"), ">=+", 100), C(p99, ">=x", 1.04),
        C(avail, ">=", 0.999)),
    ("recommender", "feature-store-cpu-throttle"): (
        C(edge_p50("pipeline->feature-store"), ">=x", 2.0), C(avail, ">=", 0.999)),
    ("recommender", "candidate-gen-memory-limit"): (  # a crash loop: OOM-killed at each start
        C(full, "<=+", -0.25), C(avail, ">=", 0.999),
        C(short_circuited("candidate-gen"), ">=", 100)),
    # router
    ("router", "large-llm-outage"): (C(full, "<=+", -0.15), C(avail, ">=", 0.995)),
    ("router", "large-llm-brownout"): (
        C(p99, ">=x", 1.25), C(short_circuited("large-llm"), ">=", 20), C(full, "<=+", -0.05)),
    ("router", "small-llm-crash"): (      # ejected: survivors queue; autoscaler after restart
        C(p50, ">=x", 1.8), C(queued("small-llm"), ">=", 20), C(avail, ">=", 0.9),
        C(replicas_max("small-llm"), ">=+", 2), C(first_rise("small-llm"), ">=", 170)),
    ("router", "small-llm-rollout"): (    # no surge near the autoscaler's target
        C(ready_min("small-llm"), "<=+", -2), C(p50, ">=x", 1.5), C(avail, "<=+", -0.2)),
    ("router", "frontier-api-429"): (
        C(retries("router->frontier-api"), ">=+", 15), C(full, "<=+", -0.01),
        C(avail, ">=+", -0.001)),
    ("router", "frontier-api-hangs"): (C(p99, ">=x", 1.1), C(full, "<=+", -0.02)),
    ("router", "large-path-resets"): (
        C(full, "<=+", -0.15), C(retries("router->large-llm"), ">=+", 10),
        C(avail, ">=", 0.995)),
}

#: The README's main job: the brownout breaks exactly this SLO (tests/test_readme.py).
BROWNOUT_FAILS = {"chat median during faults"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The result directory of ``faultmesh sim NAME --scenario all`` (run once per name)."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            code = main(["sim", str(BUNDLED_DIR / f"{name}.yaml"), "--scenario", "all",
                         "--seed", "0", "--out", str(out), "--no-report"])
            assert code == 1   # the scenarios break SLOs; 0 or 2+ would be a different story
            done[name] = out
        return done[name]

    return get


def test_every_bundled_scenario_has_expectations():
    for name in NAMES:
        t = topologies.load(str(BUNDLED_DIR / f"{name}.yaml"))
        missing = [s for s in t.scenarios if (name, s) not in EXPECTED]
        assert not missing, f"{name}: add the lesson of {missing} to EXPECTED"
    stale = [k for k in EXPECTED if k[0] not in NAMES
             or k[1] not in topologies.load(str(BUNDLED_DIR / f"{k[0]}.yaml")).scenarios]
    assert not stale, stale


def test_check_bounds():
    assert C(p50, ">=x", 1.5).holds(3.0, 2.0) and not C(p50, ">=x", 1.5).holds(2.9, 2.0)
    assert C(p50, "<=+", -0.5).holds(0.4, 1.0) and not C(p50, "<=+", -0.5).holds(0.6, 1.0)
    assert C(p50, ">=", 7).holds(7, 100) and not C(p50, "<=", 7).holds(8, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_baseline_passes_its_slos(results, name):
    base = Run(results(name) / "baseline")
    assert base.failed_slos() == set()


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_scenario_shows_its_lesson(results, key):
    name, scenario = key
    scen = Run(results(name) / scenario)
    base = Run(results(name) / "baseline")
    w = scen.window
    failures = []
    for check in EXPECTED[key]:
        s, b = check.metric(scen, w), check.metric(base, w)
        if not check.holds(s, b):
            failures.append(f"{check.metric.__doc__}: {s:.4g} (baseline {b:.4g}), "
                            f"wanted {check.op} {check.value} -> bound {check.bound(b):.4g}")
    assert not failures, f"{name} {scenario} window {w}: " + "; ".join(failures)


@pytest.mark.slow
def test_brownout_breaks_only_the_fault_window_median(results):
    """The README's main job exits 1 on the brownout alone."""
    assert Run(results("rag-chat") / "llm-brownout").failed_slos() == BROWNOUT_FAILS


def _print_figures(out: Path) -> None:
    """Each check's figure, scenario against baseline (the figures of docs/topologies.md)."""
    for name in NAMES:
        run_dir = out / name
        if not (run_dir / "baseline").is_dir():
            main(["sim", str(BUNDLED_DIR / f"{name}.yaml"), "--scenario", "all", "--seed", "0",
                  "--out", str(run_dir), "--no-report"])
        base = Run(run_dir / "baseline")
        for (topo, scenario), checks in sorted(EXPECTED.items()):
            if topo != name:
                continue
            scen = Run(run_dir / scenario)
            w = scen.window
            print(f"{name} {scenario} (window {w[0]:.0f}-{w[1]:.0f} s)")
            for check in checks:
                print(f"    {check.metric.__doc__}: {check.metric(scen, w):.4g} "
                      f"(baseline {check.metric(base, w):.4g})")


if __name__ == "__main__":
    # .venv/bin/python tests/test_bundled_scenarios.py [DIR]: run (or reuse) every topology's
    # scenarios in DIR/<topology> and print the figures the checks compare
    import sys

    _print_figures(Path(sys.argv[1] if len(sys.argv) > 1 else "results/bundled-scenarios"))
