"""The live engine's bookkeeping of replicas over time and the membership relay of autoscaled
services, without emulator processes: two small HTTP servers on 127.0.0.1 stand for
replicas, a raw socket for a caller's keep-alive connection."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaos.live.book import EXISTING, READY, ReplicaBook
from chaos.live.relay import MemberRelay, _Framing


def test_book_counts_killed_replicas_as_existing_but_not_ready():
    book = ReplicaBook()
    a = book.add("api", 0, 0.0, ready=True)
    b = book.add("api", 1, 10.0, ready=False)     # autoscaled: costs from 10 s
    book.set_ready(b, 15.0)                       # serves after its 5 s cold start
    book.set_down(a, 20.0, True)                  # killed
    book.set_down(a, 22.0, False)                 # restarted
    book.stop(b, 30.0)
    assert book.level_at("api", 5.0) == (1, 1)
    assert book.level_at("api", 12.0) == (2, 1)
    assert book.level_at("api", 21.0) == (2, 1)
    assert book.level_at("api", 25.0) == (2, 2)
    assert book.level_at("api", 31.0) == (1, 1)
    assert book.integral("api", 0.0, 40.0, EXISTING) == pytest.approx(40 + 20)
    assert book.integral("api", 0.0, 40.0, READY) == pytest.approx(38 + 15)
    assert book.integral("api", 20.0, 21.0, READY) == pytest.approx(1.0)
    assert [r.index for r in book.in_balancer("api")] == [0]
    assert book.level_at("other", 1.0) == (0, 0)


def test_framing_knows_when_a_connection_is_at_rest():
    f = _Framing()
    assert not f.feed(b"HTTP/1.1 200 OK\r\nContent-Le")
    assert not f.feed(b"ngth: 5\r\n\r\nab")
    assert f.feed(b"cde")
    assert f.feed(b"HTTP/1.1 503 x\r\ncontent-length: 0\r\n\r\n")
    assert not f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 2")


def _server(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _ask(sock: socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith((b"a", b"b")):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data[-1:]


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=2)


@pytest.fixture
def replicas():
    a, b = _server("a"), _server("b")
    yield a.server_address[1], b.server_address[1]
    for srv in (a, b):
        srv.shutdown()
        srv.server_close()


@pytest.mark.slow
def test_relay_lends_a_free_slot_then_moves_its_idle_connection_to_the_new_replica(replicas):
    """The caller's idle connection is not closed when its slot's member changes: its next
    request goes to the new member (closing it raced a request sent in that instant)."""
    pa, pb = replicas
    relay = MemberRelay("api", 2)
    slots = relay.start()
    try:
        relay.set_members({0: pa})
        time.sleep(0.05)
        caller = _connect(slots[1])                 # slot 1 has no replica yet: lent to a
        assert _ask(caller) == b"a" and _ask(caller) == b"a"
        assert relay.open_to(pa) == 1
        relay.set_members({0: pa, 1: pb})           # replica 1 is ready
        deadline = time.time() + 2
        while relay.open_to(pa):                    # the relay lets go of replica a at once
            assert time.time() < deadline
            time.sleep(0.01)
        caller.settimeout(0.2)
        with pytest.raises(TimeoutError):           # ... and keeps the caller's connection
            caller.recv(10)
        caller.settimeout(2)
        assert _ask(caller) == b"b" and _ask(caller) == b"b"  # the same connection, moved
        assert (relay.open_to(pa), relay.open_to(pb)) == (0, 1)
        caller.close()
        own = _connect(slots[0])
        assert _ask(own) == b"a"
        own.close()
    finally:
        relay.stop()


@pytest.mark.slow
def test_a_dead_replica_refuses_through_the_relay_until_it_accepts_again(replicas):
    pa, _ = replicas
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]                   # nothing listens there
    relay = MemberRelay("api", 2)
    slots = relay.start()
    try:
        relay.set_members({0: pa, 1: dead})
        time.sleep(0.05)
        first = _connect(slots[1])
        with pytest.raises(OSError):                # reset before any byte
            first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if not first.recv(10):
                raise ConnectionResetError
        first.close()
        time.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):  # the slot stopped listening
            _connect(slots[1])
        relay.set_members({0: pa, 1: pa})           # "restarted" (here: another server)
        deadline = time.time() + 2
        while True:
            try:
                back = _connect(slots[1])
                break
            except ConnectionRefusedError:
                assert time.time() < deadline
                time.sleep(0.05)
        assert _ask(back) == b"a"
        back.close()
    finally:
        relay.stop()


def test_slots_are_dealt_out_evenly_over_the_members_a_crashed_one_included():
    """Balancers pick among slots; each member holds the same share of them, so picking a
    slot is picking a replica, as in the simulator (a crashed member keeps its share)."""
    from chaos.live.relay import MemberRelay

    relay = MemberRelay("planner", 6)
    relay._members = {0: 1000, 1: 1001}
    assert [relay._pick(k) for k in range(6)] == [(0, 1000), (1, 1001)] * 3
    relay._members = {0: 1000, 2: 1002, 3: 1003}   # replica 1 stopped
    assert [relay._pick(k)[0] for k in range(6)] == [0, 2, 3, 0, 2, 3]
    relay._members = {}
    assert relay._pick(0) is None
