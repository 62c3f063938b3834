"""Every figure of one run, computed once: what finalize writes and the report shows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from topologies.edges import worst_amplification

from .cost import cost_breakdown, cost_over_time
from .formatting import json_number
from .metrics import (
    WINDOW,
    availability,
    latency_stats,
    llm_stats,
    success_latency,
    successes,
    throughput,
)
from .metrics import windowed as windowed_requests
from .resilience import (
    blast_radius,
    cascade_timeline,
    edge_amplification,
    recovery_time,
    service_impact,
)
from .result import Result
from .score import ScorePart, resilience_score
from .slo import SLOResult, evaluate_slos, window_calls, window_requests

__all__ = ["Analysis", "analyse"]


@dataclass
class Analysis:
    """The metrics, resilience figures, cost, SLO verdicts and score of one run."""

    result: Result
    intervals: list[tuple[float, float]]
    latency: dict[str, float]
    requests: int
    unfinished: int
    ok: int
    availability: float
    throughput: float
    windows: pd.DataFrame
    recovery_time: float
    retry_amplification: float
    edges: pd.DataFrame
    impact: pd.DataFrame
    timeline: pd.DataFrame
    blast_radius: list[str]
    faulted: list[str]
    cost: dict[str, Any]
    cost_timeline: pd.DataFrame
    llm: pd.DataFrame
    slos: list[SLOResult]
    score: float
    score_parts: list[ScorePart] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every SLO holds (True without SLOs)."""
        return all(s.passed for s in self.slos)

    def resilience(self) -> dict[str, Any]:
        """summary.json's ``resilience`` block."""
        rec = self.recovery_time
        return {
            "recovery_time": json_number(rec),
            "recovered": None if math.isnan(rec) else not math.isinf(rec),
            "retry_amplification": json_number(self.retry_amplification),
            "blast_radius": list(self.blast_radius),
            "cascade": self.cascade(),
            "score": self.score,
        }

    def cascade(self) -> list[dict[str, Any]]:
        """The cascade timeline as JSON: per service in order ``first``, ``last`` (start of
        its first and end of its last episode), ``episodes`` ([[start, end], ...]) and
        ``metric`` (what crossed first)."""
        return [{"service": str(row.service), "first": float(row.first),
                 "last": float(row.last),
                 "episodes": [[float(lo), float(hi)] for lo, hi in row.episodes],
                 "metric": str(row.metric)}
                for row in self.timeline.itertuples(index=False)]


def analyse(result: Result) -> Analysis:
    """Compute every figure of a run from its result files."""
    intervals = result.fault_intervals()
    reqs = result.measured_requests()
    warm, end = result.warmup, result.duration
    calls = result.completed_calls()
    impact = service_impact(calls, intervals, warm, end)
    affected = list(impact.loc[impact["affected"].astype(bool), "service"]) if len(impact) else []
    timeline = cascade_timeline(calls, intervals, warm, end, services=affected)
    radius = blast_radius(impact, timeline)
    faulted = sorted({_fault_service(t) for t in result.faults["target"].dropna()})
    prices = result.prices() if result.topology_text else {}
    cost_timeline = cost_over_time(result.timeseries, prices)
    ok = int(successes(reqs).sum())
    slos = evaluate_slos(result) if result.topology_text or result.given_topology else []
    rec = recovery_time(result.completed_requests(), intervals, warm, end)
    # per edge over the calls of the measured requests; the run's figure is the worst edge
    edges = edge_amplification(result.calls, window_calls(result, "all", reqs))
    services = set(impact["service"]) if len(impact) else set()
    if result.topology is not None:
        services |= set(result.topology.services)
    others = services - set(faulted)
    spread = len([s for s in radius if s not in faulted])
    fault_avail = availability(window_requests(result, "fault") if intervals else reqs)
    score, parts = resilience_score(
        slos_passed=sum(s.passed and not s.skipped for s in slos),
        slos_total=sum(not s.skipped for s in slos),
        fault_availability=fault_avail, recovery_time=rec, spread=spread,
        others=len(others) if intervals else 0)
    return Analysis(
        result=result, intervals=intervals, latency=latency_stats(success_latency(reqs)),
        requests=len(reqs), unfinished=result.unfinished, ok=ok, availability=availability(reqs),
        throughput=throughput(reqs, result.span),
        windows=windowed_requests(result.completed_requests(), warm, end, WINDOW),
        recovery_time=rec, retry_amplification=worst_amplification(edges),
        edges=edges, impact=impact, timeline=timeline,
        blast_radius=radius, faulted=faulted,
        cost=cost_breakdown(result.summary, successes=ok, timeline=cost_timeline),
        cost_timeline=cost_timeline, llm=llm_stats(result.calls), slos=slos, score=score,
        score_parts=parts)


def _fault_service(target: str) -> str:
    return target.split("->", 1)[1].strip() if "->" in target else target.strip()
