"""Faults as a caller replica sees them, with real processes: a dead callee replica (refused,
the balancer keeps picking it unless outlier detection ejects it), a callee that dies with an
attempt in flight (reset), and network faults on the edge's proxy hitting open attempts."""

from __future__ import annotations

import signal
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import test_proxy_fixtures as fx
from emulator_helpers import read_calls, send

from chaos.emulator.launch import ReplicaProcess, start_replica

server, client = fx.server, fx.client  # the fixtures

TEXT = """\
    version: 1
    name: faults
    entry: front
    workload: {rate: 1/s, duration: 10s}
    services:
      front:
        workers: 8
        calls:
          - CALL
      back:
        replicas: 2
        workers: 8
        latency: LATENCY
"""


def _topology(tmp_path: Path, call: str, latency: str = "5ms") -> str:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(TEXT).replace("CALL", call).replace("LATENCY", latency))
    return str(path)


@contextmanager
def _replicas(tmp_path: Path) -> Iterator[list[ReplicaProcess]]:
    started: list[ReplicaProcess] = []
    try:
        yield started
    finally:
        for rep in started:
            rep.stop()


def _dead_address() -> str:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def _kill(rep: ReplicaProcess) -> None:
    rep.process.send_signal(signal.SIGKILL)
    rep.process.wait(5)


def _in_thread(port: int) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(send(port)))
    thread.start()
    return thread, out


def _attempts_to_the_dead_one(tmp_path: Path, call: str) -> list[dict[str, str]]:
    path = _topology(tmp_path, call)
    with _replicas(tmp_path) as started:
        back = start_replica(path, "back", str(tmp_path / "back.csv"))
        started.append(back)
        front = start_replica(path, "front", str(tmp_path / "front.csv"),
                              upstreams={"back": [back.address, _dead_address()]})
        started.append(front)
        answers = [send(front.port) for _ in range(40)]
        assert front.stop() == 0
    rows = read_calls(tmp_path / "front.csv")
    assert len(rows) == 40
    failed = [a for a in answers if a[0] != 200]
    assert all(a[0] == 502 and a[1]["X-Faultmesh-Error"] == "refused" for a in failed)
    return [r for r in rows if r["replica"] == "1"]


@pytest.mark.slow
def test_without_outlier_detection_the_balancer_keeps_picking_a_dead_replica(tmp_path):
    dead = _attempts_to_the_dead_one(tmp_path, "{to: back}")
    assert len(dead) == 20   # round robin: every other attempt, for the whole run
    assert {r["error"] for r in dead} == {"refused"}


def test_outlier_detection_ejects_a_dead_replica_after_consecutive_failures(tmp_path):
    dead = _attempts_to_the_dead_one(
        tmp_path, "{to: back, outlier_detection: {consecutive_failures: 3, ejection: 30s}}")
    assert len(dead) == 3    # three refusals in a row, then ejected for the rest of the run
    assert {r["error"] for r in dead} == {"refused"}


@pytest.mark.slow
def test_a_killed_replica_behind_its_proxy_is_refused_until_it_serves_again(tmp_path, client):
    path = _topology(tmp_path, "{to: back}")
    with _replicas(tmp_path) as started:
        back = start_replica(path, "back", str(tmp_path / "back.csv"))
        started.append(back)
        proxy = client.create(upstream=back.address, name="front-back", listen="127.0.0.1:0")
        listen = client.get_proxy("front-back").listen
        front = start_replica(path, "front", str(tmp_path / "front.csv"),
                              upstreams={"back": [listen]})
        started.append(front)
        assert send(front.port)[0] == 200   # a pooled connection through the proxy
        _kill(back)
        time.sleep(0.2)
        down = [send(front.port) for _ in range(5)]
        again = start_replica(path, "back", str(tmp_path / "back2.csv"), port=back.port)
        started.append(again)
        time.sleep(0.3)   # the proxy tries its upstream every 50 ms
        up = [send(front.port)[0] for _ in range(3)]
        assert front.stop() == 0
        assert proxy.name == "front-back"
    assert [a[0] for a in down] == [502] * 5
    assert {a[1]["X-Faultmesh-Error"] for a in down} == {"refused"}
    assert up == [200] * 3
    rows = read_calls(tmp_path / "front.csv")
    assert [r["error"] for r in rows] == [""] + ["refused"] * 5 + [""] * 3


