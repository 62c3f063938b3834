"""A picture of a topology's call graph, for people: who calls whom, and how defensively.

Services are boxes laid out left to right in layers by call depth from the entry (a client
arrow points into the entry), coloured by kind and labelled with name, kind, replicas and,
where set, GPUs, autoscaling range and rate limit. Each call is an arrow labelled with its
step number (when the caller has several steps), timeout, retry attempts, circuit breaker
(CB), ``degrade`` fallback and call probability; calls of a parallel group are dashed.

The layout is computed here with networkx (no graphviz): longest-path layers, a barycenter
ordering inside each layer to limit crossings, arrows bent around boxes they would cross, and
edge labels slid along their arrow until they overlap neither a box nor another label.
matplotlib is imported only when a drawing is made, with the Agg canvas (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from . import graph as graphs
from .errors import UsageError
from .model import Service, Topology
from .units import format_duration

__all__ = ["draw", "FORMATS", "KIND_COLOURS", "node_label", "edge_label", "positions"]

FORMATS = (".png", ".svg")

#: Fill colour of a service box by kind (light, distinct, readable under black text).
KIND_COLOURS = {
    "http": "#cfe2f3",
    "llm": "#f4cccc",
    "embedding": "#d9ead3",
    "vectordb": "#fff2cc",
    "cache": "#e4d7f5",
    "external": "#e6e6e6",
}

# Geometry, in inches (the axes are set so one data unit is one inch).
_COL = 4.0        # distance between layers
_ROW = 1.3        # distance between services of one layer
_BOX_W = 2.0
_BOX_H = 0.86
_CLIENT_GAP = 2.6  # from the client marker to the entry's centre
_TITLE_H = 1.05
_LEGEND_H = 0.55
_MARGIN = 0.45


def node_label(service: Service) -> tuple[str, str, str]:
    """(name, "kind xN", details) shown in a service's box; details may be empty."""
    details = []
    if service.gpu is not None:
        count = f"{service.gpu.count}x " if service.gpu.count > 1 else ""
        details.append(f"{count}{service.gpu.type}")
    if service.autoscale is not None:
        details.append(f"auto {service.autoscale.min}-{service.autoscale.max}")
    if service.rate_limit is not None:
        details.append(f"limit {_rate(service.rate_limit)}")
    return service.name, f"{service.kind} x{service.replicas}", " · ".join(details)


def edge_label(data: dict[str, Any], steps: int) -> str:
    """The policy text of one edge: ``"2. 2s, 3 tries, CB"``, ``"p=0.5"``, or ``""``.

    Several calls on one edge give one line each; a long line is broken once.

    ``data`` are the edge attributes of :func:`topologies.graph.call_graph`; ``steps`` is the
    number of steps of the caller (the step number is shown only when there are several).
    """
    texts = []
    for call in data["calls"]:
        parts = []
        if call.timeout is not None:
            parts.append(format_duration(call.timeout))
        if call.retry is not None and call.retry.attempts > 1:
            parts.append(f"{call.retry.attempts} tries")
        if call.circuit_breaker is not None:
            parts.append("CB")
        if call.fallback == "degrade":
            parts.append("degrade")
        if call.p < 1:
            parts.append(f"p={call.p:g}")
        texts.append(", ".join(parts))
    if steps > 1:
        texts = [f"{n + 1}. {t}".rstrip() for n, t in zip(data["steps"], texts, strict=True)]
    return "\n".join(_wrap(t) for t in texts if t)


def _wrap(text: str, width: int = 24) -> str:
    """Break a long label once, at the ", " nearest its middle, so it fits between layers."""
    if len(text) <= width:
        return text
    cuts = [i for i in range(len(text)) if text.startswith(", ", i)]
    if not cuts:
        return text
    cut = min(cuts, key=lambda i: abs(i - len(text) / 2))
    return text[: cut + 1] + "\n" + text[cut + 2:]


def _rate(per_second: float) -> str:
    """``40/s``; ``500/m`` when that is the rounder figure (as rate limits are often given)."""
    per_minute = per_second * 60
    if abs(per_second - round(per_second, 1)) < 1e-9 or abs(per_minute - round(per_minute)) > 1e-6:
        return f"{per_second:.3g}/s"
    return f"{round(per_minute)}/m"


