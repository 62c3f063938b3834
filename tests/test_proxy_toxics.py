"""What each toxic does to traffic, measured on loopback through toxiproxy-python.

Tolerances: a toxic's delay is a floor (the proxy never delivers early), and the ceiling allows
150 ms of scheduling slack on a loaded 2-core machine.
"""

from __future__ import annotations

import socket
import statistics
import time

import pytest
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, recv_all, round_trip

echo, server, client = fx.echo, fx.server, fx.client  # the fixtures

SLACK = 0.15


@pytest.fixture
def proxy(client, echo):
    return client.create(upstream=echo.address, name="echo")


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_latency_adds_its_latency_to_a_round_trip(proxy):
    with connect(proxy.listen) as sock:
        base = round_trip(sock)
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        delayed = [round_trip(sock) for _ in range(3)]
    assert base < 0.05
    for took in delayed:
        assert 0.100 <= took < 0.100 + SLACK


def test_latency_on_both_streams_adds_up(proxy):
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 40})
    proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 60})
    with connect(proxy.listen) as sock:
        took = round_trip(sock)
    assert 0.100 <= took < 0.100 + SLACK


def test_latency_jitter_stays_within_its_bounds(proxy):
    proxy.add_toxic(type="latency", attributes={"latency": 60, "jitter": 30})
    with connect(proxy.listen) as sock:
        took = [round_trip(sock) for _ in range(6)]
    assert all(0.030 <= t < 0.090 + SLACK for t in took)


@pytest.mark.slow
def test_bandwidth_caps_throughput(proxy):
    proxy.add_toxic(type="bandwidth", attributes={"rate": 100})  # 100 KB/s, KB = 1024 bytes
    payload = b"x" * (50 * 1024)
    with connect(proxy.listen) as sock:
        took = round_trip(sock, payload)
    assert 0.45 <= took < 0.8  # 50 KB at 100 KB/s: 0.5 s (-0.05, +0.3 for a loaded machine)


def test_timeout_drops_data_then_closes_the_connection(proxy):
    proxy.add_toxic(type="timeout", attributes={"timeout": 300})
    with connect(proxy.listen) as sock:
        start = time.perf_counter()
        sock.sendall(b"lost")
        data = sock.recv(100)
        took = time.perf_counter() - start
    assert data == b""  # nothing came back, then EOF
    assert 0.29 <= took < 0.3 + SLACK


@pytest.mark.slow
def test_timeout_zero_holds_the_connection_until_the_toxic_goes(proxy):
    proxy.add_toxic(type="timeout", name="hang", attributes={"timeout": 0})
    with connect(proxy.listen, timeout=0.4) as sock:
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(100)
        proxy.destroy_toxic("hang")
        sock.settimeout(2)
        assert _closed(sock)


def test_reset_peer_resets_the_connection(proxy):
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 100})
    with connect(proxy.listen) as sock:
        start = time.perf_counter()
        sock.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    assert 0.09 <= time.perf_counter() - start < 0.1 + SLACK


def test_limit_data_closes_after_that_many_bytes(proxy):
    proxy.add_toxic(type="limit_data", attributes={"bytes": 1000})
    with connect(proxy.listen) as sock:
        sock.sendall(b"y" * 3000)
        got = recv_all(sock, 3000)
    assert got == b"y" * 1000


def test_slow_close_delays_the_close(proxy):
    proxy.add_toxic(type="slow_close", attributes={"delay": 200})
    with connect(proxy.listen) as sock:
        round_trip(sock)
        start = time.perf_counter()
        sock.shutdown(socket.SHUT_WR)  # the echo server closes in turn
        assert sock.recv(10) == b""
        took = time.perf_counter() - start
    assert 0.19 <= took < 0.2 + SLACK


def test_slicer_cuts_data_into_delayed_pieces_without_changing_it(proxy):
    proxy.add_toxic(type="slicer",
                    attributes={"average_size": 100, "size_variation": 20, "delay": 10000})
    payload = bytes(range(256)) * 4  # 1024 bytes: about 10 pieces, 10 ms apart
    with connect(proxy.listen) as sock:
        took = round_trip(sock, payload)
    assert 0.07 <= took < 0.1 + SLACK


def test_noop_changes_nothing(proxy):
    proxy.add_toxic(type="noop")
    with connect(proxy.listen) as sock:
        assert round_trip(sock, b"z" * 10000) < 0.05


def test_a_toxic_added_mid_connection_applies_to_it_and_removal_too(proxy):
    with connect(proxy.listen) as sock:
        assert round_trip(sock) < 0.05
        proxy.add_toxic(type="latency", name="lag", attributes={"latency": 150})
        assert round_trip(sock) >= 0.150
        proxy.destroy_toxic("lag")
        assert round_trip(sock) < 0.05


def test_toxicity_zero_never_applies(proxy):
    proxy.add_toxic(type="latency", toxicity=0.0, attributes={"latency": 300})
    for _ in range(5):
        with connect(proxy.listen) as sock:
            assert round_trip(sock) < 0.1


@pytest.mark.slow
def test_toxicity_is_drawn_once_per_connection(proxy):
    proxy.add_toxic(type="latency", toxicity=0.5, attributes={"latency": 50})
    hit = []
    for _ in range(16):
        with connect(proxy.listen) as sock:
            first = round_trip(sock) >= 0.05
            assert (round_trip(sock) >= 0.05) == first  # the same draw for the whole connection
            hit.append(first)
    assert 0 < sum(hit) < 16


#: What the proxy may add to a median small round trip. Measured: +86-92 us with the proxy in
#: its own process (benchmarks/proxy_overhead.py, docs/proxy.md), +35-47 us here (the proxy's
#: thread in this process), +210-260 us by another measurement on a busy machine; the bound
#: leaves room for a loaded 2-core machine and still catches a real regression (a Nagle stall
#: adds 40 ms, a per-chunk sleep or a lost wakeup milliseconds).
ADDED_MEDIAN_MAX = 0.002


def test_proxy_overhead_on_loopback_is_small(proxy, echo):
    """Median small round trip through the proxy against a direct baseline to the same echo
    server measured in the same test, in alternating blocks (docs/proxy.md)."""
    proxied: list[float] = []
    plain: list[float] = []
    with connect(proxy.listen) as via, socket.create_connection(
            ("127.0.0.1", echo.port), timeout=5) as direct:
        direct.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for sock in (via, direct):
            for _ in range(20):
                round_trip(sock)  # warm up
        for _ in range(6):  # blocks in turn: both paths see the same load on the machine
            plain += [round_trip(direct) for _ in range(50)]
            proxied += [round_trip(via) for _ in range(50)]
    added = statistics.median(proxied) - statistics.median(plain)
    print(f"round trip: direct {statistics.median(plain) * 1e6:.0f} us, proxied "
          f"{statistics.median(proxied) * 1e6:.0f} us, added {added * 1e6:+.0f} us")
    assert added > 0  # two more hops: a proxy that is not in the path shows no cost at all
    assert added < ADDED_MEDIAN_MAX
