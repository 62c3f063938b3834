"""Helpers for the emulator tests: start a topology as replica processes, send requests.

No tests here; the ``test_emulator_*`` files import it (tests/ is on sys.path).
"""

from __future__ import annotations

import csv
import http.client
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from chaos.emulator.launch import ReplicaProcess, start_replica
from topologies import loads

__all__ = ["running", "send", "burst", "read_calls"]


@contextmanager
def running(tmp_path: Path, text: str, services: list[str], seed: int = 1
            ) -> Iterator[dict[str, list[ReplicaProcess]]]:
    """Start ``services`` (callees first) as processes; every one is stopped on exit."""
    text = textwrap.dedent(text)
    if "workload:" not in text:  # the emulator ignores it; the schema requires one
        text = text.replace("\nservices:", "\nworkload: {rate: 1/s, duration: 10s}\nservices:")
    topo = loads(text)
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    epoch = time.time()
    started: dict[str, list[ReplicaProcess]] = {}
    try:
        for name in services:
            spec = topo.services[name]
            ups = {c.to: [r.address for r in started[c.to]] for c in spec.edges()}
            started[name] = [
                start_replica(str(path), name, str(tmp_path / f"{name}-{k}.csv"), replica=k,
                              upstreams=ups, epoch=epoch, seed=seed, hold_memory=True)
                for k in range(spec.replicas)]
        yield started
    finally:
        for reps in started.values():
            for rep in reps:
                rep.stop()
        for reps in started.values():
            for rep in reps:
                assert rep.process.poll() is not None


def send(port: int, method: str = "POST", path: str = "/", body: bytes = b"",
         headers: dict[str, str] | None = None, timeout: float = 10.0
         ) -> tuple[int, dict[str, str], bytes, float]:
    """One request on a fresh connection: (status, headers, body, seconds taken)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data, time.perf_counter() - t0
    finally:
        conn.close()


def burst(port: int, n: int, concurrency: int) -> list[tuple[int, dict[str, str], bytes, float]]:
    """``n`` requests, ``concurrency`` at a time."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: send(port), range(n)))


def read_calls(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
