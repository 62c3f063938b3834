"""A proxied TCP connection and what its toxics do to the bytes in flight.

A :class:`Connection` is one client accepted by a proxy plus the connection the proxy opened to
the upstream. It has two :class:`Link` objects, one per stream: ``upstream`` carries client →
server bytes, ``downstream`` server → client. A link reads chunks from one socket into a small
bounded queue (so back-pressure reaches the sender), and a second task (started with the first
chunk queued) takes each chunk, passes it through the stream's toxics in order and writes what
comes out to the other socket.

Each chunk carries the time it was read, so a latency toxic delays every chunk by its latency
counted from arrival: chunks are pipelined, not serialised. The toxic list is read afresh for
every chunk, so a toxic added or removed applies to connections already open. A toxic's
toxicity is drawn once per connection (per link), from the server's seeded generator.

Toxics that end connections act on open ones too, timed from when the toxic starts on the
link (when it is added, for a connection already open; when the connection opens, for a new
one): ``timeout`` drops data at once and closes the connection after its timeout (0: held
until the toxic is removed, then closed); ``reset_peer`` drops data and resets the connection
(RST) after its timeout, whether data flows or not.

When the upstream refuses the proxy's connection, the client's connection is reset (RST,
before any byte) and the proxy is told (``on_refused``), so it can refuse in turn.

Every chunk first goes through the connection's :class:`~chaos.proxy.httpflow.HttpFlow`,
which frames HTTP/1.1 messages and applies the HTTP toxics (or passes non-HTTP bytes
untouched); the TCP toxics then act on what it forwards.

Two shortcuts for bytes nothing acts on (no TCP toxic active on the link, no HTTP toxic on the
proxy, no slowed response pending), which is most traffic: the read task passes a chunk on
itself instead of handing it to the pipe task (one task switch less per chunk); and once a
connection is known not to be HTTP, the socket's callback writes each chunk straight to the
other socket (:class:`~chaos.proxy.streams.PassReader`: no stream buffer, no task at all).
Both apply only with nothing queued or in flight before the chunk, so bytes keep their order
when a toxic comes or goes; a toxic added is in force for the next chunk read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random

from chaos.proxy.httpflow import HttpFlow
from chaos.proxy.loops import now, sleep_for, sleep_until
from chaos.proxy.streams import PassReader, connect
from chaos.proxy.toxics import HTTP_TOXICS, Toxic

__all__ = ["Connection", "Link", "CHUNK"]

CHUNK = 256 * 1024
"""Most bytes taken per read: as much as the loop reads from a socket at once (asyncio's and
uvloop's 256 KiB), so bulk data crosses in few, large writes."""
QUEUE_CHUNKS = 8


@dataclass
class _ToxicState:
    """What one toxic remembers about one link: whether it applies, and its counters."""

    active: bool
    sent: int = 0  # limit_data: bytes passed so far
    next_send: float = 0.0  # bandwidth: when the next byte may leave
    timer: asyncio.Task[None] | None = field(default=None, repr=False)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Link:
    """One direction of a proxied connection, piped through the toxics of its stream."""

    def __init__(self, conn: Connection, stream: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.conn = conn
        self.stream = stream
        self.reader = reader
        self.writer = writer
        self.states: dict[int, _ToxicState] = {}
        self.done = False
        self._queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._busy = False  # pipe() is passing a chunk on
        self._reading = False  # read() is passing a chunk on itself
        self._piping: asyncio.Task[None] | None = None  # pipe(), once a chunk is queued
        # no TCP toxic active here and no HTTP toxic on the proxy (kept by sync(): every
        # change to the proxy's toxics goes through it)
        self._quiet = False
        if isinstance(reader, PassReader):
            reader.sink = self._pass

    # --- toxics kept in step with the proxy -------------------------------------------------
    def sync(self, toxics: Sequence[Toxic], rng: Random, renewed: Toxic | None = None) -> None:
        """Start the toxics new to this link and forget the removed ones (timeout: close)."""
        present = {t.uid for t in toxics}
        for uid in [u for u in self.states if u not in present]:
            state = self.states.pop(uid)
            state.cancel()
            if state.active and uid in self.conn.timeouts:
                self.conn.timeouts.discard(uid)
                self.conn.close()  # a timeout toxic that goes closes what it held
        for toxic in toxics:
            if renewed is not None and toxic.uid == renewed.uid and toxic.uid in self.states:
                self.states.pop(toxic.uid).cancel()
            if toxic.uid not in self.states:
                state = _ToxicState(active=rng.random() < toxic.toxicity)
                self.states[toxic.uid] = state
                if state.active and toxic.type == "timeout":
                    self.conn.timeouts.add(toxic.uid)
                    if toxic.attr("timeout") > 0:
                        state.timer = asyncio.ensure_future(
                            self._close_after(toxic.attr("timeout") / 1000))
                elif state.active and toxic.type == "reset_peer":
                    state.timer = asyncio.ensure_future(
                        self._close_after(toxic.attr("timeout") / 1000, reset=True))
        self._quiet = (not any(s.active for s in self.states.values())
                       and not self.conn.http.toxics())

    def _active(self) -> list[Toxic]:
        return [t for t in self.conn.chain(self.stream)
                if t.type not in HTTP_TOXICS
                and (s := self.states.get(t.uid)) is not None and s.active]

    async def _close_after(self, delay: float, reset: bool = False) -> None:
        await sleep_for(delay)
        self.conn.close(reset=reset)

    # --- the two tasks ----------------------------------------------------------------------
    async def read(self) -> None:
        """Read chunks until EOF (None in the queue) or an error (the connection closes).

        A chunk that nothing can hold back (no TCP toxic active on this link, no HTTP toxic
        on the proxy or slowed response pending, nothing queued before it) is passed on by
        this task itself: the hand-over to :meth:`pipe` through the queue costs a task switch
        per chunk, which is most of what the proxy adds to a small round trip.
        """
        queue = self._queue
        http = self.conn.http
        upstream = self.stream == "upstream"
        try:
            while data := await self.reader.read(CHUNK):
                if self._busy or not queue.empty() or not self._plain():
                    # held in hand until queued (a full queue suspends the put): the sink must
                    # not pass a later chunk on before this one
                    self._reading = True
                    await self._hand_over((now(), data))
                    self._reading = False
                    continue
                self._reading = True
                if http.opaque:
                    # not HTTP: the framing is out of the way, the bytes go straight on
                    if not self.conn.closed:
                        self.writer.write(http.with_late(data, upstream))
                        await self.writer.drain()
                elif upstream:
                    await http.requests_in(self, data, now())
                else:
                    await http.responses_in(self, data, now())
                self._reading = False
                if self.conn.closed:
                    return
        except OSError:
            self.conn.close()
            return
        await self._hand_over(None)

    async def _hand_over(self, item: tuple[float, bytes] | None) -> None:
        """Queue a chunk (None: EOF) for :meth:`pipe`, started with the first one: most
        connections never need it (every chunk passed on by the sink or :meth:`read`), and a
        task less per link is a tenth of what accepting a connection costs."""
        if self._piping is None:
            self._piping = asyncio.ensure_future(self.pipe())
            self.conn._tasks.append(self._piping)
        await self._queue.put(item)

    def _pass(self, data: bytes) -> bool:
        """Called by the reader for each chunk from the socket: write it on at once when
        nothing could act on it and nothing is on its way before it (True: taken). HTTP
        bytes are framed here too (the framing only watches while no HTTP toxic is on the
        proxy), so a keep-alive exchange costs no task switch either."""
        conn = self.conn
        http = conn.http
        transport = self.writer.transport
        if (not self._plain() or conn.closed or self._reading or self._busy or self.done
                or not self._queue.empty() or transport.get_write_buffer_size()
                or transport.is_closing()):
            return False  # buffered: read() and pipe() pass it on, with back-pressure
        if http.opaque:
            out = http.with_late(data, self.stream == "upstream")
        elif self.stream == "upstream":
            out = http.plain_requests(data)
        else:
            out = http.plain_responses(data)
        if out:
            transport.write(out)
        return True

    def _plain(self) -> bool:
        """Nothing on this link can delay, drop or reshape bytes now."""
        return self._quiet and (self.stream == "upstream" or not self.conn.http.slowed())

    async def pipe(self) -> None:
        """Pass each chunk through the toxics and write it; at EOF, half-close the other side."""
        try:
            while (item := await self._queue.get()) is not None:
                stamp, data = item
                self._busy = True
                if self.stream == "upstream":
                    await self.conn.http.requests_in(self, data, stamp)
                else:
                    await self.conn.http.responses_in(self, data, stamp)
                self._busy = False
                if self.conn.closed:  # a toxic ended the connection
                    return
            delays = [t.attr("delay") for t in self._active() if t.type == "slow_close"]
            if delays:
                await sleep_for(max(delays) / 1000)
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except OSError:
            self.conn.close()
            return
        self.done = True
        self.conn.link_done()

    async def _through(self, data: bytes, stamp: float, chain: list[Toxic]) -> None:
        rng = self.conn.rng
        for i, toxic in enumerate(chain):
            kind = toxic.type
            state = self.states.get(toxic.uid)
            if state is None:
                continue
            if kind == "latency":
                jitter = toxic.attr("jitter")
                delay = toxic.attr("latency") + (rng.uniform(-jitter, jitter) if jitter else 0)
                await sleep_until(stamp + max(delay, 0) / 1000)
            elif kind in ("timeout", "reset_peer"):
                return  # data dropped on the floor until the timer ends the connection
            elif kind == "bandwidth" and toxic.attr("rate") > 0:
                rate = toxic.attr("rate") * 1024.0
                step = max(1, int(rate / 20))  # pieces worth 50 ms each
                for start in range(0, len(data), step):
                    if self.conn.closed:
                        return
                    piece = data[start:start + step]
                    state.next_send = max(now(), state.next_send) + len(piece) / rate
                    await sleep_until(state.next_send)
                    await self._through(piece, stamp, chain[i + 1:])
                return
            elif kind == "slicer" and toxic.attr("average_size") > 0:
                pieces = _slices(data, toxic.attr("average_size"), toxic.attr("size_variation"),
                                 rng)
                for n, piece in enumerate(pieces):
                    if self.conn.closed:
                        return
                    if n:
                        await sleep_for(toxic.attr("delay") / 1e6)
                    await self._through(piece, stamp, chain[i + 1:])
                return
            elif kind == "limit_data":
                left = toxic.attr("bytes") - state.sent
                if len(data) < left:
                    state.sent += len(data)
                    continue
                state.sent += max(left, 0)
                if left > 0:
                    await self._through(data[:left], stamp, chain[i + 1:])
                self.conn.close(graceful=True)
                return
        if not self.conn.closed:
            self.writer.write(data)
            await self.writer.drain()


def _slices(data: bytes, average: int, variation: int, rng: Random) -> list[bytes]:
    """Cut data into pieces of average ± variation bytes (at least one byte each)."""
    pieces = []
    start = 0
    while start < len(data):
        size = max(1, average + (rng.randint(-variation, variation) if variation else 0))
        pieces.append(data[start:start + size])
        start += size
    return pieces


def _abort(writer: asyncio.StreamWriter | None, reset: bool) -> None:
    if writer is None:
        return
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


class Connection:
    """A client accepted by a proxy and the proxy's own connection to the upstream."""

    def __init__(self, client_reader: asyncio.StreamReader,
                 client_writer: asyncio.StreamWriter, upstream: tuple[str, int],
                 chain: Callable[[str], list[Toxic]], rng: Random,
                 on_close: Callable[[Connection], None],
                 on_refused: Callable[[], None] = lambda: None) -> None:
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream = upstream
        self.chain = chain
        self.rng = rng
        self.links: dict[str, Link] = {}
        self.timeouts: set[int] = set()  # uids of active timeout toxics (closing on removal)
        self.http = HttpFlow(self)
        self.closed = False
        self._on_close = on_close
        self._on_refused = on_refused
        self._upstream_writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._finished = asyncio.Event()

    async def run(self) -> None:
        """Connect to the upstream, pipe both streams until the connection ends."""
        try:
            try:
                async with asyncio.timeout(10):  # no task of its own, as wait_for makes
                    up_reader, up_writer = await connect(*self.upstream)
            except (TimeoutError, OSError) as exc:
                if isinstance(exc, ConnectionRefusedError) and not self.closed:
                    self._on_refused()  # first: the caller's second look must be refused
                self.close(reset=True)  # RST before any byte: nothing reached a server
                return
            self._upstream_writer = up_writer
            if self.closed:  # disabled while connecting
                up_writer.close()
                return
            self.links = {
                "upstream": Link(self, "upstream", self.client_reader, up_writer),
                "downstream": Link(self, "downstream", up_reader, self.client_writer),
            }
            self.sync()
            for link in self.links.values():
                self._tasks.append(asyncio.ensure_future(link.read()))
            await self._finished.wait()
        finally:
            self.close()

    def sync(self, renewed: Toxic | None = None) -> None:
        """Bring both links in step with the proxy's toxics (after an add, update or remove)."""
        for stream, link in list(self.links.items()):
            if not self.closed:
                link.sync(self.chain(stream), self.rng, renewed)

    def link_done(self) -> None:
        if all(link.done for link in self.links.values()):
            self.close(graceful=True)

    def close(self, graceful: bool = False, reset: bool = False) -> None:
        """End the connection: every task cancelled, both sockets closed.

        ``graceful`` lets written data drain (FIN); otherwise sockets are aborted. ``reset``
        sends a TCP RST (SO_LINGER 0) on both sockets, as Toxiproxy's reset_peer does.
        """
        if self.closed:
            return
        self.closed = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for link in self.links.values():
            for state in link.states.values():
                if state.timer is not current:
                    state.cancel()
        _abort(self.client_writer, reset)
        _abort(self._upstream_writer, reset)
        if not graceful and not reset:
            for writer in (self.client_writer, self._upstream_writer):
                if writer is not None:
                    writer.transport.abort()
        self._finished.set()
        self._on_close(self)
