"""In-process TCP relays of a live run: the entry's front, and the membership relay that lets
an autoscaled service's replicas come and go behind callers whose address lists are fixed.

* :class:`RoundRobinFront` spreads the load generator's connections over the entry's proxies
  in turn (connection-level round robin).
* :class:`MemberRelay` stands between the proxies into an autoscaled service and its replica
  processes. A caller is started with one address per possible replica (``autoscale.max``
  slots, each through its own proxy ``caller->service#k``), and the proxy of slot ``k``
  forwards to the relay's slot ``k``. The relay deals the slots out evenly over the replicas
  in the balancer (started and past its cold start, not stopped — a killed one included):
  slot ``k`` goes to the ``k mod n``-th of the ``n`` members in replica order, so slot ``k``
  is replica ``k``'s own while replicas 0..n-1 serve, and every member holds the same share
  of the callers' slots (±1). A caller's balancer, picking among slots, therefore picks
  among replicas as the simulator's does: a crashed member keeps its share (and, being idle,
  is preferred by least_request, as in the simulator). A dead replica refuses through the
  relay as it would through a proxy alone: the relay resets the connection and stops
  listening on that slot until the replica accepts again, so the proxy in front refuses in
  turn. When the members change, a connection that now belongs elsewhere is re-pointed as
  soon as it carries no request: the relay closes its replica side, and the caller's next
  request on it goes to the new member on a new replica connection. The caller's connection
  stays open (closing it raced a request sent in that instant: the keep-alive race); a
  request in flight always finishes where it started.

Both run their own asyncio loop in a daemon thread; ``start`` returns their addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from topologies.errors import RunError

__all__ = ["RoundRobinFront", "MemberRelay", "slot_owners"]

#: Bytes of a response head the relay reads at most while looking for its end.
MAX_HEAD = 65536
#: Seconds between tries of a slot's refusing replica (as the built-in proxy's).
PROBE_INTERVAL = 0.05


class _LoopThread:
    """An asyncio loop in a daemon thread serving the listeners ``main`` opens."""

    name = "faultmesh-relay"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _run(self, listen: Callable[[], Coroutine[Any, Any, list[str]]]) -> list[str]:
        ready = threading.Event()
        addresses: list[str] = []

        async def main() -> None:
            self._closing = asyncio.Event()
            addresses.extend(await listen())
            ready.set()
            await self._closing.wait()
            servers = self._servers()
            for server in servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for server in servers:
                await server.wait_closed()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            finally:
                ready.set()
                self._loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(10.0)
        if not addresses:
            raise RunError(f"cannot start {self.name}")
        return addresses

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the relay's loop (from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def _servers(self) -> list[asyncio.Server]:
        """The listeners open now (closed at the end)."""
        return []

    def stop(self) -> None:
        if self._closing is not None:
            self.call(self._closing.set)
        if self._thread is not None:
            self._thread.join(10.0)

    def _track(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        return task


class RoundRobinFront(_LoopThread):
    """A TCP front for the entry's proxies: each new client connection goes to the next one
    in turn (connection-level round robin; the load's keep-alive connections stay put)."""

    name = "faultmesh-entry-rr"

    def __init__(self, upstreams: list[str]) -> None:
        super().__init__()
        self.upstreams = upstreams
        self._next = 0
        self._server: asyncio.Server | None = None

    def start(self) -> str:
        """Listen on a free 127.0.0.1 port; returns ``host:port``."""
        async def listen() -> list[str]:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            return [f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"]

        return self._run(listen)[0]

    def _servers(self) -> list[asyncio.Server]:
        return [self._server] if self._server is not None else []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._track()
        host, _, port = self.upstreams[self._next % len(self.upstreams)].rpartition(":")
        self._next += 1
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            await asyncio.wait([asyncio.ensure_future(_pipe(reader, up_writer)),
                                asyncio.ensure_future(_pipe(up_reader, writer))],
                               return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


async def _any_accepts(ports: list[int]) -> bool:
    """Whether one of the replicas on ``ports`` accepts a connection now."""
    for port in ports:
        try:
            _, probe = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                              timeout=1)
        except (TimeoutError, OSError):
            continue
        probe.transport.abort()
        return True
    return False


class _Framing:
    """Where a stream of HTTP/1.1 responses stands: ``feed`` the bytes as they pass; it says
    whether they ended a response with nothing of the next one begun (a connection at rest)."""

    def __init__(self) -> None:
        self._head = b""
        self._left: int | None = None   # body bytes still due; None: reading a head

    def feed(self, data: bytes) -> bool:
        while data:
            if self._left is None:
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._head) > MAX_HEAD:
                        raise ValueError("response head too long")
                    return False
                head, data = self._head[:end], self._head[end + 4:]
                self._head = b""
                self._left = _content_length(head)
            take = min(self._left, len(data))
            self._left -= take
            data = data[take:]
            if self._left == 0:
                self._left = None
        return self._left is None and not self._head


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort a connection with a reset (no orderly close)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One caller connection through the relay, the replica connection it is carried on
    now, and whether a request is on it."""

    def __init__(self, slot: int, writer: asyncio.StreamWriter) -> None:
        self.slot = slot
        self.writer = writer
        self.replica: int | None = None   # None: not carried by any replica at present
        self.port: int | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.down: asyncio.Task[None] | None = None
        self.busy = False       # a request went up and its answer has not fully come back
        self.move = False       # belongs to another replica now: re-pointed once at rest
        self.done = asyncio.Event()

    def close(self) -> None:
        for w in (self.writer, self.up_writer):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.close()
        self.done.set()


def slot_owners(members: Iterable[int], slots: int) -> list[int] | None:
    """The replica each of ``slots`` relay slots goes to when ``members`` (replica indices)
    are in the balancer: slot ``k`` to the ``k mod n``-th of the ``n`` members in index
    order; None when there is none. Callers are told this (``PUT /_faultmesh/members``) so
    that they balance and eject per replica, not per slot."""
    order = sorted(members)
    if not order:
        return None
    return [order[k % len(order)] for k in range(slots)]


class MemberRelay(_LoopThread):
    """The balancer slots of one autoscaled service (see the module docstring)."""

    name = "faultmesh-member-relay"

    def __init__(self, service: str, slots: int, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host  # where its slots listen (the proxies must reach it)
        if slots < 1:
            raise ValueError(f"slots: must be at least 1, not {slots!r}")
        self.service = service
        self.slots = slots
        self._members: dict[int, int] = {}     # slot -> port of the replica in the balancer
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}        # port -> open connections (read from any thread)
        self._listeners: dict[int, asyncio.Server] = {}
        self._ports: list[int] = []
        self._probes: dict[int, asyncio.Task[None]] = {}

    def start(self) -> list[str]:
        """Listen on one free port of ``host`` per slot; returns their ``host:port``."""
        async def listen() -> list[str]:
            for k in range(self.slots):
                server = await asyncio.start_server(
                    lambda r, w, k=k: self._serve(k, r, w), self.host, 0)
                self._listeners[k] = server
                self._ports.append(server.sockets[0].getsockname()[1])
            return [f"{self.host}:{port}" for port in self._ports]

        return self._run(listen)

    def _servers(self) -> list[asyncio.Server]:
        for probe in self._probes.values():
            probe.cancel()
        return list(self._listeners.values())

    def set_members(self, members: dict[int, int]) -> None:
        """The replicas in the balancer now: slot -> port (from any thread)."""
        members = dict(members)
        self.call(lambda: self._update(members))

    def open_to(self, port: int) -> int:
        """Connections open now to the replica listening on ``port``."""
        with self._lock:
            return self._open.get(port, 0)

    # --- on the loop -----------------------------------------------------------------------
    def _update(self, members: dict[int, int]) -> None:
        self._members = members
        for link in list(self._links):
            if link.port is not None and self._pick(link.slot) != (link.replica, link.port):
                link.move = True
                if not link.busy:
                    self._detach(link)

    def _pick(self, slot: int) -> tuple[int, int] | None:
        """The member (replica, port) slot ``slot`` goes to, or None when none serves."""
        owners = slot_owners(self._members, self.slots)
        if owners is None:
            return None
        k = owners[slot]
        return k, self._members[k]

    async def _serve(self, slot: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = self._track()
        link = _Link(slot, writer)
        try:
            if not await self._attach(link):  # nothing serves, or a dead replica: refused
                self._refuse(slot, writer)
                return
            self._links.add(link)
            try:
                up = asyncio.ensure_future(self._up(link, reader))
                await asyncio.wait([up, asyncio.ensure_future(link.done.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
                up.cancel()
            finally:
                self._links.discard(link)
                self._detach(link)
                link.close()
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _attach(self, link: _Link) -> bool:
        """Carry ``link`` on a new connection to its slot's member; False when none serves
        or the member refuses."""
        target = self._pick(link.slot)
        if target is None:
            return False
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target[1])
        except OSError:
            return False
        link.replica, link.port = target
        # the members may have changed while it connected: then it moves once at rest
        link.up_writer, link.move = up_writer, self._pick(link.slot) != target
        link.down = asyncio.ensure_future(self._down(link, up_reader, up_writer))
        self._count(target[1], +1)
        return True

    def _detach(self, link: _Link) -> None:
        """Close the replica connection ``link`` is carried on (at rest, or at the end); the
        caller's connection stays open."""
        if link.port is not None:
            self._count(link.port, -1)
        if link.up_writer is not None:
            with contextlib.suppress(Exception):
                link.up_writer.close()
        if link.down is not None and link.down is not asyncio.current_task():
            link.down.cancel()
        link.replica = link.port = link.up_writer = link.down = None

    def _refuse(self, slot: int, writer: asyncio.StreamWriter) -> None:
        """The slot's replica refuses: reset this connection (before any byte) and stop
        listening on the slot until a replica accepts again, so that the proxy in front,
        and through it the caller, see connections refused (as with a dead replica behind
        a proxy without the relay)."""
        _reset(writer)
        server = self._listeners.pop(slot, None)
        if server is not None:
            server.close()
            self._probes[slot] = asyncio.ensure_future(self._reopen(slot))

    async def _reopen(self, slot: int) -> None:
        """Listen on the slot's port again as soon as its replica accepts connections."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            target = self._pick(slot)
            if target is None or not await _any_accepts([target[1]]):
                continue
            try:
                server = await asyncio.start_server(
                    lambda r, w: self._serve(slot, r, w), self.host, self._ports[slot])
            except OSError:  # the port is busy for now
                continue
            self._listeners[slot] = server
            self._probes.pop(slot, None)
            return

    async def _up(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Caller to replica. A request that begins on a connection at rest whose member
        changed goes to the slot's member now, on a new replica connection: the caller's
        connection is never closed under it (closing it raced a request sent on it in that
        instant, which was reset: the keep-alive race)."""
        try:
            while data := await reader.read(65536):
                if not link.busy and link.up_writer is None and not await self._attach(link):
                    _reset(link.writer)  # the new member refuses: this request fails as on
                    return               # a dead replica
                assert link.up_writer is not None
                link.busy = True
                link.up_writer.write(data)
                await link.up_writer.drain()
        except OSError:
            pass

    async def _down(self, link: _Link, reader: asyncio.StreamReader,
                    up_writer: asyncio.StreamWriter) -> None:
        """Replica to caller, on one replica connection."""
        framing = _Framing()
        try:
            while data := await reader.read(65536):
                link.writer.write(data)
                await link.writer.drain()
                try:
                    at_rest = framing.feed(data)
                except ValueError:
                    at_rest = False
                if at_rest:
                    link.busy = False
                    if link.move:
                        self._detach(link)
                        return
        except OSError:
            pass
        if link.up_writer is not up_writer:
            return  # detached meanwhile
        if link.move and not link.busy:
            self._detach(link)  # a moved connection's old replica went: the next request
            return              # goes to the new one
        link.close()  # the replica closed or reset it (crashed, or cut an answer): so is the
        # caller's, as with the replica behind a proxy alone

    def _count(self, port: int, delta: int) -> None:
        with self._lock:
            self._open[port] = self._open.get(port, 0) + delta
