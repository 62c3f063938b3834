"""The HTTP toxics at work on one proxied connection: each request judged, each response shaped.

Every proxied connection frames its bytes as HTTP/1.1 (:mod:`chaos.proxy.httpframe`) on both
streams, so a toxic added while the connection is open finds the message boundaries; a
connection whose bytes are not HTTP turns opaque and passes untouched from then on. While no
HTTP toxic is on the proxy nothing is held back: the framing only watches.

With HTTP toxics present, a request's header block is held until complete, then judged
against them, in the order the API lists them:

* ``http_fail_first`` — the first ``count`` matching requests of the connection are answered
  ``status`` by the proxy (the toxic's toxicity drawn once per connection, as Toxiproxy's);
* ``http_error`` — a matching request is answered ``status`` with probability ``toxicity``
  (drawn per request, from the server's seeded generator);
* ``http_slow`` — a matching request's response (with probability ``toxicity``, per
  request) has its headers held ``latency`` ± ``jitter`` ms plus (``factor``/100 − 1) times
  the upstream's own time to answer, and its body sent at ``rate`` bytes/s.

The first toxic that answers wins; its request (body too) never reaches the upstream. Its
answer waits for the responses to earlier requests on the connection (pipelining keeps its
order) and is written straight to the client (TCP toxics on the downstream stream do not delay
it). ``path`` matches the request target by prefix; ``header`` (``Name: value``) matches a
request whose header Name contains value (``Name`` alone: has the header).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from chaos.proxy.httpframe import Framer, Head, Piece
from chaos.proxy.loops import now, sleep_until
from chaos.proxy.toxics import HTTP_TOXICS, Toxic

if TYPE_CHECKING:
    from chaos.proxy.link import Connection, Link

__all__ = ["HttpFlow", "matches", "answer_bytes"]

_NOT_SLOW = {"delay": 0.0, "factor": 0.0, "rate": 0}  # an exchange nothing holds or paces


@dataclass
class _Exchange:
    """A request forwarded upstream whose response has not been written out whole yet."""

    method: str
    delay: float = 0.0  # s, headers held (latency ± jitter of http_slow toxics)
    factor: float = 0.0  # headers also held (factor − 1) × the upstream's time to answer
    rate: int = 0  # body bytes/s, 0 = as fast as it comes
    sent: float | None = None  # when the request's last byte was forwarded
    shift: float = 0.0  # s added to this response's arrival stamps (after the headers wait)
    started: bool = False
    next_send: float = 0.0


def matches(toxic: Toxic, head: Head) -> bool:
    """Whether an HTTP toxic applies to a request (its ``path`` and ``header`` attributes)."""
    path = toxic.text("path")
    if path:
        target = head.target
        if "://" in target:  # absolute form: compare its path
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        if not target.startswith(path):
            return False
    header = toxic.text("header")
    if header:
        name, _, value = header.partition(":")
        got = head.get(name.strip())
        if got is None or value.strip() not in got:
            return False
    return True


def answer_bytes(toxic: Toxic, head: Head, close: bool) -> bytes:
    """The response the proxy gives in the upstream's place."""
    status = toxic.attr("status")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = (toxic.text("body") or f"{status} {reason} (faultmesh {toxic.type} "
                                  f"{toxic.name})\n").encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
             f"Content-Length: {len(body)}", f"X-Faultmesh-Toxic: {toxic.name}"]
    if close:
        lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head.method == "HEAD" else head_bytes + body


