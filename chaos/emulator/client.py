"""The caller's side of an edge: a small HTTP/1.1 client with a keep-alive pool per address.

A call attempt in live mode is one real HTTP request to one callee replica (normally through
the edge's fault proxy). What the network did to it is what the attempt's outcome says: an
answer (any status), ``refused`` or ``reset``.

* ``refused``: the connection was refused, or a **fresh** connection was reset (RST) before
  any byte of the answer came *and* connecting to the address again is refused at once. That
  second look is how a replica behind a proxy that has died is told apart: the built-in proxy
  (docs/proxy.md) resets the connection whose upstream refused it and stops listening until
  the upstream accepts again, so the look is refused — while a ``reset_peer`` toxic, a proxy
  that is up, or a callee that answers leave the address connectable.
* ``reset``: any other end before a complete answer — the connection closed (EOF) or reset
  while the request was in flight (the callee died while working on it, the proxy was
  disabled, a ``timeout`` toxic closed it, ``reset_peer``), on a fresh or a pooled
  connection.

Pooled connections are checked before reuse: one the server closed or reset while it sat idle
(readable, at EOF, or idle for more than :data:`MAX_IDLE` seconds, below the emulator's
server-side idle timeout) is dropped and another one (or a fresh one) used instead, so a
stale connection is never counted as a failed attempt. Once a request has been sent on a
connection, a failure is the attempt's outcome: nothing is sent twice.

Abandoning an attempt (the caller's timeout cancels it) closes its connection; the callee,
which does not read while it works, keeps working on the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
from dataclasses import dataclass

__all__ = ["Answer", "Refused", "Reset", "HttpClient", "MAX_IDLE"]

MAX_HEADERS = 100

MAX_IDLE = 30.0
"""A pooled connection idle longer than this is closed rather than reused."""

PROBE_TIMEOUT = 1.0
"""How long the second look at a reset address may take (a hanging connect: not refused)."""


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
        self._idle: dict[str, list[tuple[_Conn, float]]] = {}
        self._open: set[asyncio.StreamWriter] = set()

    async def request(self, address: str, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> Answer:
        """One request/answer exchange; raises :class:`Refused` or :class:`Reset`."""
        data = _head(address, method, path, headers, body) + body
        conn = self._pooled(address)
        if conn is not None:
            return await self._exchange(address, conn, data, fresh=False)
        conn = await self._connect(address)
        return await self._exchange(address, conn, data, fresh=True)

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        self._idle.clear()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def _pooled(self, address: str) -> _Conn | None:
        """An idle connection to ``address`` still fit for a request, or None."""
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn, since = idle.pop()
            if now - since <= MAX_IDLE and _usable(conn):
                return conn
            self._discard(conn)
        return None

    async def _connect(self, address: str) -> _Conn:
        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except ConnectionRefusedError:
            raise Refused(address) from None
        except ConnectionResetError:  # reset before connect() returned: as after it
            if await self._refuses(address):
                raise Refused(f"{address}: reset, and refusing") from None
            raise Reset(f"{address}: reset") from None
        except OSError as exc:
            raise Reset(str(exc)) from None
        self._open.add(writer)
        return reader, writer

    async def _refuses(self, address: str) -> bool:
        """Whether connecting to ``address`` is refused now (the second look)."""
        host, _, port = address.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)),
                                               PROBE_TIMEOUT)
        except ConnectionRefusedError:
            return True
        except (OSError, TimeoutError):
            return False
        writer.transport.abort()
        return False

    async def _exchange(self, address: str, conn: _Conn, data: bytes, fresh: bool) -> Answer:
        reader, writer = conn
        answered = False   # a byte of the answer came
        reusable = False
        try:
            try:
                writer.write(data)
                await writer.drain()
                line = await reader.readline()
                if not line:
                    raise Reset("connection closed before an answer")
                answered = True
                answer, reusable = await _read_answer(reader, line)
                return answer
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if fresh and not answered and \
                        isinstance(exc, ConnectionResetError | BrokenPipeError):
                    self._discard(conn)
                    if await self._refuses(address):
                        raise Refused(f"{address}: reset, and refusing") from None
                raise Reset(str(exc) or type(exc).__name__) from None
        finally:
            if reusable and len(self._idle.setdefault(address, [])) < self.max_idle:
                self._idle[address].append((conn, time.monotonic()))
            else:  # failed, abandoned (cancelled) or not keep-alive: close it
                self._discard(conn)

    def _discard(self, conn: _Conn) -> None:
        writer = conn[1]
        self._open.discard(writer)
        with contextlib.suppress(Exception):
            writer.transport.abort()


def _usable(conn: _Conn) -> bool:
    """An idle connection is usable when nothing arrived on it: no EOF, no reset, no data."""
    reader, writer = conn
    if reader.at_eof() or writer.is_closing() or reader.exception() is not None:
        return False
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


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
