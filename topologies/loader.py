"""Reading, overriding and writing topology files.

``load`` validates the whole file before returning: every problem is collected and raised
together in one :class:`TopologyError`, one ``FILE:LINE: path: message`` line each.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import Problem, TopologyError
from .kinds import INVALID, Checker
from .model import Topology
from .references import check_references
from .schema import TOPOLOGY
from .yamltree import Located, parse_yaml, read_yaml

__all__ = ["load", "loads", "from_dict", "override", "to_dict", "dump", "apply_overrides",
           "split_path"]


def load(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Topology:
    """Read, override (``{"services.llm.replicas": 4}``) and validate a topology file."""
    path = os.fspath(path)
    raw = read_yaml(path)
    return from_dict(raw, file=path, overrides=overrides)


def loads(text: str, file: str = "<string>", overrides: Mapping[str, Any] | None = None
          ) -> Topology:
    """Validate a topology given as YAML text."""
    return from_dict(parse_yaml(text, file), file=file, overrides=overrides)


def from_dict(raw: Any, *, file: str = "<dict>", overrides: Mapping[str, Any] | None = None
              ) -> Topology:
    """Validate a topology given as (located or plain) nested dicts and lists."""
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"{type(raw).__name__} {raw!r}"[:60]
        raise TopologyError([Problem(file, getattr(raw, "line", 1), "",
                                     f"the top level must be a mapping of fields, not {kind}")])
    if overrides:
        raw = apply_overrides(raw, overrides, file)
    if "name" not in raw:
        raw = Located(raw) if not isinstance(raw, Located) else copy.copy(raw)
        stem = os.path.splitext(os.path.basename(file))[0].strip("<>") or "topology"
        raw["name"] = stem
    ck = Checker(file, os.path.dirname(os.path.abspath(file)) if os.path.exists(file) else ".")
    topo = TOPOLOGY.convert(raw, "", getattr(raw, "line", 0), ck)
    check_references(raw, ck)
    if ck.problems or topo is INVALID:
        raise TopologyError(ck.problems)
    import dataclasses

    return dataclasses.replace(topo, source=file)


def apply_overrides(raw: Any, overrides: Mapping[str, Any], file: str = "<dict>") -> Any:
    """A copy of ``raw`` with each path set; string values are read as YAML scalars.

    A path is written as the validator prints one, ``services.gateway.calls[2].timeout``
    (``calls.2.timeout`` works too). Every segment but the last must already exist, so a
    misspelt path is an error rather than a new, silently ignored field; a misspelt last
    segment is left to the validation, which names the field it was probably meant to be.
    """
    from .kinds import join, suggest

    raw = copy.deepcopy(raw)
    problems = []
    for dotted, value in overrides.items():
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                pass  # keep the text; validation will judge it
        parts = split_path(dotted)
        node = raw
        where = "--set " + dotted
        at = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            key: Any = int(part) if isinstance(node, list) and _INDEX.fullmatch(part) else part
            at = join(at, key)
            if isinstance(node, list):
                if not isinstance(key, int) or not -len(node) <= key < len(node):
                    have = f"0..{len(node) - 1}" if node else "none, the list is empty"
                    problems.append(Problem(file, 0, at, f"{where}: no item {part} in this list "
                                            f"(items: {have})"))
                    break
            elif not isinstance(node, dict):
                problems.append(Problem(file, 0, at.rpartition(".")[0] or at,
                                        f"{where}: not a mapping, cannot set {part!r}"))
                break
            elif not last and key not in node:
                problems.append(Problem(file, 0, at,
                                        f"{where}: no such field{suggest(part, node)}"))
                break
            if last:
                node[key] = value
            else:
                node = node[key]
    if problems:
        raise TopologyError(problems)
    return raw


_INDEX = re.compile(r"-?[0-9]+")


def split_path(path: str) -> list[str]:
    """``services.gateway.calls[2].timeout`` -> ``["services", "gateway", "calls", "2",
    "timeout"]``: the validator's notation and the plain dotted one read alike."""
    return re.sub(r"\[\s*(-?[0-9]+)\s*\]", r".\1", path.strip()).split(".")


def to_dict(topology: Topology) -> dict[str, Any]:
    """The resolved topology as plain YAML-ready data: defaults filled, units in base units."""
    return TOPOLOGY.dump(topology, skip=())


def dump(topology: Topology) -> str:
    """The resolved topology as YAML text (loads back to an equal model)."""
    header = ("# resolved faultmesh topology: every default filled in; durations in seconds,\n"
              "# rates per second, sizes in bytes, shares as fractions\n")
    return header + yaml.safe_dump(to_dict(topology), sort_keys=False, allow_unicode=True,
                                   width=100)


def override(topology: Topology, overrides: Mapping[str, Any]) -> Topology:
    """A re-validated copy of ``topology`` with dotted-path overrides applied."""
    if not overrides:
        return topology
    topo = from_dict(to_dict(topology), file="--set", overrides=overrides)
    import dataclasses

    return dataclasses.replace(topo, source=topology.source)
