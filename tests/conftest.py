"""Shared fixtures: a small valid topology text that tests mutate; :func:`quick_first`."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

BASE = textwrap.dedent("""\
    version: 1
    name: tiny
    entry: gateway
    workload:
      rate: 10/s
      duration: 60s
      warmup: 5s
    services:
      gateway:
        replicas: 2
        workers: 4
        latency: {dist: lognormal, median: 3ms, p99: 15ms}
        calls:
          - to: llm
            timeout: 2s
            retry: {attempts: 3, backoff: exponential, base: 50ms, max: 1s, on: [timeout, 5xx, 429]}
          - parallel:
              - {to: vectordb, timeout: 1s}
              - {to: cache, p: 0.5}
      llm:
        kind: llm
        llm: {max_batch: 8, output_tokens: {dist: exponential, mean: 100}}
        cost: {per_replica_hour: 0.8}
      vectordb: {kind: vectordb, latency: 5ms}
      cache: {kind: cache}
    scenarios:
      brownout:
        faults:
          - {type: latency, target: llm, start: 10s, duration: 20s, latency: 1s}
    slos:
      - {metric: availability, min: 99%}
    """)


@pytest.fixture
def base_text() -> str:
    return BASE


def quick_first(cases: Iterable[Any], quick: int = 1,
                ids: Sequence[str] | None = None) -> list[Any]:
    """``parametrize`` cases of a test whose every case costs a process start or a run: the
    first ``quick`` stay in the quick loop (``-m "not slow"``), the others are marked slow
    (CI runs them all). A tuple case is the test's arguments, anything else its one argument."""
    out = []
    for i, case in enumerate(cases):
        values = case if isinstance(case, tuple) else (case,)
        marks = () if i < quick else (pytest.mark.slow,)
        out.append(pytest.param(*values, marks=marks, id=None if ids is None else ids[i]))
    return out