@pytest.mark.slow
def test_an_attempt_in_flight_when_its_callee_dies_is_reset(tmp_path, client):
    path = _topology(tmp_path, "{to: back}", latency="2s")
    with _replicas(tmp_path) as started:
        back = start_replica(path, "back", str(tmp_path / "back.csv"))
        started.append(back)
        client.create(upstream=back.address, name="front-back", listen="127.0.0.1:0")
        listen = client.get_proxy("front-back").listen
        front = start_replica(path, "front", str(tmp_path / "front.csv"),
                              upstreams={"back": [listen]})
        started.append(front)
        thread, out = _in_thread(front.port)   # a fresh connection, the request in flight
        time.sleep(0.5)
        _kill(back)
        thread.join(5)
        assert front.stop() == 0
    assert out[0][0] == 502 and out[0][1]["X-Faultmesh-Error"] == "reset"
    (row,) = read_calls(tmp_path / "front.csv")
    assert row["error"] == "reset" and float(row["end"]) - float(row["start"]) < 1.0


@contextmanager
def _proxied(tmp_path: Path, client, latency: str, call: str = "{to: back}"
             ) -> Iterator[tuple[ReplicaProcess, object]]:
    """front -> proxy -> back, with one request answered (a pooled connection open)."""
    path = _topology(tmp_path, call, latency=latency)
    with _replicas(tmp_path) as started:
        back = start_replica(path, "back", str(tmp_path / "back.csv"))
        started.append(back)
        proxy = client.create(upstream=back.address, name="front-back", listen="127.0.0.1:0")
        listen = client.get_proxy("front-back").listen
        front = start_replica(path, "front", str(tmp_path / "front.csv"),
                              upstreams={"back": [listen]})
        started.append(front)
        assert send(front.port)[0] == 200
        yield front, proxy
        assert front.stop() == 0


def _last_row(tmp_path: Path) -> tuple[str, float]:
    row = read_calls(tmp_path / "front.csv")[-1]
    return row["error"], float(row["end"]) - float(row["start"])


@pytest.mark.slow
def test_down_fails_an_attempt_already_in_flight_with_reset(tmp_path, client):
    with _proxied(tmp_path, client, "1s") as (front, proxy):
        thread, out = _in_thread(front.port)
        time.sleep(0.3)   # the request is at the callee, on the pooled connection
        proxy.disable()
        thread.join(5)
    assert out[0][0] == 502 and out[0][1]["X-Faultmesh-Error"] == "reset"
    error, took = _last_row(tmp_path)
    assert error == "reset" and took < 0.6


@pytest.mark.slow
def test_reset_peer_fails_an_attempt_already_in_flight_at_once(tmp_path, client):
    with _proxied(tmp_path, client, "1s") as (front, proxy):
        thread, out = _in_thread(front.port)
        time.sleep(0.3)
        proxy.add_toxic(type="reset_peer", name="rst", attributes={"timeout": 0})
        thread.join(5)
        proxy.destroy_toxic("rst")
    assert out[0][1]["X-Faultmesh-Error"] == "reset"
    error, took = _last_row(tmp_path)
    assert error == "reset" and took < 0.6   # not when the answer would have come (1 s)


@pytest.mark.slow
def test_a_blackhole_hangs_open_and_new_attempts_until_it_ends_then_resets_them(
        tmp_path, client):
    with _proxied(tmp_path, client, "300ms") as (front, proxy):
        first, out1 = _in_thread(front.port)
        time.sleep(0.1)
        for stream in ("upstream", "downstream"):
            proxy.add_toxic(type="timeout", name=f"partition_{stream}", stream=stream,
                            attributes={"timeout": 0})
        second, out2 = _in_thread(front.port)   # sent during the partition
        time.sleep(1.4)
        assert first.is_alive() and second.is_alive()   # both hang, without a timeout
        for stream in ("upstream", "downstream"):
            proxy.destroy_toxic(f"partition_{stream}")
        first.join(5)
        second.join(5)
        assert send(front.port)[0] == 200
    for out in (out1, out2):
        assert out[0][0] == 502 and out[0][1]["X-Faultmesh-Error"] == "reset"
    rows = read_calls(tmp_path / "front.csv")
    assert [r["error"] for r in rows] == ["", "reset", "reset", ""]
    assert 1.4 <= float(rows[1]["end"]) - float(rows[1]["start"]) <= 1.8
