"""The caller's side of an edge: a small HTTP/1.1 client with a keep-alive pool per address.

A call attempt in live mode is one real HTTP request to one callee replica (normally through
the edge's fault proxy). What the network did to it is what the attempt's outcome says:
an answer (any status), ``refused`` (the connection was refused: the proxy is disabled or
the replica is down) or ``reset`` (the connection was reset or closed before an answer came).
Abandoning an attempt (the caller's timeout cancels it) closes its connection; the callee,
which does not read while it works, keeps working on the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["Answer", "Refused", "Reset", "HttpClient"]

MAX_HEADERS = 100


class Refused(Exception):
    """The connection to the callee was refused: no answer (status 0, ``refused``)."""


class Reset(Exception):
    """The connection was reset or closed before an answer: no answer (status 0, ``reset``)."""


@dataclass
class Answer:
    """A callee's answer: status, lower-cased headers and the body."""

    status: int
    headers: dict[str, str]
    body: bytes


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpClient:
    """Sends requests to ``host:port`` addresses, keeping idle connections per address."""

    def __init__(self, max_idle: int = 64) -> None:
        if max_idle < 0:
            raise ValueError(f"max_idle: must be >= 0, not {max_idle!r}")
        self.max_idle = max_idle
        self._idle: dict[str, list[_Conn]] = {}
        self._open: set[asyncio.StreamWriter] = set()

    async def request(self, address: str, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> Answer:
        """One request/answer exchange; raises :class:`Refused` or :class:`Reset`."""
        head = _head(address, method, path, headers, body)
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if conn[0].at_eof() or conn[1].is_closing():
                self._discard(conn)
                continue
            try:  # a pooled connection the server closed meanwhile: try a fresh one
                return await self._exchange(address, conn, head + body)
            except _Stale:
                continue
        conn = await self._connect(address)
        try:
            return await self._exchange(address, conn, head + body)
        except _Stale:
            raise Reset("connection closed before an answer") from None

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        self._idle.clear()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _connect(self, address: str) -> _Conn:
        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except ConnectionRefusedError:
            raise Refused(address) from None
        except OSError as exc:
            raise Reset(str(exc)) from None
        self._open.add(writer)
        return reader, writer

    async def _exchange(self, address: str, conn: _Conn, data: bytes) -> Answer:
        reader, writer = conn
        got_bytes = False
        reusable = False
        try:
            writer.write(data)
            await writer.drain()
            line = await reader.readline()
            if not line:
                raise _Stale()
            got_bytes = True
            answer, reusable = await _read_answer(reader, line)
            return answer
        except _Stale:
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if not got_bytes and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _Stale() from None
            raise Reset(str(exc) or type(exc).__name__) from None
        finally:
            if reusable and len(self._idle.setdefault(address, [])) < self.max_idle:
                self._idle[address].append(conn)
            else:  # failed, abandoned (cancelled) or not keep-alive: close it
                self._discard(conn)

    def _discard(self, conn: _Conn) -> None:
        writer = conn[1]
        self._open.discard(writer)
        with contextlib.suppress(Exception):
            writer.transport.abort()


class _Stale(Exception):
    """A pooled connection was closed by the server before this request was answered."""


def _head(address: str, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_answer(reader: asyncio.StreamReader, line: bytes) -> tuple[Answer, bool]:
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("malformed status line")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or "0")
    body = await reader.readexactly(length) if length else b""
    keep = "close" not in headers.get("connection", "").lower()
    return Answer(status, headers, body), keep
