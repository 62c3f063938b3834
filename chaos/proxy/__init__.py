"""A Toxiproxy-API-compatible fault proxy, on asyncio (uvloop's loop when installed).

faultmesh's live mode puts a proxy on every dependency edge and injects network faults as
toxics, driven through the Toxiproxy HTTP API (``toxiproxy-python`` or any other client). This
package is that server, for machines where the real Toxiproxy is not installed.

Sections:

* :mod:`~chaos.proxy.server` — :class:`ProxyServer`, the object to embed (thread or asyncio);
* :mod:`~chaos.proxy.api` — the HTTP API's routes, status codes and error bodies;
* :mod:`~chaos.proxy.http` — the small HTTP/1.1 server the API runs on;
* :mod:`~chaos.proxy.proxy` — a proxy: listener, upstream, connections, toxic chains;
* :mod:`~chaos.proxy.link` — a proxied connection and what toxics do to its bytes;
* :mod:`~chaos.proxy.streams` — its sockets' streams, with a pass-through for plain bytes;
* :mod:`~chaos.proxy.loops` — the event loop (uvloop when installed) and listen backlogs;
* :mod:`~chaos.proxy.toxics` — toxic types, attributes, defaults and validation;
* :mod:`~chaos.proxy.httpframe` — HTTP/1.1 message framing of a connection's bytes;
* :mod:`~chaos.proxy.httpflow` — the HTTP toxics (``http_error``, ``http_slow``,
  ``http_fail_first``) at work on a connection;
* :mod:`~chaos.proxy.errors` — the API's errors.
"""

from __future__ import annotations

from chaos.proxy.api import VERSION
from chaos.proxy.errors import ApiError
from chaos.proxy.server import ProxyServer
from chaos.proxy.toxics import TOXIC_TYPES

__all__ = ["ProxyServer", "ApiError", "TOXIC_TYPES", "VERSION"]
