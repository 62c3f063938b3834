"""The proxy server's per-proxy counts in the Prometheus text exposition format, for the
API's ``GET /metrics``.

Read at scrape time from the proxies themselves (a custom collector), so a scrape adds nothing
to the bytes' path: per proxy (label ``proxy``, its name) the connections open now, whether it
is enabled and how many toxics it has. The one count a proxy does not keep, connections
accepted since it was created, comes from :func:`counted`: the server's proxy factory wrapped
so that each new proxy's set of open connections is a :class:`CountingSet`, which counts every
connection added to it. Bytes are not exposed: the links do not count them.

``prometheus_client`` is imported at the first scrape, and each server has its own
``CollectorRegistry``, so several servers in one process (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from chaos.proxy.proxy import Proxy

__all__ = ["CountingSet", "counted", "ProxyMetrics"]


class CountingSet(set):  # type: ignore[type-arg]
    """A set that counts every :meth:`add` (``added``): a proxy's open connections, with the
    number it ever had."""

    __slots__ = ("added",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.added = len(self)

    def add(self, item: Any) -> None:
        self.added += 1
        super().add(item)


def counted(new_proxy: Callable[..., Proxy]) -> Callable[..., Proxy]:
    """``new_proxy`` whose proxies count their connections (``connections.added``). A proxy
    that keeps its open connections in something other than a plain set is left as it is
    (its total is then not exposed)."""
    def make(*args: Any, **kwargs: Any) -> Proxy:
        proxy = new_proxy(*args, **kwargs)
        if type(proxy.connections) is set:
            proxy.connections = CountingSet(proxy.connections)
        return proxy
    return make


class ProxyMetrics:
    """The metrics page of the proxies in ``proxies`` (name -> Proxy, the server's own dict)."""

    def __init__(self, proxies: Mapping[str, Proxy]) -> None:
        self.proxies = proxies
        self._registry: CollectorRegistry | None = None

    def expose(self) -> tuple[bytes, str]:
        """The page (``generate_latest`` of this server's registry) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self.proxies))
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, proxies: Mapping[str, Proxy]) -> None:
        self.proxies = proxies

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        open_ = GaugeMetricFamily("faultmesh_proxy_connections_open",
                                  "Client connections open through the proxy now.",
                                  labels=["proxy"])
        total = CounterMetricFamily("faultmesh_proxy_connections",
                                    "Client connections the proxy accepted since it was made.",
                                    labels=["proxy"])
        enabled = GaugeMetricFamily("faultmesh_proxy_enabled",
                                    "1 while the proxy is enabled (a down fault disables it).",
                                    labels=["proxy"])
        toxics = GaugeMetricFamily("faultmesh_proxy_toxics",
                                   "Toxics on the proxy now (both streams).", labels=["proxy"])
        for name, proxy in sorted(self.proxies.items()):
            open_.add_metric([name], len(proxy.connections))
            added = getattr(proxy.connections, "added", None)
            if added is not None:
                total.add_metric([name], added)
            enabled.add_metric([name], 1 if proxy.enabled else 0)
            toxics.add_metric([name], len(proxy.toxics))
        yield from (open_, total, enabled, toxics)