def _client_label(topology: Topology) -> str:
    w = topology.workload
    if w.model == "closed":
        return f"client\n{w.users} users"
    if w.profile:
        peak = max(p.rate for p in w.profile)
        return f"client\nup to {_rate(peak)}"
    return f"client\n{_rate(w.rate or 0.0)}"


def positions(topology: Topology | nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Centre of every service box, in inches: x by call-depth layer, y by barycenter order.

    Within a layer, services are ordered by the mean height of their callers (callers drawn
    earlier first), ties kept in call order from the entry, so arrows cross as little as a
    simple layered drawing allows. Raises ValueError on a call cycle.
    """
    graph = topology if isinstance(topology, nx.DiGraph) else graphs.call_graph(topology)
    layer = graphs.layers(graph)
    first_seen = {n: i for i, n in enumerate(_call_order(graph))}
    by_layer: dict[int, list[str]] = {}
    for node, k in layer.items():
        by_layer.setdefault(k, []).append(node)
    seen = graphs.reachable(graph)
    pos: dict[str, tuple[float, float]] = {}
    for k in sorted(by_layer):
        def key(node: str) -> tuple[int, float, int]:
            ys = [pos[p][1] for p in graph.predecessors(node) if p in pos]
            bary = -sum(ys) / len(ys) if ys else 0.0
            return (node not in seen, bary, first_seen[node])

        nodes = sorted(by_layer[k], key=key)
        top = (len(nodes) - 1) * _ROW / 2
        for i, node in enumerate(nodes):
            pos[node] = (k * _COL, top - i * _ROW)
    return pos


def _call_order(graph: nx.DiGraph) -> list[str]:
    """Services in the order a depth-first walk of the calls from the entry meets them."""
    order: list[str] = []

    def visit(node: str) -> None:
        if node in order:
            return
        order.append(node)
        for succ in sorted(graph.successors(node), key=lambda s: graph.edges[node, s]["step"]):
            visit(succ)

    entry = graph.graph.get("entry")
    if entry in graph:
        visit(entry)
    for node in sorted(graph):
        visit(node)
    return order


def draw(topology: Topology, path: str | Path) -> Path:
    """Draw ``topology``'s call graph to ``path`` (``.png`` or ``.svg``); returns the path.

    Raises UsageError for another suffix or a graph with a call cycle.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot draw to {str(path)!r}: the file name must end in .png or .svg")
    graph = graphs.call_graph(topology)
    try:
        pos = positions(graph)
    except ValueError as exc:
        raise UsageError(f"cannot draw {topology.name}: {exc}") from None

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    entry = topology.entry
    client = (pos[entry][0] - _CLIENT_GAP, pos[entry][1]) if entry in pos else (-_CLIENT_GAP, 0)
    xs = [x for x, _ in pos.values()] + [client[0]]
    ys = [y for _, y in pos.values()] or [0.0]
    x0, x1 = min(xs) - 0.8 - _MARGIN, max(xs) + _BOX_W / 2 + _MARGIN
    y0, y1 = min(ys) - _BOX_H / 2 - _MARGIN, max(ys) + _BOX_H / 2 + _MARGIN
    width = max(x1 - x0, 7.0)
    x1 = x0 + width
    height = y1 - y0
    fig_h = height + _TITLE_H + _LEGEND_H
    fig = Figure(figsize=(width, fig_h), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, _LEGEND_H / fig_h, 1, height / fig_h))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_axis_off()

    boxes = {name: _draw_box(ax, graph, name, xy, name in graphs.reachable(graph))
             for name, xy in pos.items()}
    _draw_client(ax, topology, client, boxes.get(entry))
    labels = []
    for caller, callee in sorted(graph.edges, key=lambda e: (pos[e[0]][0], -pos[e[0]][1],
                                                             -pos[e[1]][1])):
        data = graph.edges[caller, callee]
        steps = len(graph.nodes[caller]["service"].calls)
        labels.append(_draw_edge(ax, pos, boxes, caller, callee, data,
                                 edge_label(data, steps)))
    _place_labels(fig, ax, [lab for lab in labels if lab is not None], pos)

    fig.text(0.5, 1 - 0.32 / fig_h, topology.name, ha="center", va="center",
             fontsize=15, fontweight="bold")
    for i, line in enumerate(t for t in (topology.description, _summary_line(topology, graph))
                             if t):
        fig.text(0.5, 1 - (0.64 + 0.24 * i) / fig_h, line, ha="center", va="center",
                 fontsize=9, color="#444444")
    _legend(fig, graph, width, fig_h)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".svg":
        import matplotlib

        with matplotlib.rc_context({"svg.hashsalt": "faultmesh", "svg.fonttype": "path"}):
            fig.savefig(path, format="svg", metadata={"Date": None})
    else:
        fig.savefig(path, format="png", dpi=150, metadata={"Software": None})
    return path


