"""The HTTP toxics (http_error, http_slow, http_fail_first) on real sockets.

A real HTTP/1.1 upstream (http.server, keep-alive; chunked bodies written by hand), the
built-in proxy in front of it, and http.client keep-alive connections through the proxy.
"""

from __future__ import annotations

import http.client
import math
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, port_of, recv_all
from toxiproxy.exceptions import InvalidToxic

from chaos.proxy.httpframe import Framer
from chaos.proxy.link import Link
from chaos.proxy.toxics import fault_toxic

echo, server, client = fx.echo, fx.server, fx.client  # the fixtures


class _Handler(BaseHTTPRequestHandler):
    """/size/N: N bytes; /chunked: a chunked body with a trailer; /sleep/MS: answers after MS
    ms; POST anything: the request body back (Content-Length or chunked); else 'ok <path>'."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()  # head and body are two writes: no Nagle stall between them
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/size/"):
            self._send(b"x" * int(self.path[6:]))
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Sum")
            self.end_headers()
            for part in (b"alpha-", b"beta;-", b"\r\ngamma" * 300):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Sum: 3\r\n\r\n")
        elif self.path.startswith("/sleep/"):
            time.sleep(int(self.path[7:]) / 1000)
            self._send(b"slept")
        else:
            self._send(f"ok {self.path}".encode())

    def do_POST(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(body)


@pytest.fixture
def upstream() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _address(httpd: ThreadingHTTPServer) -> str:
    return f"127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def api(server):
    """Plain HTTP calls to the proxy's API (the toxic bodies exactly as a user sends them)."""
    session = requests.Session()

    def call(method: str, path: str, body: object = None) -> requests.Response:
        return session.request(method, server.url + path, json=body, timeout=5)

    yield call
    session.close()


@pytest.fixture
def proxied(api, upstream) -> str:
    """The listen address of a proxy named 'web' in front of the upstream."""
    answer = api("POST", "/proxies", {"name": "web", "upstream": _address(upstream)})
    assert answer.status_code == 201
    return answer.json()["listen"]


def _conn(listen: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port_of(listen), timeout=5)


def _get(conn: http.client.HTTPConnection, path: str, **headers: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _toxic(api, **body: object) -> None:
    answer = api("POST", "/proxies/web/toxics", body)
    assert answer.status_code == 200, answer.text


def test_without_toxics_keep_alive_and_chunked_bodies_pass_intact(proxied, upstream):
    conn = _conn(proxied)
    assert _get(conn, "/one") == (200, b"ok /one")
    status, body = _get(conn, "/chunked")
    assert status == 200 and body == b"alpha-beta;-" + b"\r\ngamma" * 300
    conn.request("POST", "/echo", body=iter([b"chunk-1;", b"\r\n0\r\n", b"end"]),
                 encode_chunked=True)
    assert conn.getresponse().read() == b"chunk-1;\r\n0\r\nend"
    conn.request("POST", "/echo", body=b"y" * 70000)
    assert conn.getresponse().read() == b"y" * 70000
    assert _get(conn, "/two") == (200, b"ok /two")
    conn.close()
    assert upstream.hits == ["/one", "/chunked", "/echo", "/echo", "/two"]


def test_http_error_answers_a_share_of_requests_without_forwarding(api, proxied, upstream):
    _toxic(api, type="http_error", toxicity=0.3)
    conn = _conn(proxied)
    n = 300
    statuses = []
    for i in range(n):
        status, body = _get(conn, f"/r{i}")
        statuses.append(status)
        assert body == (b"ok /r%d" % i if status == 200 else
                        b"503 Service Unavailable (faultmesh http_error http_error_downstream)\n")
    conn.close()
    errors = statuses.count(503)
    sd = math.sqrt(n * 0.3 * 0.7)
    assert abs(errors - 0.3 * n) < 4 * sd, errors  # binomial tolerance at the fixed seed
    assert set(statuses) == {200, 503}
    assert len(upstream.hits) == n - errors  # answered ones never reached the upstream


def test_http_error_status_and_body_attributes(api, proxied, upstream):
    _toxic(api, type="http_error", name="teapot", attributes={"status": 418, "body": "no\n"})
    conn = _conn(proxied)
    conn.request("GET", "/x")
    response = conn.getresponse()
    assert (response.status, response.read()) == (418, b"no\n")
    assert response.getheader("X-Faultmesh-Toxic") == "teapot"
    conn.request("HEAD", "/x")  # HEAD: the same head, no body
    response = conn.getresponse()
    assert response.status == 418 and response.read() == b""
    conn.request("GET", "/x", headers={"Connection": "close"})  # answered, then closed
    assert conn.getresponse().status == 418
    conn.close()
    assert upstream.hits == []


def test_http_fail_first_fails_n_requests_of_each_connection(api, proxied, upstream):
    _toxic(api, type="http_fail_first", attributes={"count": 2, "status": 502})
    for _ in range(2):  # a new connection fails its first two again
        conn = _conn(proxied)
        assert [_get(conn, "/retry")[0] for _ in range(4)] == [502, 502, 200, 200]
        conn.close()
    assert len(upstream.hits) == 4


def test_path_and_header_matching(api, proxied, upstream):
    _toxic(api, type="http_error", attributes={"path": "/api/", "header": "X-Tenant: blue"})
    _toxic(api, type="http_fail_first", attributes={"path": "/login", "count": 1})
    conn = _conn(proxied)
    assert _get(conn, "/api/v1", **{"X-Tenant": "light-blue"})[0] == 503
    assert _get(conn, "/api/v1", **{"X-Tenant": "red"})[0] == 200
    assert _get(conn, "/api/v1")[0] == 200
    assert _get(conn, "/other", **{"X-Tenant": "blue"})[0] == 200
    assert _get(conn, "/login")[0] == 503  # the first matching request of the connection
    assert _get(conn, "/login")[0] == 200
    conn.close()


def _median_get(listen: str, path: str, n: int = 5) -> float:
    conn = _conn(listen)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert _get(conn, path)[0] == 200
        times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times)


