"""Fixtures for the proxy tests: an echo TCP server, a ProxyServer, the toxiproxy-python client.

All traffic stays on 127.0.0.1; every socket has a timeout so no test can hang.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import toxiproxy
from toxiproxy.api import APIConsumer

from chaos.proxy import ProxyServer

__all__ = ["EchoServer", "echo", "server", "client", "connect", "round_trip", "recv_all",
           "port_of"]

IO_TIMEOUT = 5.0


class EchoServer:
    """A TCP server on 127.0.0.1 that sends back whatever it receives, one thread a client."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT * 2)
            with self._lock:
                self._clients.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
        self._thread.join(2)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def server() -> Iterator[ProxyServer]:
    proxy_server = ProxyServer("127.0.0.1", 0, seed=7).start()
    yield proxy_server
    proxy_server.stop()


@pytest.fixture
def client(server: ProxyServer) -> Iterator[toxiproxy.Toxiproxy]:
    """toxiproxy-python pointed at the test server (class attributes restored afterwards)."""
    saved = APIConsumer.host, APIConsumer.port
    APIConsumer.host, APIConsumer.port = server.host, server.port
    yield toxiproxy.Toxiproxy()
    APIConsumer.host, APIConsumer.port = saved


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def connect(listen: str, timeout: float = IO_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(listen)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_all(sock: socket.socket, size: int) -> bytes:
    """Read exactly size bytes (fewer only if the peer closes first)."""
    chunks = []
    got = 0
    while got < size:
        data = sock.recv(min(65536, size - got))
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for payload to go through the echo server and come back whole."""
    start = time.perf_counter()
    sock.sendall(payload)
    assert recv_all(sock, len(payload)) == payload
    return time.perf_counter() - start
