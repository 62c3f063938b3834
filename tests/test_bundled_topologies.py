"""The example topologies shipped in topologies/*.yaml load, make sense and draw."""

from __future__ import annotations

from pathlib import Path

import pytest

import topologies
from faultmesh.cli import main
from topologies.draw import draw, edge_label, node_label
from topologies.errors import UsageError
from topologies.graph import call_graph, reachable, summarize
from topologies.model import FAULT_TYPES

BUNDLED_DIR = Path(topologies.__file__).parent
BUNDLED = sorted(BUNDLED_DIR.glob("*.yaml"))
NAMES = [p.stem for p in BUNDLED]


@pytest.fixture(scope="module")
def loaded() -> dict[str, topologies.Topology]:
    return {p.stem: topologies.load(str(p)) for p in BUNDLED}


def test_the_four_documented_topologies_are_bundled():
    assert {"rag-chat", "agent", "recommender", "router"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_bundled_topology_loads_and_is_named_after_its_file(loaded, name):
    assert loaded[name].name == name


@pytest.mark.parametrize("name", NAMES)
def test_bundled_topology_has_scenarios_and_slos(loaded, name):
    t = loaded[name]
    assert len(t.scenarios) >= 2
    assert len(t.slos) >= 2
    assert all(s.faults for s in t.scenarios.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_bundled_service_is_reachable_from_the_entry(loaded, name):
    t = loaded[name]
    assert reachable(t) == set(t.services)


@pytest.mark.parametrize("name", NAMES)
def test_bundled_workload_is_small_enough_to_simulate_in_seconds(loaded, name):
    w = loaded[name].workload
    assert 120 <= w.duration <= 300
    assert 10 <= w.warmup <= 30
    peak = max((p.rate for p in w.profile), default=0) if w.profile else (w.rate or 0)
    assert peak <= 60


def test_bundled_scenarios_exercise_most_fault_types(loaded):
    used = {f.type for t in loaded.values() for s in t.scenarios.values() for f in s.faults}
    assert used == set(FAULT_TYPES)


def test_rag_chat_has_the_readme_scenario(loaded):
    brownout = loaded["rag-chat"].scenario("llm-brownout")
    (fault,) = brownout.faults
    assert (fault.type, fault.target, fault.latency) == ("latency", "llm", 2.0)


def test_router_degrades_when_the_large_model_path_fails(loaded):
    g = call_graph(loaded["router"])
    assert g.edges["router", "large-llm"]["fallback"] == "degrade"
    assert g.nodes["frontier-api"]["kind"] == "external"


def test_node_and_edge_labels(loaded):
    t = loaded["rag-chat"]
    assert node_label(t.service("llm")) == ("llm", "llm x4", "L4 · auto 3-8")
    g = call_graph(t)
    assert edge_label(g.edges["gateway", "vectordb"], 4) == "2. 1s, 2 tries, CB"
    assert edge_label(g.edges["gateway", "vectordb"], 1) == "1s, 2 tries, CB"


def _not_blank_png(path: Path) -> None:
    from matplotlib.image import imread

    pixels = imread(str(path))
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # a drawing, not a flat colour


@pytest.mark.parametrize("name", NAMES)
def test_bundled_topology_draws_to_png_and_svg(loaded, name, tmp_path):
    png = draw(loaded[name], tmp_path / f"{name}.png")
    svg = draw(loaded[name], tmp_path / f"{name}.svg")
    assert png.stat().st_size > 10_000
    _not_blank_png(png)
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text and svg.stat().st_size > 10_000


def test_svg_drawing_is_reproducible(loaded, tmp_path):
    a = draw(loaded["router"], tmp_path / "a.svg").read_bytes()
    b = draw(loaded["router"], tmp_path / "b.svg").read_bytes()
    assert a == b


def test_draw_refuses_other_formats(loaded, tmp_path):
    with pytest.raises(UsageError, match=r"\.png or \.svg"):
        draw(loaded["router"], tmp_path / "graph.pdf")


def test_graph_command_writes_topology_name_png_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", str(BUNDLED_DIR / "router.yaml")]) == 0
    _not_blank_png(tmp_path / "router.png")
    assert "router.png" in capsys.readouterr().out


def test_graph_command_exits_2_on_a_bad_output_suffix(tmp_path, capsys):
    assert main(["graph", str(BUNDLED_DIR / "router.yaml"), "-o", str(tmp_path / "g.gif")]) == 2
    assert ".png or .svg" in capsys.readouterr().err


def test_summary_of_bundled_topologies_has_no_cycle(loaded):
    for t in loaded.values():
        s = summarize(t)
        assert s.cycle is None and s.depth is not None and s.depth >= 1


@pytest.mark.slow
def test_rag_chat_crash_is_a_black_hole_that_outlier_detection_closes(loaded):
    """crash-one-llm: the gateway's least_request balancer keeps choosing the dead LLM replica
    (it refuses fastest) until it restarts 90 s later; ejecting it after 5 failures in a row
    gives most of the availability back (docs/topologies.md)."""
    import dataclasses

    import simulator
    from topologies.model import FrozenMap, OutlierDetection

    t = loaded["rag-chat"]
    gateway = t.services["gateway"]
    calls = tuple(dataclasses.replace(c, outlier_detection=OutlierDetection(5, 30.0))
                  if getattr(c, "to", None) == "llm" else c for c in gateway.calls)
    ejecting = dataclasses.replace(t, services=FrozenMap(
        {**t.services, "gateway": dataclasses.replace(gateway, calls=calls)}))
    plain = simulator.simulate(t, "crash-one-llm", seed=0).summary["availability"]
    ejected = simulator.simulate(ejecting, "crash-one-llm", seed=0).summary["availability"]
    assert plain < 0.75
    assert ejected > plain + 0.2