def test_http_slow_delays_the_response_headers(api, proxied, upstream):
    direct = _median_get(_address(upstream), "/fast")
    _toxic(api, type="http_slow", attributes={"latency": 120})
    added = _median_get(proxied, "/fast") - direct
    assert 0.115 < added < 0.3, added


def test_http_slow_factor_stretches_the_upstream_time(api, proxied, upstream):
    _toxic(api, type="http_slow", attributes={"factor": 300})  # 3x: 80 ms become 240
    took = _median_get(proxied, "/sleep/80", n=3)
    assert 0.23 < took < 0.4, took


def test_http_slow_rate_streams_the_body_slowly_and_intact(api, proxied, upstream):
    _toxic(api, type="http_slow", attributes={"rate": 40000})
    conn = _conn(proxied)
    start = time.perf_counter()
    status, body = _get(conn, "/size/20000")
    took = time.perf_counter() - start
    assert status == 200 and body == b"x" * 20000
    assert 0.4 < took < 1.0, took  # 20000 bytes at 40000 bytes/s
    start = time.perf_counter()
    status, body = _get(conn, "/chunked")  # a chunked body paced, framing intact
    assert body == b"alpha-beta;-" + b"\r\ngamma" * 300
    assert time.perf_counter() - start > 0.04
    conn.close()


def test_tcp_latency_adds_to_http_slow(api, proxied):
    _toxic(api, type="latency", attributes={"latency": 60})
    _toxic(api, type="http_slow", attributes={"latency": 60})
    took = _median_get(proxied, "/both", n=3)
    assert 0.115 < took < 0.3, took


def test_removing_the_toxic_restores_pass_through_on_the_same_connection(api, proxied):
    _toxic(api, type="http_error")
    conn = _conn(proxied)
    assert _get(conn, "/a")[0] == 503
    assert api("DELETE", "/proxies/web/toxics/http_error_downstream").status_code == 204
    assert _get(conn, "/a") == (200, b"ok /a")
    _toxic(api, type="http_error", stream="upstream")  # added to the open connection
    assert _get(conn, "/a")[0] == 503
    conn.close()


