"""Faults that end connections act on connections already open, and a proxy whose upstream
refuses refuses in turn. Real sockets on loopback, through toxiproxy-python.

Each test opens a connection through the proxy, sends a "slow request" (a line the upstream
answers after a delay), and only then applies the fault.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, port_of

from chaos.proxy.proxy import PROBE_INTERVAL

server, client = fx.server, fx.client  # the fixtures

SLOW = 1.0   # the upstream answers each line this long after it came
SLACK = 0.15


class SlowServer:
    """Answers every line it receives with ``ok\\n``, ``SLOW`` seconds later."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn:
            try:
                reader = conn.makefile("rb")
                while reader.readline():
                    time.sleep(SLOW)
                    conn.sendall(b"ok\n")
            except OSError:
                pass

    def close(self) -> None:
        for s in [self.sock, *self._conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def slow() -> Iterator[SlowServer]:
    s = SlowServer()
    yield s
    s.close()


@pytest.fixture
def proxy(client, slow):
    return client.create(upstream=slow.address, name="slow")


def _in_flight(proxy) -> socket.socket:
    """A connection through the proxy that has answered once and now waits on a slow line."""
    sock = connect(proxy.listen)
    sock.sendall(b"warm\n")
    assert sock.recv(10) == b"ok\n"
    sock.sendall(b"slow\n")
    time.sleep(0.1)  # the line is at the upstream
    return sock


def _outcome(sock: socket.socket) -> tuple[str, float]:
    """How the connection ended, and when (seconds from now)."""
    start = time.perf_counter()
    try:
        data = sock.recv(10)
        what = "eof" if data == b"" else f"data {data!r}"
    except ConnectionResetError:
        what = "reset"
    except TimeoutError:
        what = "hang"
    return what, time.perf_counter() - start


@pytest.mark.slow
def test_disabling_the_proxy_closes_a_connection_with_a_request_in_flight(proxy):
    with _in_flight(proxy) as sock:
        proxy.disable()
        what, took = _outcome(sock)
    assert what in ("eof", "reset") and took < SLACK


@pytest.mark.slow
def test_reset_peer_resets_an_open_connection_after_its_timeout(proxy):
    with _in_flight(proxy) as sock:
        proxy.add_toxic(type="reset_peer", attributes={"timeout": 200})
        what, took = _outcome(sock)
    # from the toxic's start on the connection, not the answer's arrival (SLOW later)
    assert what == "reset" and 0.19 <= took < 0.2 + SLACK


@pytest.mark.slow
def test_reset_peer_resets_an_idle_open_connection_too(proxy):
    with connect(proxy.listen) as sock:
        sock.sendall(b"warm\n")
        assert sock.recv(10) == b"ok\n"
        proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
        what, took = _outcome(sock)
    assert what == "reset" and took < SLACK


@pytest.mark.slow
def test_timeout_toxic_stops_data_on_an_open_connection_then_closes_it(proxy):
    with _in_flight(proxy) as sock:
        proxy.add_toxic(type="timeout", attributes={"timeout": 1500})
        sock.settimeout(SLOW + 0.2)
        what, _ = _outcome(sock)   # the answer, due after SLOW, is dropped
        assert what == "hang"
        sock.settimeout(2)
        what, _ = _outcome(sock)
    assert what in ("eof", "reset")


@pytest.mark.slow
def test_a_blackhole_holds_open_and_new_connections_and_resets_them_when_removed(proxy):
    with _in_flight(proxy) as old:
        proxy.add_toxic(type="timeout", name="partition", stream="upstream",
                        attributes={"timeout": 0})
        proxy.add_toxic(type="timeout", name="partition_down", stream="downstream",
                        attributes={"timeout": 0})
        with connect(proxy.listen) as new:
            new.sendall(b"lost\n")
            for sock in (old, new):
                sock.settimeout(SLOW + 0.3)
                assert _outcome(sock)[0] == "hang"  # nothing comes back, nothing closes
            proxy.destroy_toxic("partition")
            proxy.destroy_toxic("partition_down")
            for sock in (old, new):
                sock.settimeout(2)
                what, took = _outcome(sock)
                assert what in ("eof", "reset") and took < SLACK
        with connect(proxy.listen) as after:  # the proxy passes data again
            after.sendall(b"again\n")
            assert after.recv(10) == b"ok\n"


def _dead_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.slow
def test_a_refusing_upstream_resets_the_connection_and_the_proxy_refuses_until_it_is_back(
        client):
    port = _dead_port()
    proxy = client.create(upstream=f"127.0.0.1:{port}", name="dead")
    start = time.perf_counter()
    with pytest.raises(ConnectionResetError):     # RST, before any byte
        with connect(proxy.listen) as sock:
            sock.sendall(b"hello\n")
            sock.recv(10)
    assert time.perf_counter() - start < SLACK
    with pytest.raises(ConnectionRefusedError):   # and now refused, like the upstream
        connect(proxy.listen)
    assert client.get_proxy("dead").enabled
    back = SlowServer(port)
    try:
        time.sleep(PROBE_INTERVAL * 4)
        with connect(proxy.listen) as sock:       # listening again, same address
            sock.sendall(b"hi\n")
            assert sock.recv(10) == b"ok\n"
        assert port_of(client.get_proxy("dead").listen) == port_of(proxy.listen)
    finally:
        back.close()


def test_disabling_a_refusing_proxy_and_enabling_it_again_listens(client):
    port = _dead_port()
    proxy = client.create(upstream=f"127.0.0.1:{port}", name="dead")
    with pytest.raises(ConnectionResetError):
        with connect(proxy.listen) as sock:
            sock.sendall(b"x\n")
            sock.recv(10)
    proxy.disable()
    proxy.enable()
    try:                                          # listening (until the upstream refuses)
        with connect(proxy.listen) as sock:
            sock.sendall(b"x\n")
            assert _outcome(sock)[0] == "reset"
    except ConnectionResetError:  # the reset came before connect() returned: same answer
        pass
