"""Properties of the loader: whatever the input, the only failure is a TopologyError, and
a resolved topology written back to YAML loads to an equal model."""

from __future__ import annotations

import copy
import glob
import os

import jsonschema
import pytest
import yaml
from conftest import BASE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topologies
from topologies import Topology, TopologyError
from topologies.yamltree import parse_yaml

SETTINGS = settings(max_examples=int(os.environ.get("FM_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["10ms", "2s", "-1s", "5/s", "1MB", "99%", "lognormal", "llm", "gateway",
                     "unlimited", "x->y", "gateway->llm", "0", "1e309"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["to", "calls", "dist", "type", "latency", "replicas",
                                     "x", "rate", "p99", "min", "max"]), inner, max_size=4)),
    max_leaves=12)


def load_or_topology_error(text: str) -> Topology | None:
    try:
        return topologies.loads(text, file="prop.yaml")
    except TopologyError as exc:
        assert exc.problems, "a TopologyError must carry its problems"
        for p in exc.problems:
            assert str(p).startswith("prop.yaml")
        return None


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_topology_error(text):
    load_or_topology_error(text)


@SETTINGS
@given(values)
def test_arbitrary_yaml_values_only_ever_raise_topology_error(value):
    load_or_topology_error(yaml.safe_dump(value))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


BASE_DATA = yaml.safe_load(BASE.replace("on: [", "'on': ["))
BASE_PATHS = [p for p in _paths(BASE_DATA) if p]


@SETTINGS
@given(st.sampled_from(BASE_PATHS), st.sampled_from(["replace", "delete", "rename"]), values)
def test_mutated_topologies_only_ever_raise_topology_error(path, how, value):
    data = copy.deepcopy(BASE_DATA)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "replace":
        parent[key] = value
    elif how == "delete":
        del parent[key]
    elif isinstance(parent, dict):
        parent[str(key) + "x"] = parent.pop(key)
    else:
        parent.append(value)
    topo = load_or_topology_error(yaml.safe_dump(data))
    if topo is not None:
        assert topologies.loads(topologies.dump(topo)) == topo


@SETTINGS
@given(replicas=st.integers(0, 50), workers=st.integers(1, 64),
       median=st.floats(1e-4, 1.0), spread=st.floats(1.01, 50),
       timeout=st.one_of(st.none(), st.floats(1e-3, 60)), p=st.floats(0, 1),
       attempts=st.integers(1, 6), budget=st.one_of(st.none(), st.floats(0, 1)))
@pytest.mark.slow
def test_resolved_topology_round_trips_through_yaml(replicas, workers, median, spread, timeout,
                                                      p, attempts, budget):
    topo = topologies.loads(BASE)
    changes = {"services.gateway.replicas": replicas, "services.gateway.workers": workers,
               "services.gateway.latency": {"dist": "lognormal", "median": median,
                                            "p99": median * spread},
               "services.gateway.calls.0.timeout": timeout,
               "services.gateway.calls.1.parallel.1.p": p,
               "services.gateway.calls.0.retry.attempts": attempts,
               "services.gateway.calls.0.retry.budget": budget}
    topo = topologies.override(topo, changes)
    again = topologies.loads(topologies.dump(topo))
    assert again == topo


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


BUNDLED = sorted(glob.glob(os.path.join(os.path.dirname(topologies.__file__), "*.yaml")))


def test_json_schema_is_valid_and_accepts_the_valid_files():
    schema = topologies.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for text in [BASE, *(open(path).read() for path in BUNDLED)]:
        errors = list(validator.iter_errors(_plain(parse_yaml(text))))
        assert not errors, [e.message for e in errors[:3]]
        dumped = _plain(parse_yaml(topologies.dump(topologies.loads(text))))
        assert not list(validator.iter_errors(dumped))


@pytest.mark.parametrize("old,new", [("replicas: 2", "replicas: -1"), ("kind: cache", "kind: db"),
                                     ("workers: 4", "wokers: 4")])
def test_json_schema_rejects_what_the_loader_rejects(old, new):
    validator = jsonschema.Draft202012Validator(topologies.json_schema())
    data = _plain(parse_yaml(BASE.replace(old, new)))
    assert list(validator.iter_errors(data))
    with pytest.raises(TopologyError):
        topologies.loads(BASE.replace(old, new))


YAML_BITS = ["!!int ", "!!float ", "!!bool ", "!!str ", "!!binary ", "!!timestamp ", "!!set ",
             "!!omap ", "!!python/object:os.system ", "!custom ", "&a ", "*a", "<<: ", "? ",
             "- ", ": ", "{", "}", "[", "]", ",", "---\n", "...\n", "%YAML 1.1\n", "|\n  ",
             ">\n  ", "'", '"', "#", "\n", "\n  ", "x", "1", "2s", "-1", "1e9999", "0x1F",
             "0o17", "~", "null", "yes", "on", "2001-12-14", "services", "to", "version"]


@SETTINGS
@given(st.lists(st.sampled_from(YAML_BITS), max_size=40))
def test_yaml_syntax_soup_only_ever_raises_topology_error(bits):
    load_or_topology_error("".join(bits))
