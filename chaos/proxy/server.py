"""The Toxiproxy-compatible server: its proxies and the HTTP API that drives them, on one loop.

:class:`ProxyServer` is what tests, the ``faultmesh proxy`` command and the live engine embed.
Everything — API connections, proxy listeners, proxied connections, toxic timers — runs on one
asyncio event loop, so no state is shared across threads. Three ways to run it:

* ``async with ProxyServer(...) as server:`` inside a running loop;
* ``server.start()`` / ``server.stop()`` (or ``with ProxyServer(...).run_in_thread():``) from
  ordinary code: the loop runs in a daemon thread, ``start`` returns once the API listens;
* ``await server.serve_forever()`` for the command line (stopped by cancellation, Ctrl-C).

``stop`` closes every listener, every connection and the API's keep-alive connections.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from typing import Any

from chaos.proxy.api import ToxiproxyApi
from chaos.proxy.errors import ApiError
from chaos.proxy.http import HttpServer, Request
from chaos.proxy.loops import new_event_loop
from chaos.proxy.proxy import Proxy

__all__ = ["ProxyServer"]


class ProxyServer:
    """A Toxiproxy-API server on ``host:port`` (port 0: any free port, see ``port``).

    ``seed`` seeds the one random generator behind toxicity draws, latency jitter and slicer
    sizes, so a run can be repeated.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, seed: int = 0) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port!r}")
        self.host = host
        self.port = port
        self.rng = random.Random(seed)
        self.proxies: dict[str, Proxy] = {}
        self.api = ToxiproxyApi(self.proxies, self._new_proxy)
        self._http = HttpServer(self.api.handle)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    async def populate(self, proxies: object) -> None:
        """Create the proxies of a Toxiproxy ``-config`` file (a JSON list of ``{name, listen,
        upstream, enabled}``) as ``POST /populate`` does; ApiError names a refused entry."""
        request = Request("POST", "/populate", {}, json.dumps(proxies).encode())
        status, body = await self.api.populate(request)
        if status >= 300:
            raise ApiError(str(body.get("error", body)), status)

    def _new_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy(name, listen, upstream, self.rng)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- inside a running loop --------------------------------------------------------------
    async def start_async(self) -> None:
        """Listen for API requests; OSError when the address is taken."""
        self._loop = asyncio.get_running_loop()
        self.host, self.port = await self._http.start(self.host, self.port)
        self._running = True

    async def stop_async(self) -> None:
        """Close the API, every proxy's listener and every proxied connection."""
        self._running = False
        await self._http.close()
        for proxy in list(self.proxies.values()):
            await proxy.stop()
        self.proxies.clear()

    async def serve_forever(self) -> None:
        await self.start_async()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop_async()

    async def __aenter__(self) -> ProxyServer:
        await self.start_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # --- from ordinary code: the loop in a thread -------------------------------------------
    def start(self, timeout: float = 10.0) -> ProxyServer:
        """Run the server on a background thread; returns once the API is listening."""
        if self._thread is not None:
            raise RuntimeError("this ProxyServer is already running")
        loop = new_event_loop()  # uvloop when installed: far less overhead per socket event
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=main, name="faultmesh-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the proxy server did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    run_in_thread = start

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start`; every socket is closed on return."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._stop_all(), loop)
        try:
            future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None

    async def _stop_all(self) -> None:
        await self.stop_async()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=2)

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        if self._loop is None:
            raise RuntimeError("the proxy server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> ProxyServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
