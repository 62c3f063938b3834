"""The Toxiproxy 2.x HTTP API over a collection of proxies: routes, status codes, error bodies.

Each route answers as Toxiproxy's ``api.go`` does — 201 for ``POST /proxies`` and
``/populate``, 200 for a new toxic, 204 for deletes and ``/reset``, errors as
``{"error": message, "status": code}`` — so ``toxiproxy-python`` and users' scripts cannot tell
it from the Go server. Requests from a browser (``User-Agent: Mozilla/...``) get 403, and every
answer carries an ``X-Toxiproxy-Request-Id`` header. ``GET /metrics`` is faultmesh's own: the
proxies' counts for Prometheus (:mod:`chaos.proxy.metrics`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from chaos.proxy.errors import PROXY_EXISTS, PROXY_NOT_FOUND, ApiError, bad_body, missing_field
from chaos.proxy.http import Request, Response
from chaos.proxy.metrics import ProxyMetrics, counted
from chaos.proxy.proxy import Proxy, split_address
from chaos.proxy.toxics import parse_toxic, update_toxic

__all__ = ["ToxiproxyApi", "VERSION"]

#: The Toxiproxy version whose API this server speaks (reported by ``GET /version``).
VERSION = "2.12.0"

_Result = tuple[int, Any]


def _json(body: bytes) -> Any:
    if not body.strip():
        raise bad_body("EOF")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_body(str(exc)) from None


def _text_field(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_body(f"{key} must be a string, not {value!r}")
    return value


def _proxy_input(data: object, defaults: dict[str, Any]) -> dict[str, Any]:
    """name, listen, upstream, enabled from a request body, with the given defaults."""
    if not isinstance(data, dict):
        raise bad_body("expected a JSON object")
    fields = {
        "name": _text_field(data, "name", defaults.get("name", "")),
        "listen": _text_field(data, "listen", defaults.get("listen", "")),
        "upstream": _text_field(data, "upstream", defaults.get("upstream", "")),
        "enabled": data.get("enabled", defaults.get("enabled", True)),
    }
    if fields["enabled"] is None:
        fields["enabled"] = defaults.get("enabled", True)
    if not isinstance(fields["enabled"], bool):
        raise bad_body(f"enabled must be true or false, not {fields['enabled']!r}")
    fields["listen"] = fields["listen"] or "127.0.0.1:0"
    return fields


def _require(fields: dict[str, Any]) -> None:
    for key in ("name", "upstream"):
        if not fields[key]:
            raise missing_field(key)


class ToxiproxyApi:
    """The API's request handler over ``proxies`` (name → Proxy), shared with the server."""

    def __init__(self, proxies: dict[str, Proxy], new_proxy: Callable[..., Proxy]) -> None:
        self.proxies = proxies
        self._new_proxy = counted(new_proxy)  # connections since creation, for /metrics
        self.metrics = ProxyMetrics(proxies)

    async def handle(self, request: Request) -> Response:
        headers = {"X-Toxiproxy-Request-Id": secrets.token_hex(10)}
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", "text/plain; charset=utf-8",
                            headers)
        if request.path == "/metrics" and request.method == "GET":
            page, content_type = self.metrics.expose()
            return Response(200, page, content_type, headers)
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        route = self._route(request.method, parts)
        if route is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8", headers)
        if route == "method":
            return Response(405, b"", "text/plain; charset=utf-8", headers)
        try:
            status, payload = await route(request, *parts[1::2])
        except ApiError as err:
            status, payload = err.status, err.to_dict()
        if status == 204:
            return Response(204, headers=headers)
        return Response(status, json.dumps(payload).encode() + b"\n", headers=headers)

    def _route(self, method: str, parts: list[str]) -> Any:
        table: dict[tuple[str, ...], dict[str, Any]] = {
            ("reset",): {"POST": self.reset},
            ("version",): {"GET": self.version},
            ("populate",): {"POST": self.populate},
            ("proxies",): {"GET": self.proxy_index, "POST": self.proxy_create},
            ("proxies", "*"): {"GET": self.proxy_show, "POST": self.proxy_update,
                               "PATCH": self.proxy_update, "DELETE": self.proxy_delete},
            ("proxies", "*", "toxics"): {"GET": self.toxic_index, "POST": self.toxic_create},
            ("proxies", "*", "toxics", "*"): {
                "GET": self.toxic_show, "POST": self.toxic_update, "PATCH": self.toxic_update,
                "DELETE": self.toxic_delete},
        }
        shape = tuple("*" if i % 2 else p for i, p in enumerate(parts))
        if any(not p for p in parts) or shape not in table:
            return None
        return table[shape].get(method, "method")

    def _proxy(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    # --- server-wide ------------------------------------------------------------------------
    async def version(self, request: Request) -> _Result:
        return 200, {"version": VERSION}

    async def reset(self, request: Request) -> _Result:
        for proxy in self.proxies.values():
            await proxy.start()
            proxy.reset_toxics()
        return 204, None

    async def populate(self, request: Request) -> _Result:
        data = _json(request.body)
        if not isinstance(data, list):
            raise bad_body("expected a JSON array of proxies")
        wanted = []
        names: set[str] = set()
        for n, item in enumerate(data, start=1):  # everything checked before anything changes
            try:
                fields = _proxy_input(item, {})
                _require(fields)
                if fields["name"] in names:
                    raise ApiError(f"duplicate proxy name {fields['name']!r}", 400)
                if fields["enabled"]:
                    split_address(fields["listen"], "listen")
                    split_address(fields["upstream"], "upstream")
            except ApiError as err:
                raise err.at_proxy(n) from None
            names.add(fields["name"])
            wanted.append(fields)
        made: list[Proxy] = []
        for n, fields in enumerate(wanted, start=1):
            existing = self.proxies.get(fields["name"])
            if existing is not None and (existing.listen, existing.upstream) == (
                    fields["listen"], fields["upstream"]):
                made.append(existing)
                continue
            try:
                if existing is not None:
                    await existing.stop()
                    del self.proxies[existing.name]
                made.append(await self._add(fields))
            except ApiError as err:
                located = err.at_proxy(n)
                return err.status, {**located.to_dict(), "proxies": [p.to_dict() for p in made]}
        return 201, {"proxies": [p.to_dict() for p in made]}

    async def _add(self, fields: dict[str, Any]) -> Proxy:
        if fields["name"] in self.proxies:
            raise PROXY_EXISTS
        proxy = self._new_proxy(fields["name"], fields["listen"], fields["upstream"])
        split_address(fields["upstream"], "upstream")
        if fields["enabled"]:
            await proxy.start()
        else:
            split_address(fields["listen"], "listen")
        self.proxies[proxy.name] = proxy
        return proxy

    # --- proxies ----------------------------------------------------------------------------
    async def proxy_index(self, request: Request) -> _Result:
        return 200, {name: p.to_dict() for name, p in self.proxies.items()}

    async def proxy_create(self, request: Request) -> _Result:
        fields = _proxy_input(_json(request.body), {})
        _require(fields)
        return 201, (await self._add(fields)).to_dict()

    async def proxy_show(self, request: Request, name: str) -> _Result:
        return 200, self._proxy(name).to_dict()

    async def proxy_update(self, request: Request, name: str) -> _Result:
        proxy = self._proxy(name)
        current = {"listen": proxy.listen, "upstream": proxy.upstream, "enabled": proxy.enabled}
        fields = _proxy_input(_json(request.body), {"name": name, **current})
        split_address(fields["listen"], "listen")
        split_address(fields["upstream"], "upstream")
        if (fields["listen"], fields["upstream"]) != (proxy.listen, proxy.upstream):
            await proxy.stop()
            proxy.listen, proxy.upstream = fields["listen"], fields["upstream"]
        if fields["enabled"]:
            await proxy.start()
        else:
            await proxy.stop()
        return 200, proxy.to_dict()

    async def proxy_delete(self, request: Request, name: str) -> _Result:
        proxy = self._proxy(name)
        await proxy.stop()
        del self.proxies[name]
        return 204, None

    # --- toxics -----------------------------------------------------------------------------
    async def toxic_index(self, request: Request, name: str) -> _Result:
        return 200, [t.to_dict() for t in self._proxy(name).ordered_toxics()]

    async def toxic_create(self, request: Request, name: str) -> _Result:
        proxy = self._proxy(name)
        toxic = parse_toxic(_json(request.body))
        proxy.add_toxic(toxic)
        return 200, toxic.to_dict()

    async def toxic_show(self, request: Request, name: str, toxic: str) -> _Result:
        return 200, self._proxy(name).get_toxic(toxic).to_dict()

    async def toxic_update(self, request: Request, name: str, toxic_name: str) -> _Result:
        proxy = self._proxy(name)
        toxic = proxy.get_toxic(toxic_name)
        update_toxic(toxic, _json(request.body))
        proxy.toxic_updated(toxic)
        return 200, toxic.to_dict()

    async def toxic_delete(self, request: Request, name: str, toxic: str) -> _Result:
        self._proxy(name).remove_toxic(toxic)
        return 204, None