def test_untoxic_http_is_framed_in_the_callback_and_a_late_toxic_finds_the_boundaries(
        api, server, proxied, upstream, monkeypatch):
    """With no toxic, keep-alive exchanges go through the socket's callback (the framing
    watching, no queue, no pipe task), yet a toxic added to the open connection judges the
    next request whole, even one whose head arrives in two pieces."""
    taken: list[str] = []
    sink = Link._pass

    def counted(link: Link, data: bytes) -> bool:
        passed = sink(link, data)
        if passed:
            taken.append(link.stream)
        return passed

    monkeypatch.setattr(Link, "_pass", counted)
    with connect(proxied) as sock:
        for i in range(30):
            sock.sendall(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            assert _read_response(sock) == (200, b"ok /k%d" % i)
            if i == 0:  # the first request may come before the upstream connection is
                taken.clear()  # made: buffered, the read task passes it on
        conns = list(server.proxies["web"].connections)
        assert len(conns) == 1
        assert all(link._piping is None for link in conns[0].links.values())
        assert not conns[0].http.opaque  # framed as HTTP all along, not passed as opaque
        # every request and every response taken by the callback (a chunk read by the task
        # instead would be missing here)
        assert taken.count("upstream") == 29 and taken.count("downstream") >= 29
        _toxic(api, type="http_error", stream="upstream", attributes={"status": 418,
                                                                      "path": "/late"})
        sock.sendall(b"GET /la")  # half a head: held until complete, then judged
        time.sleep(0.05)
        sock.sendall(b"te HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[0] == 418
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock) == (200, b"ok /after")
    assert upstream.hits == [f"/k{i}" for i in range(30)] + ["/after"]


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One Content-Length response from a raw socket: its status and body."""
    got = b""
    while b"\r\n\r\n" not in got:
        data = sock.recv(65536)
        assert data, "the connection closed before the response's head"
        got += data
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        data = sock.recv(65536)
        assert data, "the connection closed inside a body"
        body += data
    return int(head.split(b" ", 2)[1]), body[:length]


def test_pipelined_requests_keep_their_order(api, proxied, upstream):
    _toxic(api, type="http_error", attributes={"path": "/b"})
    with connect(proxied) as sock:
        sock.sendall(b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % p
                              for p in (b"a", b"b", b"c")))
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(b"ok /c"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    first, second, third = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and first.endswith(b"ok /a")
    assert second.startswith(b"503")
    assert third.startswith(b"200") and third.endswith(b"ok /c")
    assert upstream.hits == ["/a", "/c"]


def test_non_http_bytes_pass_untouched_with_http_toxics_present(api, echo):
    listen = api("POST", "/proxies", {"name": "raw", "upstream": echo.address}).json()["listen"]
    for kind in ("http_error", "http_fail_first", "http_slow"):
        assert api("POST", "/proxies/raw/toxics", {"type": kind}).status_code == 200
    with connect(listen) as sock:
        for payload in (b"*1\r\n$4\r\nPING\r\n", b"GET without a version\r\n\r\n", b"\x00" * 9):
            sock.sendall(payload)
            assert recv_all(sock, len(payload)) == payload


def test_toxiproxy_python_adds_and_refuses_http_toxics(client, upstream):
    proxy = client.create(upstream=_address(upstream), name="web")
    proxy.add_toxic(type="http_error", name="flaky", toxicity=1.0,
                    attributes={"status": 500, "path": "/"})
    assert proxy.get_toxic("flaky").attributes == {"status": 500, "body": "", "path": "/",
                                                   "header": ""}
    conn = _conn(proxy.listen)
    assert _get(conn, "/x")[0] == 500
    proxy.destroy_toxic("flaky")
    assert _get(conn, "/x")[0] == 200
    proxy.add_toxic(name="errors", **fault_toxic("errors", rate=1.0, status=502, path="/x"))
    assert _get(conn, "/x")[0] == 502 and _get(conn, "/y")[0] == 200
    proxy.destroy_toxic("errors")
    conn.close()
    for bad in ({"status": 700}, {"count": "two"}, {"path": 3}, {"factor": 50}):
        kind = "http_fail_first" if "count" in bad else "http_slow" if "factor" in bad else \
            "http_error"
        with pytest.raises(InvalidToxic):
            proxy.add_toxic(type=kind, attributes=bad)


def test_fault_toxic_maps_errors_and_slow_faults():
    assert fault_toxic("errors", rate=0.2, status=503) == {
        "type": "http_error", "toxicity": 0.2,
        "attributes": {"status": 503, "path": "", "header": ""}}
    assert fault_toxic("errors")["attributes"]["status"] == 500
    assert fault_toxic("slow", factor=2.5)["attributes"]["factor"] == 250
    with pytest.raises(ValueError):
        fault_toxic("kill")


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_framer_cuts_messages_without_changing_a_byte(step):
    stream = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;x=y\r\nhello\r\n0\r\nA: b\r\n\r\n"
              b"HTTP/1.1 204 No Content\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
              b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    framer = Framer(requests=False, method_of=lambda: "GET")
    pieces = []
    for i in range(0, len(stream), step):
        pieces += framer.feed(stream[i:i + step])
    assert b"".join(p.data for p in pieces) == stream
    assert [p.head.status for p in pieces if p.head] == [100, 200, 204, 200, 200]
    assert sum(p.ends for p in pieces) == 3  # the 100 is interim; the last runs to the close


def test_framer_turns_opaque_on_non_http():
    framer = Framer(requests=True)
    assert [p.data for p in framer.feed(b"\x16\x03\x01 hello")] == [b"\x16\x03\x01 hello"]
    assert framer.opaque and framer.feed(b"GET / HTTP/1.1\r\n\r\n")[0].head is None


def test_a_socket_reading_past_the_answer_sees_the_connection_open(api, proxied):
    """A local answer keeps the connection (keep-alive): nothing more arrives after it."""
    _toxic(api, type="http_error")
    with connect(proxied) as sock:
        sock.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 503")
        sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            sock.recv(1)


def test_an_answered_request_body_is_skipped_whole(api, proxied, upstream):
    """Content-Length and chunked bodies of answered requests never reach the upstream, and
    the next request on the connection is judged and forwarded intact."""
    _toxic(api, type="http_error", attributes={"path": "/fail"})
    conn = _conn(proxied)
    conn.request("POST", "/fail", body=iter([b"a" * 5000, b"0\r\n\r\n", b"b"]),
                 encode_chunked=True)
    assert conn.getresponse().read().startswith(b"503")
    conn.request("POST", "/fail", body=b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert conn.getresponse().read().startswith(b"503")
    conn.request("POST", "/echo", body=b"intact")
    assert conn.getresponse().read() == b"intact"
    conn.close()
    assert upstream.hits == ["/echo"]


def test_an_answer_to_a_request_waiting_for_100_continue_closes(api, proxied, upstream):
    _toxic(api, type="http_error")
    with connect(proxied) as sock:
        sock.sendall(b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 503") and b"Connection: close" in data
    assert upstream.hits == []


def _raw_server(greet: bytes, upgrade: bool) -> tuple[socket.socket, str]:
    """A one-connection TCP server: sends ``greet`` first, or answers an upgrade request with
    101; then echoes everything."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            if greet:
                conn.sendall(greet)
            if upgrade:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                             b"Connection: Upgrade\r\n\r\n")
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("case", ["banner", "upgrade"])
def test_a_server_speaking_first_or_a_protocol_switch_passes_untouched(api, case):
    listener, address = _raw_server(b"220 hello\r\n" if case == "banner" else b"",
                                    upgrade=case == "upgrade")
    with listener:
        listen = api("POST", "/proxies", {"name": "raw", "upstream": address}).json()["listen"]
        assert api("POST", "/proxies/raw/toxics", {
            "type": "http_error", "attributes": {"path": "/now"}}).status_code == 200
        with connect(listen) as sock:
            if case == "banner":
                assert recv_all(sock, 11) == b"220 hello\r\n"
            else:
                sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\n"
                             b"Connection: Upgrade\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                assert head.startswith(b"HTTP/1.1 101")
            request = b"GET /now-opaque HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(request)  # would be answered 503 if still judged as HTTP
            assert recv_all(sock, len(request)) == request
