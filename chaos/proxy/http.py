"""A small HTTP/1.1 server on asyncio streams, just enough for the Toxiproxy API.

Why not ``http.server`` in a thread: the proxies live on an asyncio event loop, and an API
served by the same loop changes proxies and toxics with no locks and no cross-thread calls; its
keep-alive connections are also closed by the same ``stop()`` as the proxies' sockets.
``requests`` (what ``toxiproxy-python`` uses) speaks HTTP/1.1 with keep-alive and
Content-Length bodies; that, chunked request bodies and ``Connection: close`` is what this
server understands. One request is answered at a time per connection (no pipelining needed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from chaos.proxy.loops import listen_backlog

__all__ = ["Request", "Response", "HttpServer"]

MAX_BODY = 16 * 1024 * 1024
MAX_HEADERS = 100


@dataclass
class Request:
    """One HTTP request: method, path (no query), lower-cased headers and the body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """One HTTP response; ``body`` is sent with a Content-Length."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    pass


class HttpServer:
    """Serves one handler over HTTP/1.1 with keep-alive; ``close()`` ends every connection."""

    def __init__(self, handler: Handler, idle_timeout: float = 60.0) -> None:
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the real (host, port). OSError when the address is taken."""
        # the system's full backlog, not asyncio's 100: a burst of connects is not dropped
        self._server = await asyncio.start_server(self._serve, host, port,
                                                  backlog=listen_backlog())
        return self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(_read_request(reader), self._idle_timeout)
                except _BadRequest as exc:
                    await _write(writer, Response(400, f"{exc}\n".encode(), "text/plain"),
                                 close=True)
                    break
                if request is None:
                    break
                close = _wants_close(request)
                try:
                    response = await self._handler(request)
                except Exception as exc:  # the server must outlive a handler bug
                    response = Response(500, f"internal error: {exc}\n".encode(), "text/plain")
                await _write(writer, response, close)
                if close:
                    break
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # shutdown cancels open connections; ending quietly spares Python 3.11's stream
            # callback, which would log the cancelled task as an unhandled exception
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


def _wants_close(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.headers.get(":version") == "HTTP/1.0":
        return "keep-alive" not in connection
    return "close" in connection


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    headers = {":version": version}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest("too many headers")
    body = await _read_body(reader, headers)
    return Request(method.upper(), target.split("?", 1)[0], headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise _BadRequest("body too large")
            body += await reader.readexactly(size)
            await reader.readline()
    length = headers.get("content-length", "0") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        raise _BadRequest("bad content-length")
    return await reader.readexactly(int(length)) if int(length) else b""


async def _write(writer: asyncio.StreamWriter, response: Response, close: bool) -> None:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    headers = dict(response.headers)
    if response.status != 204 and response.status >= 200:
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
    if close:
        headers["Connection"] = "close"
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    writer.write(head + (response.body if response.status != 204 else b""))
    await writer.drain()
