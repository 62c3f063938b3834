"""Call-graph analysis: known answers on small topologies built from the model dataclasses."""

from __future__ import annotations

import pytest

from topologies.graph import (
    blast_radius,
    call_graph,
    depth,
    failure_sources,
    fan_out,
    find_cycle,
    find_cycle_in,
    layers,
    longest_chain,
    max_fan_out,
    reachable,
    summarize,
    unreachable,
)
from topologies.model import (
    Call,
    CircuitBreaker,
    FrozenMap,
    ParallelGroup,
    RetryPolicy,
    Service,
    Topology,
)


def topo(entry: str, **calls: list) -> Topology:
    """A topology whose services call as given: ``a=["b", ("c", "d")]`` (a tuple is parallel)."""
    services = {}
    names = set(calls)
    for name, steps in calls.items():
        built = []
        for step in steps:
            if isinstance(step, tuple):
                built.append(ParallelGroup(tuple(_call(s) for s in step)))
                names.update(_to(s) for s in step)
            else:
                built.append(_call(step))
                names.add(_to(step))
        services[name] = Service(name, calls=tuple(built))
    for name in names - set(services):
        services[name] = Service(name)
    return Topology(name="t", entry=entry, services=FrozenMap(services))


def _call(step: str | Call) -> Call:
    return step if isinstance(step, Call) else Call(step)


def _to(step: str | Call) -> str:
    return step.to if isinstance(step, Call) else step


# gateway -> embedder, (vectordb || cache), llm; vectordb -> disk; orphan -> llm (unreachable)
RAG = topo("gateway", gateway=["embedder", ("vectordb", "cache"), "llm"], vectordb=["disk"],
           orphan=["llm"])


def test_call_graph_has_services_as_nodes_and_calls_as_edges_without_a_client_node():
    g = call_graph(RAG)
    assert set(g) == {"gateway", "embedder", "vectordb", "cache", "llm", "disk", "orphan"}
    assert "client" not in g
    assert g.graph["entry"] == "gateway"
    assert set(g.edges) == {("gateway", "embedder"), ("gateway", "vectordb"),
                            ("gateway", "cache"), ("gateway", "llm"), ("vectordb", "disk"),
                            ("orphan", "llm")}


def test_call_graph_carries_service_and_call_attributes():
    retry = RetryPolicy(attempts=3)
    breaker = CircuitBreaker()
    gateway = Service("gateway", replicas=2, calls=(
        Call("llm", timeout=2.0, retry=retry, circuit_breaker=breaker, fallback="degrade"),
        ParallelGroup((Call("cache", p=0.5),)),
    ))
    t = Topology("t", "gateway", FrozenMap(gateway=gateway, llm=Service("llm", kind="llm",
                                                                        replicas=3),
                                           cache=Service("cache", kind="cache")))
    g = call_graph(t)
    assert g.nodes["gateway"]["replicas"] == 2
    assert g.nodes["llm"]["kind"] == "llm" and g.nodes["llm"]["replicas"] == 3
    llm = g.edges["gateway", "llm"]
    assert (llm["timeout"], llm["retry"], llm["circuit_breaker"]) == (2.0, retry, breaker)
    assert llm["fallback"] == "degrade" and llm["p"] == 1.0 and llm["parallel"] is False
    cache = g.edges["gateway", "cache"]
    assert cache["p"] == 0.5 and cache["parallel"] is True and cache["retry"] is None
    assert (llm["step"], cache["step"]) == (0, 1)


def test_two_calls_to_one_service_make_one_edge_that_keeps_both():
    t = topo("a", a=[Call("b", timeout=1.0), "c", Call("b", timeout=2.0)])
    g = call_graph(t)
    data = g.edges["a", "b"]
    assert data["timeout"] == 1.0
    assert [c.timeout for c in data["calls"]] == [1.0, 2.0]
    assert data["steps"] == (0, 2)
    assert fan_out(t)["a"] == 2


def test_reachable_is_entry_and_its_transitive_callees():
    assert reachable(RAG) == {"gateway", "embedder", "vectordb", "cache", "llm", "disk"}


def test_unreachable_lists_services_nobody_from_the_entry_calls_sorted():
    t = topo("a", a=["b"], z=["y"], c=[])
    assert unreachable(t) == ["c", "y", "z"]
    assert unreachable(RAG) == ["orphan"]


def test_reachable_is_empty_when_the_entry_is_not_a_service():
    t = topo("missing", a=["b"])
    assert reachable(t) == set()
    assert unreachable(t) == ["a", "b"]


