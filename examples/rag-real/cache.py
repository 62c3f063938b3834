"""The answer cache of the real-parts RAG example: a real Redis behind a small HTTP front.

It models the cache a RAG gateway asks before doing the expensive work (retrieval and
generation): a question seen recently is answered from Redis (a hit), a new one is stored
with a time to live (a miss, as if the answer had just been computed). The storage is a real
``redis-server``, started by this program as its child process (no persistence:
``--save "" --appendonly no``, listening on 127.0.0.1 only), spoken to in RESP over a socket
by a minimal hand-written client (GET, SET ... EX, PING): no redis-py.

HTTP/1.1 with keep-alive (stdlib ``ThreadingHTTPServer``) on ``$HOST:$PORT`` (default
127.0.0.1:8080; the example's image sets ``HOST=0.0.0.0``):

* ``GET /healthz``: 200 with ``{"status": "ok", "redis_pid": N}`` when Redis answers PING,
  503 otherwise (while it starts, or when it is gone).
* ``POST /`` (what faultmesh's emulated callers send) and ``POST /lookup``: look the question
  up. The question is the ``query`` (or ``key``) of a JSON object body; else the request id
  header ``X-Faultmesh-Request`` folded into ``CACHE_KEYS`` buckets (an emulated caller's
  ids are all different, real users' questions repeat: the buckets make them repeat); else
  the body's bytes, folded the same way. A hit answers 200 with the stored value, a miss
  stores ``CACHE_VALUE_SIZE`` bytes for ``CACHE_TTL`` seconds and answers 200 with them; the
  header ``X-Cache`` says ``hit`` or ``miss``. Redis unreachable or failing: 503 at once
  (``X-Faultmesh-Error: redis_unavailable``), so the caller's fallback takes over instead of
  waiting for its timeout.

When its redis-server exits on its own (killed, OOM-killed), this program exits too
(exit 3): the service is down as a whole, as a crashed Redis host would be, and in a
container the container stops. SIGTERM or SIGINT stop both: Redis first, then the HTTP
server (exit 0).

Environment: ``PORT``, ``HOST``, ``REDIS_PORT`` (6379), ``REDIS_SERVER`` (the binary,
default ``redis-server`` from PATH), ``REDIS_START`` (``0``: use a Redis already listening
on 127.0.0.1:``REDIS_PORT`` instead of starting one), ``CACHE_TTL`` (seconds, 30),
``CACHE_KEYS`` (1000), ``CACHE_VALUE_SIZE`` (bytes, 1024).

Run it alone: ``PORT=8080 REDIS_PORT=6390 python3 cache.py`` (stdlib only; needs redis-server).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

__all__ = ["RedisError", "Redis", "Config", "question_key", "main"]

_HEADER = "X-Faultmesh-Request"
_ERROR_HEADER = "X-Faultmesh-Error"
#: Connecting to a local Redis takes well under a millisecond; a slow one is a failed one
#: here, so the caller sees a 503 long before its own timeout.
_CONNECT_TIMEOUT = 0.2
_IO_TIMEOUT = 0.5


class RedisError(Exception):
    """Redis could not be reached or answered with an error."""


class Redis:
    """One RESP connection to a Redis server: commands sent as arrays of bulk strings,
    replies parsed from the stream. Not thread-safe: each HTTP handler thread has its own.
    Any failure closes the connection; the next command connects again."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._sock: socket.socket | None = None
        self._file: Any = None

    def close(self) -> None:
        """Drop the connection (a half-read reply would desynchronise the stream)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = self._file = None

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=_CONNECT_TIMEOUT)
        sock.settimeout(_IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._file = sock, sock.makefile("rb")

    def command(self, *args: str | bytes | int) -> Any:
        """Send one command and return its reply: bytes (bulk), str (status), int, list,
        or None (a nil bulk: GET of a missing key). RedisError on any failure."""
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        data = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(data)
            reply = self._read()
        except (OSError, ValueError) as exc:
            self.close()
            raise RedisError(f"redis {self.host}:{self.port}: {exc or type(exc).__name__}") \
                from None
        if isinstance(reply, RedisError):
            raise reply  # an error reply leaves the stream in step: the connection stays
        return reply

    def _line(self) -> bytes:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ValueError("connection closed by Redis")
        return line[:-2]

    def _read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            if len(data) != n + 2:
                raise ValueError("connection closed by Redis")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError(f"not a RESP reply: {line[:40]!r}")


class Config:
    """The program's settings, read from the environment once (ValueError on a bad one)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.host = env.get("HOST", "127.0.0.1")
        self.port = _positive(env, "PORT", 8080)
        self.redis_port = _positive(env, "REDIS_PORT", 6379)
        self.redis_server = env.get("REDIS_SERVER", "redis-server")
        self.start_redis = env.get("REDIS_START", "1") != "0"
        self.ttl = _positive(env, "CACHE_TTL", 30)
        self.keys = _positive(env, "CACHE_KEYS", 1000)
        self.value_size = _positive(env, "CACHE_VALUE_SIZE", 1024)


