"""Rules across the whole file: every service a call, the entry or a fault names exists,
edges named by faults exist, the call graph has no cycle, and faults fit the run.

These run on the raw (located) document, so they are reported even when other parts of
the file are broken: the user sees every problem at once. Ill-typed parts are skipped here;
the field validation reports them.
"""

from __future__ import annotations

from typing import Any

from . import units
from .kinds import Checker, line_of, suggest

__all__ = ["check_references"]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _seconds(value: Any, default: float | None) -> float | None:
    try:
        return units.parse_duration(value) if value is not None else default
    except ValueError:
        return None


def check_references(raw: Any, ck: Checker) -> None:
    """Report every broken reference in the raw topology document to ``ck``."""
    from .graph import find_cycle_in

    services = _mapping(raw.get("services"))
    names = [n for n in services if isinstance(n, str)]

    def unknown(name: object) -> str:
        return f"unknown service {name!r}{suggest(str(name), names)}"

    # an empty (or null) map is a problem of its own, and no entry can name a service in it;
    # only a services field of the wrong type leaves the entry to the field validation
    declared = raw.get("services")
    if "services" in raw and (declared is None or declared == {}):
        ck.report(line_of(raw, "services"), "services",
                  "no services: a topology needs at least its entry service")
    entry = raw.get("entry")
    if isinstance(entry, str) and isinstance(declared, dict | None) and entry not in services:
        ck.report(line_of(raw, "entry"), "entry", unknown(entry))

    edges: dict[tuple[str, str], tuple[str, int]] = {}
    for name, svc in services.items():
        calls = _list(_mapping(svc).get("calls"))
        for i, step in enumerate(calls):
            step = _mapping(step)
            group = _list(step.get("parallel")) if "parallel" in step else None
            items = [(f"services.{name}.calls[{i}]", step, line_of(calls, i))] if group is None \
                else [(f"services.{name}.calls[{i}].parallel[{j}]", _mapping(c),
                       line_of(group, j)) for j, c in enumerate(group)]
            for path, call, line in items:
                to = call.get("to")
                if not isinstance(to, str):
                    continue
                line = line_of(call, "to", line)
                if to not in services:
                    ck.report(line, path + ".to", unknown(to))
                else:
                    edges.setdefault((name, to), (path, line))

    cycle = find_cycle_in(edges)
    if cycle:
        path, line = edges[(cycle[0], cycle[1])]
        ck.report(line, path, "call cycle: " + " -> ".join(cycle))

    duration = _seconds(_mapping(raw.get("workload")).get("duration"), 300.0)
    for sname, scenario in _mapping(raw.get("scenarios")).items():
        faults = _list(_mapping(scenario).get("faults"))
        for k, fault in enumerate(faults):
            fault = _mapping(fault)
            path, fline = f"scenarios.{sname}.faults[{k}]", line_of(faults, k)
            target = fault.get("target")
            if isinstance(target, str):
                tline = line_of(fault, "target", fline)
                if "->" in target:
                    edge = tuple(part.strip() for part in target.split("->", 1))
                    bad = [n for n in edge if n not in services]
                    for n in bad:
                        ck.report(tline, path + ".target", unknown(n))
                    if not bad and edge not in edges:
                        ck.report(tline, path + ".target",
                                  f"no such edge: {edge[0]} does not call {edge[1]}")
                elif target not in services:
                    ck.report(tline, path + ".target", unknown(target))
            start = _seconds(fault.get("start"), 0.0)
            if start is not None and duration is not None and start >= duration:
                ck.report(line_of(fault, "start", fline), path + ".start",
                          f"starts at {start:g}s, after the workload ends ({duration:g}s)")
            _check_replicas(fault, services, path, fline, ck)
            _check_memory(fault, services, path, fline, ck)


def _check_replicas(fault: dict, services: dict, path: str, line: int, ck: Checker) -> None:
    target, count = fault.get("target"), fault.get("replicas")
    if not isinstance(target, str) or not isinstance(count, int) or isinstance(count, bool):
        return
    svc = _mapping(services.get(target.split("->")[-1].strip()))
    if not svc:
        return
    replicas = svc.get("replicas", 1)
    most = max(replicas if isinstance(replicas, int) else 0,
               _mapping(svc.get("autoscale")).get("max", 0) if svc.get("autoscale") else 0)
    if isinstance(most, int) and count > most:
        ck.report(line_of(fault, "replicas", line), path + ".replicas",
                  f"{count} replicas, but {target} has at most {most}")


def _check_memory(fault: dict, services: dict, path: str, line: int, ck: Checker) -> None:
    """A memory fault compares the limit with what a replica holds: the service must say."""
    target = fault.get("target")
    if fault.get("type") != "memory" or not isinstance(target, str):
        return
    name = target.split("->")[-1].strip()
    if name in services and _mapping(services[name]).get("memory") is None:
        ck.report(line_of(fault, "target", line), path + ".target",
                  f"a memory fault needs services.{name}.memory (base, per_request: what a "
                  "replica holds), which is not given")
