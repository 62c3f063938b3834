"""How a live run is wired: the call graph's order, the fault proxy, one proxy per edge.

Services start callees first (reverse topological order of the acyclic call graph), so a
caller is started knowing the listen addresses of the proxies into its callees. Every proxy
is driven through ``toxiproxy-python``, on the built-in Toxiproxy-compatible server or an
outside Toxiproxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from topologies.errors import RunError, UsageError
from topologies.model import Call, ParallelGroup, Topology

__all__ = ["Edge", "service_order", "service_levels", "callees", "answer_time_bound",
           "start_proxy_server", "create_proxy", "destroy_edges"]


@dataclass
class Edge:
    """One proxy: the connection from ``caller`` to balancer slot ``replica`` of ``callee``
    (the replica of that index, or for an autoscaled callee its relay's slot)."""

    name: str
    caller: str
    callee: str
    replica: int
    proxy: Any
    listen: str


def service_order(topology: Topology) -> list[str]:
    """Services callees first (reverse topological order of the acyclic call graph)."""
    import networkx as nx

    from topologies.graph import call_graph

    return list(reversed(list(nx.topological_sort(call_graph(topology)))))


def service_levels(topology: Topology) -> list[list[str]]:
    """The services in start order, grouped: the leaves first, then every service whose
    callees are all in earlier groups. A group's replicas can start together: each needs only
    its callees' proxies, which the groups before it made."""
    level: dict[str, int] = {}
    for name in service_order(topology):  # callees first: their levels are known
        level[name] = 1 + max((level[c] for c in callees(topology, name)), default=-1)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name, n in level.items():
        groups[n].append(name)
    return groups


def answer_time_bound(topology: Topology, floor: float = 2.0, cap: float = 60.0) -> float:
    """How long the entry may take to answer, bounded from the calls' timeouts and retries
    (a call without a timeout: its callee's own bound; 1 s of own work per service), within
    [floor, cap]. The open load gives each user this much room, so slow answers (an LLM's
    seconds) do not hold the offered rate down (users >> rate x latency)."""
    memo: dict[str, float] = {}

    def service(name: str) -> float:
        if name not in memo:
            total = 1.0
            for step in topology.services[name].calls:
                group = step.parallel if isinstance(step, ParallelGroup) else (step,)
                total += max(call(c) for c in group)
            memo[name] = total
        return memo[name]

    def call(c: Call) -> float:
        tries = c.retry.attempts if c.retry else 1
        return tries * (c.timeout if c.timeout is not None else service(c.to))

    return min(cap, max(floor, service(topology.entry)))


def callees(topology: Topology, name: str) -> list[str]:
    out: list[str] = []
    for step in topology.services[name].calls:
        for call in getattr(step, "parallel", (step,)):
            if call.to not in out:
                out.append(call.to)
    return out


def start_proxy_server(toxiproxy_url: str | None, seed: int) -> Any:
    """Point ``toxiproxy-python`` at the fault proxy: the outside Toxiproxy at
    ``toxiproxy_url`` (checked to answer; None returned), or a built-in
    :class:`~chaos.proxy.ProxyServer` started on a free port (returned, to be stopped)."""
    from toxiproxy.api import APIConsumer

    if toxiproxy_url:
        parts = urlsplit(toxiproxy_url if "//" in toxiproxy_url else "http://" + toxiproxy_url)
        if not parts.hostname or not parts.port:
            raise UsageError(f"--toxiproxy: expected http://HOST:PORT, not {toxiproxy_url!r}")
        APIConsumer.host, APIConsumer.port = parts.hostname, parts.port
        import toxiproxy

        try:
            answered = toxiproxy.Toxiproxy().version() is not None
        except Exception:  # noqa: BLE001 - requests' connection errors and the like
            answered = False
        if not answered:
            raise RunError(f"no Toxiproxy API answers at {parts.hostname}:{parts.port}")
        return None
    from chaos.proxy import ProxyServer

    try:
        server = ProxyServer("127.0.0.1", 0, seed=seed).start()
    except OSError as exc:
        raise RunError(f"cannot start the fault proxy: {exc}") from None
    APIConsumer.host, APIConsumer.port = server.host, server.port
    return server


def create_proxy(caller: str, callee: str, k: int, upstream: str,
                 listen: str = "127.0.0.1:0") -> Edge:
    """The proxy ``caller->callee#k`` to ``upstream``, listening on ``listen`` (port 0: a
    free one)."""
    import toxiproxy

    name = f"{caller}->{callee}#{k}"
    try:
        proxy = toxiproxy.Toxiproxy().create(upstream=upstream, name=name,
                                             listen=listen)
    except Exception as exc:  # requests' connection errors, ProxyExists
        raise RunError(f"cannot create proxy {name}: {exc}") from None
    proxy.name = quote(name, safe="")  # '#' and '>' in URL paths
    listen = str(proxy.listen)
    if listen.endswith(":0"):
        raise RunError(f"proxy {name}: the Toxiproxy server did not report its port")
    return Edge(name, caller, callee, k, proxy, listen)


def destroy_edges(run: Any) -> None:
    """Remove the run's proxies from an outside Toxiproxy (the server itself stays), once."""
    edges, run.edges = list(run.edges), []
    for edge in edges:
        try:
            edge.proxy.destroy()
        except Exception:  # noqa: BLE001 - best effort on an outside server
            pass
