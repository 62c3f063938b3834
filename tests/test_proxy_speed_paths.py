"""The proxy's fast paths keep what they pass intact, and its listeners take bursts of connects.

* Listen backlog: 200 connects fired at once, while the server's loop is busy and accepts
  none, all complete within 0.5 s — a listen queue shorter than the burst drops SYNs, and a
  client retries a dropped SYN only after a second.
* Pass-through: bytes that nothing acts on go straight from one socket to the other (no task
  per chunk); a toxic added or removed mid-stream switches a connection between that path and
  the toxics' queue without losing, duplicating or reordering a byte.
* The event loop: uvloop when importable, asyncio's otherwise; toxics never deliver early on it.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import sys
import threading
import time

import pytest
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, port_of, recv_all, round_trip

from chaos.proxy import ProxyServer, loops

echo, server, client = fx.echo, fx.server, fx.client  # the fixtures

BURST = 200


def _burst_connect(port: int, server: ProxyServer) -> tuple[float, list[socket.socket]]:
    """Fire BURST non-blocking connects at ``port`` while the server's loop sleeps (accepts
    nothing: every connection must wait in the listen queue); seconds until all completed."""
    loop = server._loop
    assert loop is not None
    loop.call_soon_threadsafe(time.sleep, 0.3)  # the loop is blocked; the GIL is not
    time.sleep(0.05)
    socks = []
    start = time.perf_counter()
    for _ in range(BURST):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    waiting = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in waiting:
        poller.register(fd, select.POLLOUT)
    deadline = start + 5
    while waiting and time.perf_counter() < deadline:
        for fd, _ in poller.poll(100):
            sock = waiting.pop(fd)
            poller.unregister(fd)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    took = time.perf_counter() - start
    assert not waiting, f"{len(waiting)} of {BURST} connects still pending after 5 s"
    return took, socks


def test_a_burst_of_connects_to_a_proxy_completes_without_a_dropped_syn(client, echo, server):
    proxy = client.create(upstream=echo.address, name="burst")
    for _ in range(3):
        took, socks = _burst_connect(port_of(proxy.listen), server)
        for sock in socks:
            sock.close()
        assert took < 0.5, f"{BURST} connects took {took:.2f} s: SYNs were dropped"


def test_a_burst_of_connects_to_the_api_completes_without_a_dropped_syn(server):
    for _ in range(3):
        took, socks = _burst_connect(server.port, server)
        for sock in socks:
            sock.close()
        assert took < 0.5, f"{BURST} connects took {took:.2f} s: SYNs were dropped"


def test_listen_backlog_is_the_systems_maximum(monkeypatch, tmp_path):
    with open("/proc/sys/net/core/somaxconn") as fh:
        assert loops.listen_backlog() == int(fh.read())
    monkeypatch.setattr(loops, "_SOMAXCONN", str(tmp_path / "absent"))
    assert loops.listen_backlog() == socket.SOMAXCONN


def test_the_loop_is_uvloop_when_importable_else_asyncio(monkeypatch):
    try:
        import uvloop  # noqa: F401
        expected = "uvloop"
    except ImportError:
        expected = "asyncio"
    loop = loops.new_event_loop()
    try:
        assert loops.loop_name(loop) == expected
    finally:
        loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails: asyncio's loop
    loop = loops.new_event_loop()
    try:
        assert loops.loop_name(loop) == "asyncio"
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


@pytest.mark.parametrize("queue_chunks", [8, 1])
def test_bulk_bytes_survive_toxics_coming_and_going_mid_stream(client, echo, monkeypatch,
                                                               queue_chunks):
    """Random bytes streamed through while a toxic is added and removed again and again: the
    connection moves between the pass-through path and the toxics' queue; nothing is lost,
    repeated or reordered. With a queue of one chunk the reader is often held in a full
    queue's put, chunk in hand, while the queue drains: a later chunk must not pass it (it
    did, on a loaded machine, before the reader counted as busy there)."""
    monkeypatch.setattr("chaos.proxy.link.QUEUE_CHUNKS", queue_chunks)
    proxy = client.create(upstream=echo.address, name="bulk")
    data = os.urandom(8 << 20)
    received = bytearray()
    with connect(proxy.listen, timeout=20) as sock:

        def reader() -> None:
            while len(received) < len(data):
                got = sock.recv(1 << 20)
                if not got:
                    return
                received.extend(got)

        thread = threading.Thread(target=reader)
        thread.start()
        step = len(data) // 16
        for n, start in enumerate(range(0, len(data), step)):
            if n % 4 == 1:
                proxy.add_toxic(name="lat", type="latency", attributes={"latency": 2})
            elif n % 4 == 3:
                proxy.destroy_toxic("lat")
            sock.sendall(data[start:start + step])
        thread.join(30)
    assert len(received) == len(data)
    assert bytes(received) == data


def test_a_toxic_added_to_a_passing_connection_acts_on_its_next_bytes(client, echo):
    proxy = client.create(upstream=echo.address, name="switch")
    payload = os.urandom(4096)  # not HTTP: the connection passes bytes straight on
    with connect(proxy.listen) as sock:
        for _ in range(20):
            round_trip(sock, payload)
        proxy.add_toxic(name="lat", type="latency", attributes={"latency": 60})
        assert round_trip(sock, payload) >= 0.060
        proxy.add_toxic(name="cut", type="limit_data", attributes={"bytes": 100})
        sock.sendall(payload)
        assert len(recv_all(sock, len(payload))) == 100  # then the connection closes
    with connect(proxy.listen) as sock:
        proxy.destroy_toxic("lat")
        proxy.destroy_toxic("cut")
        for _ in range(20):
            assert round_trip(sock, payload) < fx.IO_TIMEOUT


def test_latency_is_never_delivered_early_on_the_proxys_loop(client, echo):
    """uvloop's clock is in whole milliseconds and its timers can fire early: the toxics'
    stamps and waits use the monotonic clock, so no round trip is shorter than the latency."""
    proxy = client.create(upstream=echo.address, name="floor")
    proxy.add_toxic(type="latency", attributes={"latency": 10})
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 3})
    with connect(proxy.listen) as sock:
        took = [round_trip(sock) for _ in range(60)]
    assert min(took) >= 0.013
