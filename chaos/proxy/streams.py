"""asyncio streams for proxied connections, with a way round the stream buffer for plain bytes.

A proxied connection reads with an ordinary :class:`asyncio.StreamReader` (what the toxics'
code awaits), except that a :class:`PassReader` can be given a *sink*: a callable asked, for
every chunk the socket delivers, whether it takes the bytes itself (its
:class:`PassProtocol` asks, in the socket's callback). The link of a connection with nothing
to do to its bytes (no toxic; HTTP only watched by the framing) takes them and writes them
straight to the other socket, from the socket's own callback: no copy into the stream buffer and out
again, no task woken per chunk. When the sink declines (a toxic arrived, the other socket's
send buffer is not empty, bytes are already buffered), the chunk is buffered as usual and the
link's tasks pass it on, with back-pressure through ``drain``.

:func:`serve` and :func:`connect` are ``asyncio.start_server`` and ``asyncio.open_connection``
made with a :class:`PassReader` and its :class:`PassProtocol`, listening with the system's
full backlog.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from chaos.proxy.loops import listen_backlog

__all__ = ["PassReader", "PassProtocol", "serve", "connect", "STREAM_LIMIT"]

STREAM_LIMIT = 256 * 1024
"""Stream buffer limit: a socket's reading pauses past twice this, so a read finds up to
256 KiB waiting in bulk transfers rather than 64 KiB (asyncio's default limit)."""

Accept = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class PassReader(asyncio.StreamReader):
    """A StreamReader whose chunks a sink may take before they are buffered (its
    :class:`PassProtocol` offers them)."""

    sink: Callable[[bytes], bool] | None = None


class PassProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol for a :class:`PassReader`, offering each chunk to the
    reader's sink straight from the socket's callback: the stock one looks its reader up
    through a property and a weak reference per chunk, then calls ``feed_data``, a few
    microseconds on every chunk the proxy passes."""

    def __init__(self, reader: PassReader, *args: object, **kwargs: object) -> None:
        super().__init__(reader, *args, **kwargs)  # type: ignore[arg-type]
        self._reader = reader

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        sink = reader.sink
        # only with nothing buffered: bytes already waiting must leave first
        if sink is not None and not reader._buffer and sink(data):  # type: ignore[attr-defined]
            return
        reader.feed_data(data)


async def serve(accept: Accept, sock: socket.socket) -> asyncio.Server:
    """``asyncio.start_server(accept, sock=sock)`` with PassReaders and the full backlog
    (asyncio calls listen() again with its own backlog of 100 unless told otherwise)."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        return PassProtocol(PassReader(limit=STREAM_LIMIT, loop=loop), accept, loop=loop)

    return await loop.create_server(factory, sock=sock, backlog=listen_backlog())


async def connect(host: str, port: int) -> tuple[PassReader, asyncio.StreamWriter]:
    """``asyncio.open_connection(host, port)`` with a PassReader."""
    loop = asyncio.get_running_loop()
    reader = PassReader(limit=STREAM_LIMIT, loop=loop)
    protocol = PassProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
