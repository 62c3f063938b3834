"""Small builders for simulator tests: topologies from YAML text, and queueing formulas."""

from __future__ import annotations

import math
import textwrap

import topologies
from topologies.model import Topology


def topo(text: str, **overrides: object) -> Topology:
    """A Topology from (dedented) YAML text; keyword overrides use dotted paths with '__'."""
    t = topologies.loads(textwrap.dedent(text))
    if overrides:
        t = topologies.override(t, {k.replace("__", "."): v for k, v in overrides.items()})
    return t


def single(latency: str, *, rate: float, duration: float, warmup: float = 50.0,
           workers: int = 1, extra: str = "") -> Topology:
    """One service behind the client, with the given latency distribution (YAML flow map)."""
    return topo(f"""
        version: 1
        name: single
        entry: s
        workload: {{model: open, rate: {rate}, duration: {duration}, warmup: {warmup}}}
        services:
          s:
            workers: {workers}
            latency: {latency}
        {extra}
    """)


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c with offered load a (Erlang B, by recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a = lambda / mu (Erlang C)."""
    b = erlang_b(c, a)
    rho = a / c
    return b / (1 - rho + rho * b)


def mmc_response(lam: float, mu: float, c: int) -> float:
    """Mean response time of M/M/c."""
    a = lam / mu
    return erlang_c(c, a) / (c * mu - lam) + 1 / mu


def md1_response(lam: float, d: float) -> float:
    """Mean response time of M/D/1 (Pollaczek-Khinchine)."""
    rho = lam * d
    return d + rho * d / (2 * (1 - rho))


assert math.isclose(erlang_b(3, 2.0), (8 / 6) / (1 + 2 + 2 + 8 / 6))
