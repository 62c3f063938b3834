"""A proxy: a listening address, the upstream it forwards to, and the toxics on its two streams.

Enabled, it accepts connections on ``listen`` and pipes each to ``upstream``; disabled, its
listener is closed and every open connection with it (that is how faultmesh's ``down`` fault
looks in live mode: connections refused). Enabling again listens on the same address — the real
port, when the proxy was created with port 0.

A proxy whose upstream refuses a connection refuses in turn: that client connection is reset
(RST, before any byte) and the listener closed at once; the proxy then tries the upstream every
:data:`PROBE_INTERVAL` seconds and listens again (same address) as soon as it accepts. So a
caller sees a dead replica behind a proxy as it would see it directly: connections refused. The
proxy stays ``enabled`` in the API meanwhile. (Toxiproxy keeps listening and closes each
connection it cannot pass on.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from random import Random
from typing import Any

from chaos.proxy.errors import TOXIC_EXISTS, TOXIC_NOT_FOUND, ApiError
from chaos.proxy.link import Connection
from chaos.proxy.loops import listen_backlog
from chaos.proxy.streams import serve
from chaos.proxy.toxics import STREAMS, Toxic

__all__ = ["Proxy", "split_address", "format_address", "PROBE_INTERVAL"]

PROBE_INTERVAL = 0.05
"""Seconds between tries of a refusing upstream."""


def split_address(address: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a (host, port) pair; ApiError 500 when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ApiError(f"invalid {what} address {address!r}: expected host:port", 500)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(address: str) -> socket.socket:
    host, port = split_address(address, "listen")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host or "0.0.0.0", port), family=family,
                                    backlog=listen_backlog())
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ApiError(f"listen tcp {address}: bind: {reason}", 500) from None


class Proxy:
    """One Toxiproxy proxy: its listener, its open connections and its toxic chains."""

    def __init__(self, name: str, listen: str, upstream: str, rng: Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self._rng = rng
        self._upstream: tuple[str, int] = ("", 0)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._probe: asyncio.Task[None] | None = None  # while the upstream refuses

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_dict() for t in self.ordered_toxics()]}

    # --- listening --------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (again); ``listen`` then shows the real address. No-op when enabled."""
        if self._server is not None or self._probe is not None:
            return
        upstream = split_address(self.upstream, "upstream")
        sock = _bind(self.listen)
        host, port = sock.getsockname()[:2]
        self.listen = format_address(host, port)
        self._upstream = upstream
        self._server = await serve(self._accept, sock)
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        self.enabled = False
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for conn in list(self.connections):
            conn.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # asyncio skips it for sockets made with proto 0 (create_server)
            with contextlib.suppress(OSError):  # without it, a second small write waits 40 ms
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(reader, writer, self._upstream, self.chain, self._rng,
                          self.connections.discard, self._upstream_refused)
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # the loop is shutting down (a stop signal): asyncio's stream callback would
            # print the cancellation as an unhandled error; the connection just closes
            writer.transport.abort()
        finally:
            self._handlers.discard(task)

    def _upstream_refused(self) -> None:
        """The upstream refused a connection: stop listening until it accepts again."""
        if self._server is None or not self.enabled:
            return
        server, self._server = self._server, None
        server.close()  # the listening socket closes now; queued connections are reset
        self._probe = asyncio.ensure_future(self._reopen())

    async def _reopen(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self._upstream), timeout=1)
            except (TimeoutError, OSError):
                continue
            writer.transport.abort()
            try:
                sock = _bind(self.listen)
            except ApiError:  # the port is taken for now: try again
                continue
            if self._probe is not asyncio.current_task():  # stopped meanwhile
                sock.close()
                return
            self._server = await serve(self._accept, sock)
            self._probe = None
            return

    # --- toxics -----------------------------------------------------------------------------
    def chain(self, stream: str) -> list[Toxic]:
        """The toxics of one stream, in the order they were added."""
        return [t for t in self.toxics if t.stream == stream]

    def ordered_toxics(self) -> list[Toxic]:
        """Every toxic as Toxiproxy lists them: upstream ones first, then downstream."""
        return [t for stream in STREAMS for t in self.chain(stream)]

    def get_toxic(self, name: str) -> Toxic:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise TOXIC_NOT_FOUND

    def add_toxic(self, toxic: Toxic) -> None:
        if any(t.name == toxic.name for t in self.toxics):
            raise TOXIC_EXISTS
        self.toxics.append(toxic)
        self._sync()

    def toxic_updated(self, toxic: Toxic) -> None:
        """A toxic's attributes or toxicity changed: open connections start it afresh."""
        self._sync(renewed=toxic)

    def remove_toxic(self, name: str) -> None:
        toxic = self.get_toxic(name)
        self.toxics.remove(toxic)
        self._sync()

    def reset_toxics(self) -> None:
        self.toxics.clear()
        self._sync()

    def _sync(self, renewed: Toxic | None = None) -> None:
        for conn in list(self.connections):
            conn.sync(renewed)