def _summary_line(topology: Topology, graph: nx.DiGraph) -> str:
    try:
        d = graphs.depth(graph)
    except ValueError:
        return ""
    return (f"{graph.number_of_nodes()} services, {graph.number_of_edges()} calls, "
            f"depth {d}, max fan-out {graphs.max_fan_out(graph)}")


def _draw_box(ax: Any, graph: nx.DiGraph, name: str, xy: tuple[float, float],
              reachable: bool) -> Any:
    from matplotlib.patches import FancyBboxPatch

    service: Service | None = graph.nodes[name]["service"]
    kind = graph.nodes[name]["kind"]
    x, y = xy
    dashed = kind == "external" or not reachable
    box = FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                         boxstyle="round,pad=0,rounding_size=0.12",
                         facecolor=KIND_COLOURS.get(kind or "", "#ffffff"),
                         edgecolor="#888888" if not reachable else "#333333",
                         linewidth=1.2, linestyle="--" if dashed else "-", zorder=3)
    ax.add_patch(box)
    if service is None:
        lines = (name, "undefined", "")
    else:
        lines = node_label(service)
    if not reachable:
        lines = (lines[0], lines[1], "unreachable")
    name_y = y + (0.17 if lines[2] else 0.1)
    ax.text(x, name_y, lines[0], ha="center", va="center", fontsize=10.5, fontweight="bold",
            zorder=4)
    ax.text(x, name_y - 0.23, lines[1], ha="center", va="center", fontsize=8.5, zorder=4)
    if lines[2]:
        ax.text(x, name_y - 0.43, lines[2], ha="center", va="center", fontsize=7.5,
                color="#333333", zorder=4)
    return box


def _draw_client(ax: Any, topology: Topology, xy: tuple[float, float], entry_box: Any) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    x, y = xy
    w, h = 1.1, 0.62
    box = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.3",
                         facecolor="#ffffff", edgecolor="#333333", linewidth=1.0, zorder=3)
    ax.add_patch(box)
    ax.text(x, y, _client_label(topology), ha="center", va="center", fontsize=8.5, zorder=4)
    if entry_box is not None:
        ax.add_patch(FancyArrowPatch((x, y), (x + _CLIENT_GAP, y), patchA=box, patchB=entry_box,
                                     arrowstyle="-|>", mutation_scale=14, linewidth=1.6,
                                     color="#222222", zorder=2))


def _bezier(p0: tuple[float, float], p2: tuple[float, float], rad: float, t: float
            ) -> tuple[float, float]:
    """A point of matplotlib's ``arc3`` curve from ``p0`` to ``p2`` (data units = display)."""
    dx, dy = p2[0] - p0[0], p2[1] - p0[1]
    cx, cy = (p0[0] + p2[0]) / 2 + rad * dy, (p0[1] + p2[1]) / 2 - rad * dx
    u = 1 - t
    return (u * u * p0[0] + 2 * u * t * cx + t * t * p2[0],
            u * u * p0[1] + 2 * u * t * cy + t * t * p2[1])


def _inside_box(point: tuple[float, float], centre: tuple[float, float], pad: float = 0.08
                ) -> bool:
    return (abs(point[0] - centre[0]) <= _BOX_W / 2 + pad
            and abs(point[1] - centre[1]) <= _BOX_H / 2 + pad)


def _crossings(p0: tuple[float, float], p2: tuple[float, float], rad: float,
               others: Iterable[tuple[float, float]]) -> int:
    samples = [_bezier(p0, p2, rad, i / 40) for i in range(1, 40)]
    return sum(1 for c in others for s in samples if _inside_box(s, c))


