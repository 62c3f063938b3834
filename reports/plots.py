"""The figures of a report, drawn with matplotlib and returned as inline SVG text.

matplotlib is imported inside the functions (importing ``reports`` stays cheap) and used
through ``matplotlib.figure.Figure`` with no pyplot: no GUI backend is touched, which is the
Agg-style headless drawing a server or CI runner needs. Every axis says its unit; fault
windows from faults.csv are shaded in every plot over time.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from .metrics import llm_windowed, service_series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Analysis

__all__ = [
    "PALETTE",
    "new_figure",
    "to_svg",
    "shade_faults",
    "call_graph",
    "latency_over_time",
    "throughput_over_time",
    "service_panels",
    "llm_timings",
    "cascade_chart",
    "cost_chart",
    "run_figures",
]

PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04",
           "#db2777", "#4b5563", "#65a30d"]
FAULT_COLOUR = "#f87171"
OK, WARN, BAD = "#16a34a", "#f59e0b", "#dc2626"
WIDTH = 11.0  # inches: ~1100 px at 100 dpi, fits a 1280 px laptop screen with margins


def new_figure(height: float = 3.6, rows: int = 1, sharex: bool = True
               ) -> tuple[Figure, list[Axes]]:
    """A figure the report's width with ``rows`` stacked axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#e5e7eb", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def to_svg(fig: Figure, name: str) -> str:
    """The figure as an ``<svg>`` element (text kept as text, ids unique to ``name``)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                 rf'<svg\1 class="plot" data-figure="{name}" role="img"', svg, count=1)
    return svg


def shade_faults(ax: Axes, intervals: list[tuple[float, float]], label: bool = True) -> None:
    """Shade each fault window in red (one legend entry)."""
    for i, (lo, hi) in enumerate(intervals):
        hi = hi if hi > lo else lo + 0.5
        ax.axvspan(lo, hi, color=FAULT_COLOUR, alpha=0.18, lw=0,
                   label="fault active" if label and i == 0 else None)


def _time_axis(ax: Axes, a: Analysis) -> None:
    ax.set_xlim(0, max(a.result.duration, 1.0))
    ax.set_xlabel("time since start of run (s)")
    if a.result.warmup > 0:
        ax.axvspan(0, a.result.warmup, color="#9ca3af", alpha=0.12, lw=0, label="warmup")


def _legend(ax: Axes, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=kwargs.pop("loc", "upper left"), fontsize=8, frameon=False, **kwargs)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")


def call_graph(a: Analysis) -> str:
    """Services as nodes (coloured by blast radius), calls as arrows, left to right by depth."""
    import networkx as nx

    g = nx.DiGraph()
    topo = a.result.topology
    if topo is not None:
        g.add_node("client")
        g.add_edge("client", topo.entry)
        for name, svc in topo.services.items():
            g.add_node(name)
            for call in svc.edges():
                g.add_edge(name, call.to)
    if len(a.result.calls):
        for caller, callee in a.result.calls[["caller", "callee"]].drop_duplicates().itertuples(
                index=False):
            g.add_edge(caller, callee)
    root = "client" if "client" in g else next(iter(g), None)
    depth = nx.single_source_shortest_path_length(g, root) if root is not None else {}
    top = max(depth.values(), default=0)
    layers: dict[int, list[str]] = {}
    for node in g.nodes:
        layers.setdefault(depth.get(node, top + 1), []).append(node)
    tallest = max((len(v) for v in layers.values()), default=1)
    fig, (ax,) = new_figure(height=max(2.6, 0.95 * tallest + 1.0))
    ax.grid(False)
    ax.set_axis_off()
    if not len(g):
        _empty(ax, "no services in this result")
        return to_svg(fig, "call-graph")
    pos = {}
    for layer, nodes in layers.items():
        for i, node in enumerate(sorted(nodes)):
            pos[node] = (float(layer), (len(nodes) - 1) / 2 - i)
    impact = a.impact.set_index("service") if len(a.impact) else pd.DataFrame()
    for u, v in g.edges:
        ax.annotate("", xy=pos[v], xytext=pos[u], arrowprops={
            "arrowstyle": "-|>", "color": "#6b7280", "lw": 1.2, "shrinkA": 19, "shrinkB": 19})
    for node, (x, y) in pos.items():
        colour, lines = "#e5e7eb", []
        if node in impact.index:
            row = impact.loc[node]
            colour = OK
            if row["affected"]:
                colour = BAD if "error_rate" in row["reason"] else WARN
            if row["fault_calls"]:
                lines.append(f"errors {row['baseline_error_rate']:.1%} → "
                             f"{row['fault_error_rate']:.1%}")
                if not math.isnan(row["p99_ratio"]):
                    lines.append(f"p99 ×{row['p99_ratio']:.1f}")
        if node in a.faulted:
            colour = BAD
            lines.insert(0, "FAULTED")
        ax.scatter([x], [y], s=1700, color=colour, edgecolor="#374151", zorder=3)
        ax.text(x, y, node, ha="center", va="center", fontsize=7.5, zorder=4, weight="bold")
        if lines:
            ax.text(x + 0.13, y, "\n".join(lines), ha="left", va="center", fontsize=7.5,
                    color="#374151", zorder=4)
    ax.set_xlim(-0.3, max(p[0] for p in pos.values()) + 0.75)
    ax.set_ylim(-(tallest - 1) / 2 - 0.6, (tallest - 1) / 2 + 0.5)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=BAD, label="faulted / errors rose"),
                       Patch(color=WARN, label="p99 rose"), Patch(color=OK, label="unaffected"),
                       Patch(color="#e5e7eb", label="no calls during faults")],
              loc="lower left", fontsize=8, frameon=False, ncols=4,
              bbox_to_anchor=(0, -0.02))
    return to_svg(fig, "call-graph")


def latency_over_time(a: Analysis) -> str:
    """Client latency percentiles per 5 s window (log scale when they span > 30x)."""
    fig, (ax,) = new_figure()
    w = a.windows
    for col, colour in (("p50", PALETTE[0]), ("p90", PALETTE[1]), ("p99", PALETTE[4])):
        ax.plot(w["t_mid"], w[col], marker=".", color=colour, label=col)
    shade_faults(ax, a.intervals)
    _time_axis(ax, a)
    ax.set_ylabel("latency (s)")
    values = w[["p50", "p99"]].stack().dropna()
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 30:
        ax.set_yscale("log")
    _legend(ax)
    return to_svg(fig, "latency")


def throughput_over_time(a: Analysis) -> str:
    """Successful and failed requests per second per 5 s window, and the error rate."""
    fig, (ax, ax2) = new_figure(height=4.6, rows=2)
    w = a.windows
    ax.stackplot(w["t_mid"], w["throughput"], w["error_throughput"],
                 colors=[PALETTE[2], PALETTE[4]], labels=["successful", "failed"], alpha=0.85)
    ax.set_ylabel("requests (req/s)")
    ax2.plot(w["t_mid"], w["error_rate"] * 100, color=PALETTE[4], marker=".", label="error rate")
    ax2.set_ylabel("error rate (%)")
    ax2.set_ylim(bottom=0)
    for axis in (ax, ax2):
        shade_faults(axis, a.intervals, label=axis is ax)
        _time_axis(axis, a)
    ax.set_xlabel("")
    _legend(ax)
    return to_svg(fig, "throughput")


def service_panels(a: Analysis) -> str:
    """Per service over time: utilization (%), queued requests, replicas (ready dashed)."""
    ts = a.result.timeseries
    fig, axes = new_figure(height=6.6, rows=3)
    specs = (("utilization", "utilization (%)", 100.0), ("queued", "queued (requests)", 1.0),
             ("replicas", "replicas (count)", 1.0))
    services = sorted(ts["service"].dropna().unique()) if len(ts) else []
    for ax, (col, label, scale) in zip(axes, specs, strict=True):
        table = service_series(ts, col)
        for i, svc in enumerate(services):
            if svc in table.columns:
                ax.plot(table.index, table[svc] * scale, color=PALETTE[i % len(PALETTE)],
                        label=svc, drawstyle="steps-post" if col == "replicas" else "default")
        if col == "replicas":
            ready = service_series(ts, "ready_replicas")
            for i, svc in enumerate(services):
                if svc in ready.columns:
                    ax.plot(ready.index, ready[svc], color=PALETTE[i % len(PALETTE)], ls="--",
                            lw=0.9, drawstyle="steps-post")
        if table.empty:
            _empty(ax, f"no {col} in timeseries.csv")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        shade_faults(ax, a.intervals, label=False)
        _time_axis(ax, a)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    _legend(axes[0], ncols=min(5, max(1, len(services))), loc="upper right")
    return to_svg(fig, "services")


def llm_timings(a: Analysis) -> str | None:
    """Time to first token and time per output token of LLM calls per 5 s window; None
    without LLM calls."""
    lw = llm_windowed(a.result.calls)
    if not len(lw):
        return None
    fig, (ax, ax2) = new_figure(height=4.8, rows=2)
    for i, (svc, g) in enumerate(lw.groupby("service")):
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(g["t"] + 2.5, g["ttft_p50"], color=colour, label=f"{svc} p50")
        ax.plot(g["t"] + 2.5, g["ttft_p99"], color=colour, ls="--", label=f"{svc} p99")
        ax2.plot(g["t"] + 2.5, g["tpot_p50"] * 1000, color=colour, label=f"{svc} p50")
        ax2.plot(g["t"] + 2.5, g["tpot_p99"] * 1000, color=colour, ls="--", label=f"{svc} p99")
    ax.set_ylabel("time to first token (s)")
    ax2.set_ylabel("time per output token (ms)")
    for axis in (ax, ax2):
        axis.set_ylim(bottom=0)
        shade_faults(axis, a.intervals, label=axis is ax)
        _time_axis(axis, a)
    ax.set_xlabel("")
    _legend(ax, ncols=3)
    return to_svg(fig, "llm")


def cascade_chart(a: Analysis) -> str | None:
    """One row per affected service, one bar per episode of threshold crossing."""
    tl = a.timeline
    if not len(tl):
        return None
    fig, (ax,) = new_figure(height=1.2 + 0.45 * len(tl))
    for i, row in enumerate(tl.itertuples(index=False)):
        colour = BAD if row.metric == "error_rate" else WARN
        for lo, hi in row.episodes:
            ax.barh(i, hi - lo, left=lo, color=colour, height=0.55, zorder=3)
            ax.text(lo, i, f" {lo:g} s", va="center", ha="left", fontsize=8, zorder=4)
    ax.set_yticks(range(len(tl)), list(tl["service"]))
    ax.invert_yaxis()
    shade_faults(ax, a.intervals)
    _time_axis(ax, a)
    ax.set_ylabel("service")
    _legend(ax, loc="lower right")
    return to_svg(fig, "cascade")


def cost_chart(a: Analysis) -> str | None:
    """Cost by service (USD, bars) and cumulative cost over time (USD, stacked)."""
    by = {k: v for k, v in a.cost["by_service"].items() if not math.isnan(v)}
    ct = a.cost_timeline
    if not by and not len(ct):
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, 3.6), dpi=100, layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1, 2])
    names = list(by)
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(names) | set(
        ct["service"] if len(ct) else [])))}
    ax.barh(names, [by[n] for n in names], color=[colours[n] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("cost (USD)")
    ax.set_title("by service", fontsize=9)
    if len(ct):
        pivot = ct.pivot_table(index="t", columns="service", values="cumulative").ffill()
        ax2.stackplot(pivot.index, *[pivot[c].fillna(0) for c in pivot.columns],
                      labels=list(pivot.columns), colors=[colours[c] for c in pivot.columns])
        ax2.set_ylabel("cumulative cost (USD)")
        ax2.set_xlabel("time since start of run (s)")
        shade_faults(ax2, a.intervals)
        _legend(ax2)
    else:
        _empty(ax2, "no prices in topology.yaml: no cost over time")
    ax2.set_title("over time (replicas x price)", fontsize=9)
    for axis in (ax, ax2):
        axis.grid(True, color="#e5e7eb")
    return to_svg(fig, "cost")


def run_figures(a: Analysis) -> dict[str, str]:
    """Every figure of a one-run report, by name (figures without data left out)."""
    makers: dict[str, Callable[[Analysis], str | None]] = {
        "call_graph": call_graph, "latency": latency_over_time,
        "throughput": throughput_over_time, "services": service_panels,
        "llm": llm_timings, "cascade": cascade_chart, "cost": cost_chart,
    }
    out = {}
    for name, make in makers.items():
        svg = make(a)
        if svg is not None:
            out[name] = svg
    return out