class HttpFlow:
    """The HTTP view of one :class:`~chaos.proxy.link.Connection`, shared by its two links."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pending: deque[_Exchange] = deque()
        self.requests = Framer(requests=True)
        self.responses = Framer(requests=False, method_of=self._method)
        self.opaque = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._swallow = False  # the rest of a request answered by the proxy is dropped
        self._late = {True: b"", False: b""}  # held when the other direction turned opaque

    def _method(self) -> str:
        return self.pending[0].method if self.pending else ""

    def with_late(self, data: bytes, requests: bool) -> bytes:
        """``data`` of an opaque connection, after the bytes of that direction its framer
        held when the other direction turned opaque (they leave first, once)."""
        late, self._late[requests] = self._late[requests], b""
        return late + data if late else data

    def slowed(self) -> bool:
        """A forwarded request's response is to be held or paced (an ``http_slow`` took it)."""
        return any(ex.delay or ex.factor or ex.rate for ex in self.pending)

    def toxics(self) -> list[Toxic]:
        """The HTTP toxics of the proxy now (both streams: their stream does not matter)."""
        return [t for s in ("upstream", "downstream") for t in self.conn.chain(s)
                if t.type in HTTP_TOXICS]

    def _go_opaque(self, side: Framer) -> list[Piece]:
        """Not HTTP (or no more): everything passes untouched from now on.

        Returns the bytes ``side``'s framer held; those the other direction's framer held
        leave with that direction's next bytes.
        """
        self.opaque = True
        other = self.responses if side is self.requests else self.requests
        self._late[other.requests] = b"".join(p.data for p in other.make_opaque())
        self.pending.clear()
        self._idle.set()
        return side.make_opaque()

    async def _opaque(self, link: Link, data: bytes, stamp: float, requests: bool) -> None:
        await link._through(self.with_late(data, requests), stamp, link._active())

    # --- client → server ------------------------------------------------------------------
    async def requests_in(self, link: Link, data: bytes, stamp: float) -> None:
        """Forward client bytes, judging each request against the HTTP toxics."""
        if self.opaque:
            await self._opaque(link, data, stamp, requests=True)
            return
        toxics = self.toxics()
        if not toxics:
            out = self.plain_requests(data)
            if out and not self.conn.closed:
                await link._through(out, stamp, link._active())
            return
        pieces = self._pieces(self.requests, data, hold=True)
        out = bytearray()  # plain pieces leave together: one write, not one per piece
        for piece in pieces:
            slow = _NOT_SLOW
            if piece.head is not None and not self.opaque:
                toxic, slow = self._judge(piece.head, toxics)
                if toxic is not None:
                    self._swallow = not piece.ends
                    if out:
                        await link._through(bytes(out), stamp, link._active())
                        out.clear()
                    await self._answer(toxic, piece.head, body_follows=not piece.ends)
                    if self.conn.closed:
                        return
                    continue
            if self._forwarded(piece, slow):
                out += piece.data
        if out and not self.conn.closed:
            await link._through(bytes(out), stamp, link._active())

    def plain_requests(self, data: bytes) -> bytes:
        """:meth:`requests_in` with no HTTP toxic on the proxy, which never waits: the
        framing and the books kept, the bytes to forward returned (the proxy's sink calls it
        from the socket's callback; the framing costs no task switch)."""
        out = bytearray()
        for piece in self._pieces(self.requests, data, hold=False):
            if self._forwarded(piece, _NOT_SLOW):
                out += piece.data
        return bytes(out)

    def _pieces(self, side: Framer, data: bytes, hold: bool) -> list[Piece]:
        """``side``'s framer fed ``data``; an incomplete head is held only with ``hold``
        (HTTP toxics present: it must be judged whole); turned opaque, what it held too."""
        pieces = side.feed(data)
        if not hold and (held := side.take_partial()):
            pieces.append(Piece(held))
        if side.opaque:
            pieces += self._go_opaque(side)
        return pieces

    def _forwarded(self, piece: Piece, slow: dict) -> bool:
        """Book a client piece going upstream (a request's head opens an exchange); False
        when it is dropped instead: the rest of a request the proxy answered."""
        if piece.head is not None and not self.opaque:
            self.pending.append(_Exchange(piece.head.method, **slow))
            self._idle.clear()
        elif self._swallow:
            self._swallow = not piece.ends
            return False
        if piece.ends and self.pending and not self.opaque:
            self.pending[-1].sent = now()
        return True

    def _judge(self, head: Head, toxics: list[Toxic]) -> tuple[Toxic | None, dict]:
        """The toxic answering this request (if any) and the slowness of its response."""
        slow = dict(_NOT_SLOW)
        if head.split:  # part of it is upstream already: it can only be forwarded
            return None, slow
        rng = self.conn.rng
        for toxic in toxics:
            if not matches(toxic, head):
                continue
            if toxic.type == "http_fail_first":
                link = self.conn.links.get(toxic.stream)
                state = link.states.get(toxic.uid) if link is not None else None
                if state is not None and state.active and state.sent < toxic.attr("count"):
                    state.sent += 1  # counted per connection (and anew when changed)
                    return toxic, slow
            elif rng.random() >= toxic.toxicity:
                continue
            elif toxic.type == "http_error":
                return toxic, slow
            elif toxic.type == "http_slow":
                jitter = toxic.attr("jitter")
                ms = toxic.attr("latency") + (rng.uniform(-jitter, jitter) if jitter else 0)
                slow["delay"] += max(ms, 0) / 1000
                if toxic.attr("factor") > 100:
                    slow["factor"] = max(slow["factor"], toxic.attr("factor") / 100)
                rate = toxic.attr("rate")
                if rate and (not slow["rate"] or rate < slow["rate"]):
                    slow["rate"] = rate
        return None, slow

    async def _answer(self, toxic: Toxic, head: Head, body_follows: bool) -> None:
        """Answer in the upstream's place, after the responses to earlier requests.

        A client waiting for ``100 Continue`` may never send the body the proxy would have
        to skip, so that connection is closed after the answer (as servers do).
        """
        await self._idle.wait()
        if self.conn.closed:
            return
        expects = "100-continue" in (head.get("expect") or "").lower()
        close = not head.keep_alive or (expects and body_follows)
        writer = self.conn.client_writer
        writer.write(answer_bytes(toxic, head, close=close))
        await writer.drain()
        if close:
            self.conn.close(graceful=True)

    # --- server → client ------------------------------------------------------------------
    async def responses_in(self, link: Link, data: bytes, stamp: float) -> None:
        """Forward server bytes, holding and pacing the responses of slowed requests."""
        toxics = self.toxics()
        if not self.opaque and not toxics and not self.slowed():
            out = self.plain_responses(data)
            if out and not self.conn.closed:
                await link._through(out, stamp, link._active())
            return
        self._unasked()
        if self.opaque:
            await self._opaque(link, data, stamp, requests=False)
            return
        pieces = self._pieces(self.responses, data, hold=bool(toxics))
        out = bytearray()  # plain pieces leave together: one write, not one per piece
        shifted = stamp
        for piece in pieces:
            ex = self.pending[0] if self.pending and not self.opaque else None
            if ex is not None and piece.head is not None and not ex.started:
                ex.started = True
                wait = ex.delay
                if ex.factor and ex.sent is not None:
                    wait += (ex.factor - 1) * max(stamp - ex.sent, 0.0)
                if wait > 0:
                    if out:
                        await link._through(bytes(out), shifted, link._active())
                        out.clear()
                    ex.shift = wait
                    await sleep_until(stamp + wait)
                ex.next_send = now()
            if out and stamp + (ex.shift if ex is not None else 0.0) != shifted:
                await link._through(bytes(out), shifted, link._active())
                out.clear()
            shifted = stamp + (ex.shift if ex is not None else 0.0)
            if ex is not None and ex.rate and piece.head is None:
                if out:
                    await link._through(bytes(out), shifted, link._active())
                    out.clear()
                await self._paced(link, ex, piece.data, shifted)
            else:
                out += piece.data
            if piece.ends and ex is not None and self.pending and self.pending[0] is ex:
                if out:  # written before the exchange ends: a proxy's answer waits for it
                    await link._through(bytes(out), shifted, link._active())
                    out.clear()
                if self.conn.closed:
                    return
                self._exchange_done()
            if self.conn.closed:
                return
        if out and not self.conn.closed:
            await link._through(bytes(out), shifted, link._active())

    def plain_responses(self, data: bytes) -> bytes:
        """:meth:`responses_in` while no HTTP toxic is on the proxy and no response is held
        or paced, which never waits: the bytes to forward (the sink's path, as
        :meth:`plain_requests`)."""
        self._unasked()
        if self.opaque:
            return self.with_late(data, requests=False)
        out = bytearray()
        for piece in self._pieces(self.responses, data, hold=False):
            ex = self.pending[0] if self.pending and not self.opaque else None
            if ex is not None and piece.head is not None and not ex.started:
                ex.started = True
                ex.next_send = now()
            out += piece.data
            if piece.ends and ex is not None and self.pending and self.pending[0] is ex:
                self._exchange_done()
        return bytes(out)

    def _unasked(self) -> None:
        """A server speaking with no request waiting is no HTTP exchange: opaque from now."""
        if not self.opaque and not self.pending and self.responses.between_messages:
            self._late[False] += b"".join(p.data for p in self._go_opaque(self.responses))

    def _exchange_done(self) -> None:
        self.pending.popleft()
        if not self.pending:
            self._idle.set()

    async def _paced(self, link: Link, ex: _Exchange, data: bytes, stamp: float) -> None:
        """Body bytes at ``ex.rate`` bytes/s, in pieces worth 50 ms each."""
        step = max(1, ex.rate // 20)
        for start in range(0, len(data), step):
            part = data[start:start + step]
            ex.next_send = max(now(), ex.next_send) + len(part) / ex.rate
            await sleep_until(ex.next_send)
            if self.conn.closed:
                return
            await link._through(part, stamp, link._active())

