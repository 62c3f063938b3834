"""Incremental HTTP/1.1 message framing for one direction of a proxied connection.

The proxy forwards bytes as they come; a :class:`Framer` only cuts them at message
boundaries so the HTTP toxics (:mod:`chaos.proxy.httpflow`) can judge each request and shape
each response. It never changes a byte: the pieces it returns, joined, are exactly what it was
fed. It understands what a proxy must to find where a message ends — a header block, then a
``Content-Length`` body, a ``chunked`` body (chunk sizes, extensions, trailers), no body
(requests without either, responses to ``HEAD``, ``1xx``, ``204``, ``304``) or a body that
runs until the connection closes (a response with neither) — and hands over a parsed head
(start line and headers) with the piece that completes it.

Bytes that are not HTTP (a first line that is no request or status line, a header block too
large or malformed, a transfer coding it cannot frame) turn the framer *opaque*: from then on
everything passes as one unjudged piece, as does everything after a protocol switch (``101``,
a ``2xx`` answer to ``CONNECT``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Framer", "Head", "Piece", "MAX_HEAD"]

MAX_HEAD = 64 * 1024
"""A header block larger than this is taken for something that is not HTTP."""

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _CLOSE, _OPAQUE = range(7)


@dataclass
class Head:
    """A parsed request or status line with its headers (names as sent, in order)."""

    method: str = ""  # requests
    target: str = ""  # requests
    version: str = ""
    status: int = 0  # responses
    headers: list[tuple[str, str]] = field(default_factory=list)
    split: bool = False  # some of its bytes were forwarded before it was complete
    _index: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def get(self, name: str) -> str | None:
        """The header's value (repeated headers joined with ", "), None when absent."""
        index = self._index
        if index is None:  # built on the first look: every message is asked twice or more
            index = {}
            for key, value in self.headers:
                key = key.lower()
                index[key] = f"{index[key]}, {value}" if key in index else value
            self._index = index
        return index.get(name.lower())

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after this message (HTTP/1.1 rules)."""
        connection = (self.get("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass
class Piece:
    """A run of bytes; ``head`` set on the piece that completes a message's header block,
    ``ends`` on the piece that completes the message."""

    data: bytes
    head: Head | None = None
    ends: bool = False


def _plausible(buf: bytes, requests: bool) -> bool:
    """Whether the bytes so far can still be the start of a request (or status) line."""
    s = buf.lstrip(b"\r\n")
    if not requests:
        return s[:5] == b"HTTP/"[: len(s[:5])]
    token = _TOKEN.match(s)
    size = token.end() if token else 0
    if size == len(s):
        return size <= 32
    return size > 0 and s[size:size + 1] == b" "


def _parse_head(raw: bytes, requests: bool) -> Head | None:
    lines = raw.decode("latin-1").lstrip("\r\n").replace("\r\n", "\n").split("\n")
    start = lines[0].split(" ", 2)
    head = Head()
    if requests:
        if len(start) != 3 or not start[2].startswith("HTTP/1."):
            return None
        head.method, head.target, head.version = start
    else:
        if len(start) < 2 or not start[0].startswith("HTTP/1.") or not start[1].isdigit():
            return None
        head.version, head.status = start[0], int(start[1])
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        head.headers.append((name, value.strip()))
    return head


class Framer:
    """Cuts one direction's bytes into HTTP messages (requests, or responses).

    ``method_of`` tells a response framer the method of the request being answered (a
    response to ``HEAD`` has no body). Head bytes are held until the header block is
    complete, unless :meth:`take_partial` hands them over early.
    """

    def __init__(self, requests: bool, method_of: Callable[[], str] = lambda: "") -> None:
        self.requests = requests
        self._method_of = method_of
        self._state = _HEAD
        self._buf = bytearray()
        self._sent = 0  # bytes of _buf already handed over by take_partial
        self._left = 0  # body bytes (chunk data + CRLF) still to come

    @property
    def opaque(self) -> bool:
        return self._state == _OPAQUE

    @property
    def between_messages(self) -> bool:
        """No byte of a next message has been seen yet."""
        return self._state == _HEAD and not self._buf.strip(b"\r\n")

    def make_opaque(self) -> list[Piece]:
        """Stop framing; returns the bytes held so far (not yet handed over)."""
        held = bytes(self._buf[self._sent:])
        self._state, self._buf, self._sent = _OPAQUE, bytearray(), 0
        return [Piece(held)] if held else []

    def take_partial(self) -> bytes:
        """Hand over the head bytes held so far; the head they belong to is then ``split``."""
        if self._state != _HEAD or self._sent >= len(self._buf):
            return b""
        held = bytes(self._buf[self._sent:])
        self._sent = len(self._buf)
        return held

    def feed(self, data: bytes) -> list[Piece]:
        """The pieces these bytes complete (possibly none, while a head is incomplete)."""
        out: list[Piece] = []
        pos = 0
        while pos < len(data):
            state = self._state
            if state in (_OPAQUE, _CLOSE):
                out.append(Piece(data[pos:]))
                break
            if state == _HEAD and not self._buf and (rest := self._whole_head(data, pos, out)):
                pos = rest  # a whole head in these bytes: parsed in place, nothing buffered
                continue
            if state in (_LENGTH, _CHUNK_DATA):
                take = min(self._left, len(data) - pos)
                self._left -= take
                ends = state == _LENGTH and self._left == 0
                out.append(Piece(data[pos:pos + take], ends=ends))
                pos += take
                if self._left == 0:
                    self._state = _HEAD if state == _LENGTH else _CHUNK_SIZE
                continue
            self._buf += data[pos:]
            pos = len(data)
            rest = self._lines(out)
            if rest:  # what follows a completed head, chunk-size line or trailer block
                data, pos = rest, 0
        return out

    def _whole_head(self, data: bytes, pos: int, out: list[Piece]) -> int:
        """The common case of :meth:`_lines`: a message's head starts at ``pos`` and ends in
        ``data``. Handled without copying the bytes through the buffer; returns where the
        rest starts (``len(data)`` after a protocol switch: the rest went out as one opaque
        piece), 0 when the general path must handle it (head incomplete, or not HTTP)."""
        if data[pos:pos + 1] in (b"\r", b"\n", b""):
            return 0
        found = _HEAD_END.search(data, pos)
        if found is None:
            return 0
        head = _parse_head(data[pos:found.end()], self.requests)
        if head is None:
            return 0
        end = found.end()
        if self._head_done(head, data[pos:end], out):
            if end < len(data):
                out.append(Piece(data[end:]))
            return len(data)
        return end

    def _head_done(self, head: Head, raw: bytes, out: list[Piece]) -> bool:
        """Hand over a completed head (its bytes ``raw``), the state set for its body; True
        when a protocol switch turned the rest opaque."""
        out.append(Piece(raw, head=head, ends=self._frame(head)))
        return self._state == _OPAQUE

    def _lines(self, out: list[Piece]) -> bytes:
        """Consume the line-oriented part in _buf; returns the bytes left after it."""
        buf = self._buf
        if self._state == _HEAD:
            found = _HEAD_END.search(buf, len(buf) - len(buf.lstrip(b"\r\n")))
            if found is None:
                if not _plausible(bytes(buf[:64]), self.requests) or len(buf) > MAX_HEAD:
                    out.extend(self.make_opaque())
                return b""
            head = _parse_head(bytes(buf[:found.end()]), self.requests)
            if head is None:
                out.extend(self.make_opaque())
                return b""
            head.split = self._sent > 0
            raw, rest = bytes(buf[self._sent:found.end()]), bytes(buf[found.end():])
            self._buf, self._sent = bytearray(), 0
            if self._head_done(head, raw, out):  # a protocol switch: the rest passes unjudged
                if rest:
                    out.append(Piece(rest))
                return b""
            return rest
        if self._state == _CHUNK_SIZE:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > 4096:
                    out.extend(self.make_opaque())
                return b""
            try:
                size = int(bytes(buf[:end]).split(b";")[0].strip(), 16)
            except ValueError:
                out.extend(self.make_opaque())
                return b""
            raw, rest = bytes(buf[:end + 1]), bytes(buf[end + 1:])
            self._buf = bytearray()
            out.append(Piece(raw))
            if size == 0:
                self._state = _TRAILERS
            else:
                self._state, self._left = _CHUNK_DATA, size + 2  # data and its CRLF
            return rest
        # trailers: zero or more header lines, then an empty line
        if buf.startswith((b"\r\n", b"\n")):
            end = 2 if buf.startswith(b"\r\n") else 1
        else:
            found = _HEAD_END.search(buf)
            if found is None:
                if len(buf) > MAX_HEAD:
                    out.extend(self.make_opaque())
                return b""
            end = found.end()
        raw, rest = bytes(buf[:end]), bytes(buf[end:])
        self._buf, self._state = bytearray(), _HEAD
        out.append(Piece(raw, ends=True))
        return rest

    def _frame(self, head: Head) -> bool:
        """Set the state for this message's body; True when the message ends with its head."""
        encoding = (head.get("transfer-encoding") or "").lower()
        length = head.get("content-length")
        if not self.requests:
            method = self._method_of()
            if head.status == 101 or (method == "CONNECT" and 200 <= head.status < 300):
                self._state = _OPAQUE  # another protocol follows
                return True
            if method == "HEAD" or head.status < 200 or head.status in (204, 304):
                self._state = _HEAD
                return head.status >= 200  # an interim 1xx does not end the exchange
        if encoding:
            if encoding.replace(" ", "").split(",")[-1] != "chunked":
                if self.requests:
                    self._state = _OPAQUE  # cannot be framed: let it pass unjudged
                else:
                    self._state = _CLOSE
                return False
            self._state = _CHUNK_SIZE
            return False
        if length is not None:
            if not length.strip().isdigit():
                self._state = _OPAQUE
                return False
            self._left = int(length)
            self._state = _LENGTH if self._left else _HEAD
            return self._left == 0
        if self.requests:
            self._state = _HEAD
            return True
        self._state = _CLOSE  # the body runs until the connection closes
        return False