def _positive(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    value = int(text) if text.strip() else default
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {text!r}")
    return value


def question_key(body: bytes, request_id: str, keys: int) -> str:
    """The Redis key of a request: ``q:<hash>`` of the JSON ``query``/``key`` when the body
    is such an object, else ``b:<bucket>`` of the request id (or, without one, the body)
    folded into ``keys`` buckets."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        text = doc.get("query", doc.get("key"))
        if isinstance(text, str):
            return "q:" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    seed = request_id.encode() if request_id else body
    n = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "little")
    return f"b:{n % keys}"


def _value(key: str, size: int) -> bytes:
    """The answer stored on a miss: ``size`` bytes naming the key (what a computed answer
    would weigh, for the bandwidth it takes)."""
    head = f"answer for {key}; ".encode()
    return (head * (size // len(head) + 1))[:size]


class _State:
    """What the handlers share."""

    config: Config
    redis_pid: int | None = None
    local = threading.local()


def _client() -> Redis:
    client = getattr(_State.local, "redis", None)
    if client is None:
        client = _State.local.redis = Redis("127.0.0.1", _State.config.redis_port)
    return client


class _Handler(http.server.BaseHTTPRequestHandler):
    """Health and lookups over HTTP/1.1 keep-alive (every answer has Content-Length)."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get(_HEADER)
        if rid:
            self.send_header(_HEADER, rid)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
        self._answer(status, json.dumps(doc).encode(), headers)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/healthz":
            self._json(404, {"error": "not found"})
            return
        try:
            pong = _client().command("PING")
        except RedisError as exc:
            self._json(503, {"status": "redis unavailable", "error": str(exc)})
            return
        self._json(200, {"status": "ok", "redis": pong, "redis_pid": _State.redis_pid})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] not in ("/", "/lookup"):
            self._json(404, {"error": "not found"})
            return
        config = _State.config
        key = question_key(raw, self.headers.get(_HEADER, ""), config.keys)
        redis = _client()
        try:
            value = redis.command("GET", key)
            if value is not None:
                self._answer(200, value, {"X-Cache": "hit", "X-Cache-Key": key},
                             "application/octet-stream")
                return
            value = _value(key, config.value_size)
            redis.command("SET", key, value, "EX", config.ttl)
        except RedisError as exc:
            self._json(503, {"error": str(exc)}, {_ERROR_HEADER: "redis_unavailable"})
            return
        self._answer(200, value, {"X-Cache": "miss", "X-Cache-Key": key},
                     "application/octet-stream")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per request would swamp the logs under load


def _redis_command(config: Config) -> list[str]:
    # no persistence: a restarted cache starts cold, as a replaced cache node does
    return [config.redis_server, "--port", str(config.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]


def _stop(child: subprocess.Popen | None) -> None:
    """SIGTERM to redis-server, SIGKILL if it has not gone within 5 s."""
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _watch(child: subprocess.Popen, server: http.server.ThreadingHTTPServer,
           stopping: threading.Event, lost: list[int]) -> None:
    """Stop serving when redis-server exits without being asked to: the service is down."""
    code = child.wait()
    if not stopping.is_set():
        lost.append(code)
        print(f"cache: redis-server exited (status {code}); stopping", file=sys.stderr,
              flush=True)
        stopping.set()
        server.shutdown()


def main() -> int:
    """Start redis-server, serve on $HOST:$PORT until SIGTERM/SIGINT or until Redis dies
    (configured by the environment, as a container is)."""
    try:
        config = Config(dict(os.environ))
    except ValueError as exc:
        print(f"cache: {exc}", file=sys.stderr)
        return 2
    _State.config = config
    child: subprocess.Popen | None = None
    if config.start_redis:
        if shutil.which(config.redis_server) is None:
            print(f"cache: {config.redis_server} not found (apt-get install redis-server)",
                  file=sys.stderr)
            return 3
        child = subprocess.Popen(_redis_command(config), stdin=subprocess.DEVNULL)
        _State.redis_pid = child.pid
    try:
        server = http.server.ThreadingHTTPServer((config.host, config.port), _Handler)
    except OSError as exc:
        _stop(child)
        print(f"cache: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 3
    server.daemon_threads = True
    stopping = threading.Event()
    lost: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        # serve_forever runs in this (the main) thread: shutdown() from here would wait for
        # it forever, so another thread asks
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    # as a container's PID 1 the default SIGTERM action does nothing: handle it
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if child is not None:
        threading.Thread(target=_watch, args=(child, server, stopping, lost),
                         daemon=True).start()
    print(f"cache: listening on {config.host}:{config.port}, redis on 127.0.0.1:"
          f"{config.redis_port} ({'pid ' + str(child.pid) if child else 'not started here'})",
          flush=True)
    started = time.monotonic()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        stopping.set()
        _stop(child)
        server.server_close()
    if lost:
        print(f"cache: down after {time.monotonic() - started:.1f} s: redis-server is gone",
              file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