def test_depth_counts_edges_of_the_longest_chain_from_the_entry():
    assert depth(RAG) == 2
    assert longest_chain(RAG) == ["gateway", "vectordb", "disk"]
    assert depth(topo("a", a=[])) == 0
    assert depth(topo("a", a=["b", "c"], b=["c"], c=["d"])) == 3  # a->b->c->d beats a->c->d


def test_depth_ignores_chains_not_reachable_from_the_entry():
    t = topo("a", a=["b"], x=["y"], y=["z"], z=["w"])
    assert depth(t) == 1


def test_fan_out_counts_distinct_callees():
    assert fan_out(RAG) == {"gateway": 4, "embedder": 0, "vectordb": 1, "cache": 0,
                            "llm": 0, "disk": 0, "orphan": 1}
    assert max_fan_out(RAG) == 4
    assert max_fan_out(topo("a", a=[])) == 0


def test_failure_sources_are_transitive_callees_without_the_service_itself():
    sources = failure_sources(RAG)
    assert sources["gateway"] == {"embedder", "vectordb", "cache", "llm", "disk"}
    assert sources["vectordb"] == {"disk"}
    assert sources["disk"] == frozenset()
    assert sources["orphan"] == {"llm"}
    # In a cycle every member can fail every other, but never "itself".
    cyclic = failure_sources(topo("a", a=["b"], b=["a"]))
    assert cyclic == {"a": {"b"}, "b": {"a"}}


def test_blast_radius_is_transitive_callers():
    radius = blast_radius(RAG)
    assert radius["disk"] == {"vectordb", "gateway"}
    assert radius["llm"] == {"gateway", "orphan"}
    assert radius["gateway"] == frozenset()


def test_no_cycle_in_a_tree_or_a_diamond():
    assert find_cycle(RAG) is None
    assert find_cycle(topo("a", a=["b", "c"], b=["d"], c=["d"])) is None
    assert find_cycle_in([]) is None


def test_cycle_is_returned_as_a_closed_path():
    assert find_cycle(topo("a", a=["b"], b=["c"], c=["a"])) == ["a", "b", "c", "a"]


def test_cycle_path_starts_at_the_cycle_not_at_the_way_into_it():
    assert find_cycle_in([("entry", "x"), ("x", "y"), ("y", "z"), ("z", "x")]) == \
        ["x", "y", "z", "x"]


def test_a_service_calling_itself_is_a_cycle_of_one():
    assert find_cycle_in([("a", "b"), ("b", "b")]) == ["b", "b"]


def test_find_cycle_in_is_deterministic_whatever_the_edge_order():
    edges = [("c", "a"), ("a", "b"), ("b", "c"), ("b", "d")]
    assert find_cycle_in(edges) == find_cycle_in(reversed(edges)) == ["a", "b", "c", "a"]


def test_depth_and_layers_refuse_a_cycle_naming_it():
    t = topo("a", a=["b"], b=["c"], c=["b"])
    with pytest.raises(ValueError, match="b -> c -> b"):
        depth(t)
    with pytest.raises(ValueError, match="cycle"):
        layers(t)


def test_layers_put_every_callee_right_of_its_callers():
    lay = layers(RAG)
    assert lay["gateway"] == 0 and lay["vectordb"] == 1 and lay["disk"] == 2
    assert lay["orphan"] == 0  # unreachable roots start their own layering
    g = call_graph(RAG)
    assert all(lay[a] < lay[b] for a, b in g.edges)


def test_summary_bundles_the_figures_and_reads_well():
    s = summarize(RAG)
    assert (s.services, s.calls, s.depth, s.max_fan_out) == (7, 6, 2, 4)
    assert s.unreachable == ("orphan",) and s.cycle is None
    assert s.longest_chain == ("gateway", "vectordb", "disk")
    text = "\n".join(s.lines())
    assert "depth 2: gateway -> vectordb -> disk" in text
    assert "max fan-out 4 (gateway)" in text
    assert "unreachable from the entry: orphan" in text
    d = s.to_dict()
    assert d["failure_sources"]["vectordb"] == ["disk"] and d["cycle"] is None


def test_summary_of_a_cyclic_topology_reports_the_cycle_and_no_depth():
    s = summarize(topo("a", a=["b"], b=["a"]))
    assert s.cycle == ("a", "b", "a") and s.depth is None
    assert "call cycle: a -> b -> a" in s.lines()
