"""The call graph of a topology and what its shape says about failures.

A topology's services and their calls form a directed graph: an edge ``caller -> callee``
for every dependency a service calls while handling a request. Client requests enter at
the entry service. This module answers the questions an SRE asks of that graph before any
simulation runs:

* which services a client request can reach (and which are dead weight, never called);
* how deep the longest call chain is (every hop adds latency and a failure point);
* how many dependencies each service fans out to;
* which services' failures can reach a given service (its transitive callees) and, the other
  way round, how far one service's failure can spread (its transitive callers);
* whether the calls form a cycle (a request that would call itself forever).

Everything here is pure graph analysis with networkx; no engine is involved. The client is
not a node: the entry service is recorded as ``graph.graph["entry"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .model import ParallelGroup, Topology

__all__ = [
    "call_graph",
    "reachable",
    "unreachable",
    "depth",
    "longest_chain",
    "layers",
    "fan_out",
    "max_fan_out",
    "failure_sources",
    "blast_radius",
    "find_cycle",
    "find_cycle_in",
    "GraphSummary",
    "summarize",
]


def call_graph(topology: Topology) -> nx.DiGraph:
    """The services of ``topology`` as nodes and their calls as edges ``caller -> callee``.

    Node attributes: ``kind``, ``replicas`` (and ``service``, the model object). Edge
    attributes come from the call: ``timeout``, ``retry`` (a RetryPolicy or None),
    ``circuit_breaker``, ``fallback``, ``p``, ``parallel`` (True when the call is part of a
    parallel group), ``step`` (the index of the call's step in the caller's ``calls``),
    ``calls`` (every Call on that edge: a service may call the same dependency in several
    steps, and then the other attributes are those of the first) and ``steps`` (the step
    index of each of those calls). A call to a name that is not a
    service (only possible in a hand-built, unvalidated topology) adds a node with
    ``kind=None`` and ``replicas=0``.
    """
    graph = nx.DiGraph(name=topology.name, entry=topology.entry)
    for name, service in topology.services.items():
        graph.add_node(name, kind=service.kind, replicas=service.replicas, service=service)
    for name, service in topology.services.items():
        for index, step in enumerate(service.calls):
            parallel = isinstance(step, ParallelGroup)
            for call in step.parallel if parallel else (step,):
                if call.to not in graph:
                    graph.add_node(call.to, kind=None, replicas=0, service=None)
                if graph.has_edge(name, call.to):
                    data = graph.edges[name, call.to]
                    data["calls"] = data["calls"] + (call,)
                    data["steps"] = data["steps"] + (index,)
                    continue
                graph.add_edge(
                    name,
                    call.to,
                    timeout=call.timeout,
                    retry=call.retry,
                    circuit_breaker=call.circuit_breaker,
                    fallback=call.fallback,
                    p=call.p,
                    parallel=parallel,
                    step=index,
                    calls=(call,),
                    steps=(index,),
                )
    return graph


def _graph(topology: Topology | nx.DiGraph) -> nx.DiGraph:
    return topology if isinstance(topology, nx.DiGraph) else call_graph(topology)


def reachable(topology: Topology | nx.DiGraph) -> set[str]:
    """The services a client request can reach: the entry and everything it calls, transitively.

    Empty when the entry is not a service.
    """
    graph = _graph(topology)
    entry = graph.graph["entry"]
    if entry not in graph:
        return set()
    return {entry} | nx.descendants(graph, entry)


def unreachable(topology: Topology | nx.DiGraph) -> list[str]:
    """Services no client request can reach (sorted): defined but never called from the entry."""
    graph = _graph(topology)
    seen = reachable(graph)
    return sorted(n for n in graph if n not in seen)


def _cycle_error(graph: nx.DiGraph) -> ValueError:
    cycle = find_cycle_in(graph.edges)
    shown = " -> ".join(cycle or ())
    return ValueError(f"the calls form a cycle ({shown}): call chains have no longest length")


def _longest_from(graph: nx.DiGraph, sources: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """For every node reachable from ``sources``: (longest distance in edges, predecessor)."""
    nodes: set[str] = set()
    for source in sources:
        nodes |= {source} | nx.descendants(graph, source)
    sub = graph.subgraph(nodes)
    try:
        order = list(nx.topological_sort(sub))
    except nx.NetworkXUnfeasible:
        raise _cycle_error(sub) from None
    best: dict[str, tuple[int, str | None]] = {n: (0, None) for n in order}
    for node in order:
        dist = best[node][0]
        for succ in sorted(sub.successors(node)):
            if dist + 1 > best[succ][0]:
                best[succ] = (dist + 1, node)
    return best


def depth(topology: Topology | nx.DiGraph) -> int:
    """Length in edges of the longest call chain from the entry (the entry alone: 0).

    Raises ValueError when the reachable calls form a cycle (the chain has no end).
    """
    return max(0, len(longest_chain(topology)) - 1)


def longest_chain(topology: Topology | nx.DiGraph) -> list[str]:
    """The longest call chain from the entry, as service names (``[]`` if the entry is missing).

    Ties go to the alphabetically first chain, so the answer is stable.
    """
    graph = _graph(topology)
    entry = graph.graph["entry"]
    if entry not in graph:
        return []
    best = _longest_from(graph, [entry])
    end = min(best, key=lambda n: (-best[n][0], n))
    chain = [end]
    while (prev := best[chain[-1]][1]) is not None:
        chain.append(prev)
    return chain[::-1]


def layers(topology: Topology | nx.DiGraph) -> dict[str, int]:
    """A drawing layer for every service: its longest call distance from the entry.

    Every call then points to a later layer, so a left-to-right drawing has no backward
    edges. Unreachable services are layered the same way from the services nobody calls.
    Raises ValueError on a call cycle.
    """
    graph = _graph(topology)
    entry = graph.graph["entry"]
    out: dict[str, int] = {}
    if entry in graph:
        out.update({n: d for n, (d, _) in _longest_from(graph, [entry]).items()})
    rest = graph.subgraph(n for n in graph if n not in out)
    if len(rest):
        roots = [n for n in rest if rest.in_degree(n) == 0]
        if not roots:
            raise _cycle_error(rest)
        for node, (dist, _) in _longest_from(rest, roots).items():
            out[node] = dist
    return out


def fan_out(topology: Topology | nx.DiGraph) -> dict[str, int]:
    """Distinct dependencies each service calls (0 for a leaf), for every service."""
    graph = _graph(topology)
    return {n: graph.out_degree(n) for n in graph}


def max_fan_out(topology: Topology | nx.DiGraph) -> int:
    """The largest number of distinct dependencies any one service calls."""
    return max(fan_out(topology).values(), default=0)


def failure_sources(topology: Topology | nx.DiGraph) -> dict[str, frozenset[str]]:
    """For each service, the services whose failure can reach it: its transitive callees.

    A service's own failure is not listed. A ``fallback: degrade`` may stop errors on the way
    but not latency, so every transitive callee counts.
    """
    graph = _graph(topology)
    return {n: frozenset(nx.descendants(graph, n) - {n}) for n in graph}


def blast_radius(topology: Topology | nx.DiGraph) -> dict[str, frozenset[str]]:
    """For each service, the services its failure can spread to: its transitive callers."""
    graph = _graph(topology)
    return {n: frozenset(nx.ancestors(graph, n) - {n}) for n in graph}


def find_cycle_in(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """A cycle among ``(caller, callee)`` pairs as a closed path ``[a, b, a]``, or None.

    Works on plain names, so validation can call it before a Topology exists. A service
    calling itself gives ``[a, a]``. The search starts from the alphabetically first names,
    so the same edges always give the same answer.
    """
    graph = nx.DiGraph()
    graph.add_edges_from(sorted((str(a), str(b)) for a, b in edges))
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(sorted(graph.successors(root)))]
        while stack:
            for succ in stack[-1]:
                if state.get(succ) == 1:
                    return path[path.index(succ):] + [succ]
                if succ not in state:
                    state[succ] = 1
                    path.append(succ)
                    stack.append(iter(sorted(graph.successors(succ))))
                    break
            else:
                state[path.pop()] = 2
                stack.pop()
    return None


def find_cycle(topology: Topology | nx.DiGraph) -> list[str] | None:
    """A call cycle of the topology as a closed path ``[a, b, a]``, or None when there is none."""
    return find_cycle_in(_graph(topology).edges)


@dataclass(frozen=True)
class GraphSummary:
    """The shape of a topology's call graph, as ``faultmesh validate`` reports it."""

    name: str
    entry: str
    services: int
    calls: int
    reachable: frozenset[str]
    unreachable: tuple[str, ...]
    depth: int | None
    longest_chain: tuple[str, ...]
    fan_out: dict[str, int] = field(hash=False)
    max_fan_out: int
    failure_sources: dict[str, frozenset[str]] = field(hash=False)
    blast_radius: dict[str, frozenset[str]] = field(hash=False)
    cycle: tuple[str, ...] | None

    def lines(self) -> list[str]:
        """A few human lines: size, depth and chain, widest fan-out, unreachable services."""
        out = [f"{self.name}: {self.services} services, {self.calls} call edges, "
               f"entry {self.entry}"]
        if self.cycle:
            out.append("call cycle: " + " -> ".join(self.cycle))
        if self.depth is not None:
            out.append(f"depth {self.depth}: " + " -> ".join(self.longest_chain))
        if self.fan_out:
            widest = sorted(n for n, k in self.fan_out.items() if k == self.max_fan_out)
            out.append(f"max fan-out {self.max_fan_out} ({', '.join(widest)})")
        spread = {n: len(s) for n, s in self.blast_radius.items()}
        if spread and max(spread.values()) > 0:
            worst = max(spread.values())
            names = sorted(n for n, k in spread.items() if k == worst)
            callers = "caller" if worst == 1 else "callers"
            out.append(f"widest blast radius: {', '.join(names)} (reaches {worst} {callers})")
        if self.unreachable:
            out.append("unreachable from the entry: " + ", ".join(self.unreachable))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (sets as sorted lists)."""
        return {
            "name": self.name,
            "entry": self.entry,
            "services": self.services,
            "calls": self.calls,
            "reachable": sorted(self.reachable),
            "unreachable": list(self.unreachable),
            "depth": self.depth,
            "longest_chain": list(self.longest_chain),
            "fan_out": dict(self.fan_out),
            "max_fan_out": self.max_fan_out,
            "failure_sources": {k: sorted(v) for k, v in self.failure_sources.items()},
            "blast_radius": {k: sorted(v) for k, v in self.blast_radius.items()},
            "cycle": None if self.cycle is None else list(self.cycle),
        }


def summarize(topology: Topology) -> GraphSummary:
    """Every figure of this module for one topology; a reachable cycle leaves ``depth`` None."""
    graph = call_graph(topology)
    cycle = find_cycle(graph)
    try:
        chain = longest_chain(graph)
    except ValueError:
        chain = []
    return GraphSummary(
        name=topology.name,
        entry=topology.entry,
        services=graph.number_of_nodes(),
        calls=graph.number_of_edges(),
        reachable=frozenset(reachable(graph)),
        unreachable=tuple(unreachable(graph)),
        depth=max(0, len(chain) - 1) if chain else None,
        longest_chain=tuple(chain),
        fan_out=fan_out(graph),
        max_fan_out=max_fan_out(graph),
        failure_sources=failure_sources(graph),
        blast_radius=blast_radius(graph),
        cycle=None if cycle is None else tuple(cycle),
    )
