"""YAML read into plain values that remember where they came from.

Mappings become :class:`Located` dicts and sequences :class:`LocatedList` lists that carry
the 1-based line of themselves and of each of their items, so validation can report
``FILE:LINE: path: message``. Duplicate keys are refused (PyYAML silently keeps the last),
and alias expansion is bounded so a "billion laughs" document is refused in milliseconds.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import Problem, TopologyError

__all__ = ["Located", "LocatedList", "read_yaml", "parse_yaml", "MAX_NODES", "MAX_BYTES"]

MAX_NODES = 200_000  # after alias expansion; a large real topology has a few thousand
MAX_BYTES = 10 * 1024 * 1024


class Located(dict):
    """A YAML mapping with the line of the mapping (``line``) and of each key (``lines``)."""

    line: int = 0
    lines: dict[str, int]

    def line_of(self, key: object) -> int:
        return getattr(self, "lines", {}).get(key, self.line)  # type: ignore[arg-type]


class LocatedList(list):
    """A YAML sequence with the line of the sequence and of each item."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.nodes = 0
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")

    def fail(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, "", message))

    def build(self, node: yaml.Node) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise TopologyError([Problem(self.file, node.start_mark.line + 1, "",
                                         f"document expands to more than {MAX_NODES} nodes "
                                         "(a YAML alias bomb?); refused")])
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            out = LocatedList()
            out.line = node.start_mark.line + 1
            out.lines = []
            for item in node.value:
                out.append(self.build(item))
                out.lines.append(item.start_mark.line + 1)
            return out
        try:
            return self._scalars.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001 - PyYAML raises anything on bad input
            # a tag the value does not fit: `!!int two`, `!!float x`
            self.fail(node.start_mark.line + 1, f"bad value: {getattr(exc, 'problem', exc)}")
            return None

    def _mapping(self, node: yaml.MappingNode) -> Located:
        out = Located()
        out.line = node.start_mark.line + 1
        out.lines = {}
        merged: list[tuple[Any, Any, int]] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                    value_node]
                for source in sources:
                    built = self.build(source)
                    if not isinstance(built, Located):
                        self.fail(line, "a merge key (<<) needs a mapping or a list of mappings")
                        continue
                    merged.extend((k, v, built.line_of(k)) for k, v in built.items())
                continue
            # Keys are names, read as written: YAML 1.1 would make `on:` (a retry field) True.
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(line, "mapping keys must be plain names, not a list or mapping")
                continue
            key = key_node.value
            if key in out:
                self.fail(line, f"duplicate key {key!r} (first given on line {out.lines[key]})")
                continue
            out[key] = self.build(value_node)
            out.lines[key] = line
        for key, value, line in merged:  # explicit keys win over merged ones
            if key not in out:
                out[key] = value
                out.lines[key] = line
        return out


def parse_yaml(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document into located values; raise ``TopologyError`` on any problem."""
    if len(text) > MAX_BYTES:
        raise TopologyError([Problem(file, 0, "", f"file is larger than {MAX_BYTES} bytes")])
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise TopologyError([Problem(file, line, "", f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([Problem(file, 0, "", f"not valid YAML: {exc}")]) from None
    if node is None:
        raise TopologyError([Problem(file, 1, "", "file is empty (expected a topology mapping)")])
    builder = _Builder(file)
    value = builder.build(node)
    if builder.problems:
        raise TopologyError(builder.problems)
    return value


def read_yaml(path: str) -> Any:
    """Read and parse a YAML file, turning every I/O or decoding failure into a TopologyError."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError([Problem(path, 0, "", "no such file")]) from None
    except IsADirectoryError:
        raise TopologyError([Problem(path, 0, "", "is a directory, not a topology file")]) from None
    except OSError as exc:
        raise TopologyError([Problem(path, 0, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TopologyError([Problem(path, 0, "", f"not UTF-8 text ({exc.reason})")]) from None
    return parse_yaml(text, path)
