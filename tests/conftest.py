"""Shared fixtures: a small valid topology text that tests mutate."""

from __future__ import annotations

import textwrap

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
