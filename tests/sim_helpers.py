"""Small builders for simulator tests: topologies from YAML text, and queueing formulas."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


#: A simulation long enough (20000 s simulated) to be stopped while it runs.
LONG_SIM = """\
version: 1
name: long
entry: a
workload: {model: open, rate: 50/s, duration: 20000s, warmup: 0s}
services:
  a: {latency: {dist: exponential, mean: 4ms}, calls: [{to: b}]}
  b: {latency: {dist: exponential, mean: 4ms}}
"""


def long_sim_running(tmp_path: Path, *options: str
                     ) -> tuple[subprocess.Popen[str], Path, Path]:
    """``faultmesh sim`` of :data:`LONG_SIM` in a real child process (progress as plain lines
    every 0.2 s into ``stderr.txt``), returned once it has reported simulated time (bounded
    wait): (process, result directory, stderr file). ``options`` default to --no-report."""
    path = tmp_path / "long.yaml"
    path.write_text(LONG_SIM)
    out, err = tmp_path / "out", tmp_path / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "sim", str(path), "--out",
                                 str(out), *(options or ["--no-report"])],
                                stdout=subprocess.DEVNULL, stderr=fh, text=True,
                                env={**os.environ, "FAULTMESH_PROGRESS": "lines",
                                     "FAULTMESH_PROGRESS_EVERY": "0.2"})
    deadline = time.monotonic() + 60
    while "s simulated" not in err.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, err.read_text()
        time.sleep(0.2)
    return proc, out, err