def _draw_edge(ax: Any, pos: dict[str, tuple[float, float]], boxes: dict[str, Any],
               caller: str, callee: str, data: dict[str, Any], label: str) -> Any:
    from matplotlib.patches import FancyArrowPatch

    p0, p2 = pos[caller], pos[callee]
    others = [c for n, c in pos.items() if n not in (caller, callee)]
    rad = 0.0
    if _crossings(p0, p2, 0.0, others):
        options = [r * s for r in (0.12, 0.2, 0.3, 0.42) for s in (1, -1)]
        rad = min(options, key=lambda r: (_crossings(p0, p2, r, others), abs(r)))
    arrow = FancyArrowPatch(p0, p2, patchA=boxes[caller], patchB=boxes[callee],
                            connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                            mutation_scale=13, linewidth=1.3, color="#444444",
                            linestyle=(0, (4, 3)) if data["parallel"] else "-",
                            shrinkA=1, shrinkB=2, zorder=2)
    ax.add_patch(arrow)
    if not label:
        return None
    # The visible stretch of the curve: outside both end boxes.
    ts = [i / 100 for i in range(1, 100)]
    visible = [t for t in ts if not _inside_box(_bezier(p0, p2, rad, t), p0, 0.0)
               and not _inside_box(_bezier(p0, p2, rad, t), p2, 0.0)]
    lo, hi = (visible[0], visible[-1]) if visible else (0.3, 0.7)
    mid = (lo + hi) / 2
    span = hi - lo
    candidates = [mid + f * span for f in (0, -0.12, 0.12, -0.22, 0.22, -0.3, 0.3, -0.36, 0.36)]
    text = ax.text(*_bezier(p0, p2, rad, mid), label, ha="center", va="center", fontsize=7.5,
                   color="#111111", zorder=5,
                   bbox={"boxstyle": "round,pad=0.18", "facecolor": "white",
                         "edgecolor": "#bbbbbb", "linewidth": 0.5, "alpha": 0.95})
    return text, [_bezier(p0, p2, rad, t) for t in candidates]


def _place_labels(fig: Any, ax: Any, labels: Sequence[tuple[Any, list[tuple[float, float]]]],
                  pos: dict[str, tuple[float, float]]) -> None:
    """Slide each edge label along its arrow to the first spot clear of boxes and labels."""
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    taken: list[tuple[float, float, float, float]] = [
        (x - _BOX_W / 2, y - _BOX_H / 2, x + _BOX_W / 2, y + _BOX_H / 2) for x, y in pos.values()]

    def extent(text: Any) -> tuple[float, float, float, float]:
        bb = text.get_window_extent(renderer).expanded(1.0, 1.0)
        (a, b), (c, d) = to_data.transform([(bb.x0, bb.y0), (bb.x1, bb.y1)])
        pad = 0.05
        return (a - pad, b - pad, c + pad, d + pad)

    def overlap(r: tuple[float, float, float, float], s: tuple[float, float, float, float]
                ) -> float:
        w = min(r[2], s[2]) - max(r[0], s[0])
        h = min(r[3], s[3]) - max(r[1], s[1])
        return w * h if w > 0 and h > 0 else 0.0

    for text, spots in labels:
        best, best_cost = spots[0], math.inf
        for spot in spots:
            text.set_position(spot)
            rect = extent(text)
            cost = sum(overlap(rect, other) for other in taken)
            if cost < best_cost:
                best, best_cost = spot, cost
            if cost == 0:
                break
        text.set_position(best)
        taken.append(extent(text))


def _legend(fig: Any, graph: nx.DiGraph, width: float, fig_h: float) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = sorted({k for _, k in graph.nodes(data="kind") if k}, key=list(KIND_COLOURS).index)
    handles: list[Any] = [Patch(facecolor=KIND_COLOURS[k], edgecolor="#333333", label=k)
                          for k in kinds]
    handles.append(Line2D([], [], color="#444444", label="call (timeout, tries, CB = breaker)"))
    if any(p for _, _, p in graph.edges(data="parallel")):
        handles.append(Line2D([], [], color="#444444", linestyle=(0, (4, 3)),
                              label="parallel call"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 0.1 / fig_h), handlelength=1.8,
               columnspacing=1.2)
