"""Declarative field kinds: one description per field drives validation, defaults,
conversion to the typed model, writing back to YAML and the JSON Schema.

A kind converts a located YAML value (``yamltree``) into a model value, or reports every
problem it finds to a :class:`Checker` and returns :data:`INVALID`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Problem
from .model import FrozenMap

__all__ = [
    "INVALID", "Checker", "Kind", "Scalar", "Enum", "ListOf", "MapOf", "Field",
    "Record", "describe", "suggest", "line_of", "join", "check_known",
]


class _Sentinel:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


INVALID: Any = _Sentinel("INVALID")


class Checker:
    """Collects the problems of one file as validation walks it."""

    def __init__(self, file: str, base_dir: str = "."):
        self.file = file
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    def report(self, line: int, path: str, message: str) -> Any:
        self.problems.append(Problem(self.file, line, path, message))
        return INVALID


def line_of(container: object, key: object, default: int = 0) -> int:
    """The line of ``container[key]`` when the container came from YAML."""
    finder = getattr(container, "line_of", None)
    return finder(key) if finder else default


def describe(value: object) -> str:
    """How a wrong value is named in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"the text {value!r}" if len(value) < 60 else "a long text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_known(value: dict, fields: Iterable[str], path: str, line: int, ck: Checker) -> bool:
    """Report every key of ``value`` that is not one of ``fields``; True when there is none."""
    known = tuple(fields)
    unknown = [key for key in value if key not in known]
    for key in unknown:
        ck.report(line_of(value, key, line), join(path, key), f"unknown field{suggest(key, known)}")
    return not unknown


class Kind:
    """What values a field accepts and what they become."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def schema(self) -> dict[str, Any]:
        return {}


class Scalar(Kind):
    """A single value parsed by ``parse`` (which raises ValueError), with optional bounds."""

    def __init__(self, parse: Callable[[Any], Any], schema: dict[str, Any], *,
                 lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 nullable: bool = False, unit: str = ""):
        self.parse, self._schema = parse, schema
        self.lo, self.hi, self.lo_open, self.nullable, self.unit = lo, hi, lo_open, nullable, unit

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if value is None or (self.nullable and value == "unlimited"):
            if self.nullable:
                return None
            return ck.report(line, path, "needs a value, got nothing (null)")
        try:
            out = self.parse(value)
        except ValueError as exc:
            return ck.report(line, path, str(exc))
        if self.lo is not None and (out < self.lo or (self.lo_open and out == self.lo)):
            op = "greater than" if self.lo_open else "at least"
            return ck.report(line, path, f"must be {op} {self._show(self.lo)}, got {value}")
        if self.hi is not None and out > self.hi:
            return ck.report(line, path, f"must be at most {self._show(self.hi)}, got {value}")
        return out

    def _show(self, bound: float) -> str:
        return f"{bound:g}{self.unit}"

    def schema(self) -> dict[str, Any]:
        s = dict(self._schema)
        if s.get("type") in ("integer", "number"):
            if self.lo is not None:
                s["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
            if self.hi is not None:
                s["maximum"] = self.hi
        if self.nullable:
            s = {"anyOf": [s, {"type": "null"}, {"const": "unlimited"}]}
        return s


class Enum(Kind):
    """One word out of a fixed set."""

    def __init__(self, choices: Iterable[str]):
        self.choices = tuple(choices)

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `on: [5xx, 429]`: YAML reads 429 as a number
        if isinstance(value, str) and value in self.choices:
            return value
        shown = describe(value)
        hint = suggest(value, self.choices) if isinstance(value, str) else ""
        return ck.report(line, path, f"unknown value {shown}{hint}; expected one of: "
                         + ", ".join(self.choices))

    def schema(self) -> dict[str, Any]:
        return {"enum": [*self.choices, *(int(c) for c in self.choices if c.isdigit())]}


class ListOf(Kind):
    """A list of items of one kind, kept as a tuple."""

    def __init__(self, item: Kind, *, min_items: int = 0, nullable: bool = False):
        self.item, self.min_items, self.nullable = item, min_items, nullable

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, list):
            return ck.report(line, path, f"expected a list, got {describe(value)}")
        if len(value) < self.min_items:
            return ck.report(line, path, f"needs at least {self.min_items} item(s)")
        out = [self.item.convert(v, join(path, i), line_of(value, i, line), ck)
               for i, v in enumerate(value)]
        return INVALID if any(v is INVALID for v in out) else tuple(out)

    def dump(self, value: Any) -> Any:
        return None if value is None else [self.item.dump(v) for v in value]

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema(), "minItems": self.min_items}


class MapOf(Kind):
    """Named records (``services``, ``scenarios``): the key becomes the record's ``name``."""

    NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

    def __init__(self, item: Record):
        self.item = item

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ck.report(line, path, f"expected a mapping of names, got {describe(value)}")
        import re

        out = {}
        for key, item in value.items():
            at = join(path, key)
            if not re.match(self.NAME, key) or "->" in key:
                ck.report(line_of(value, key, line), at, "names use letters, digits, '_', '-', "
                          "'.' and start with a letter or digit")
                continue
            out[key] = self.item.convert(item, at, line_of(value, key, line), ck, name=key)
        return INVALID if any(v is INVALID for v in out.values()) else FrozenMap(out)

    def dump(self, value: Any) -> Any:
        return {k: self.item.dump(v, skip=("name",)) for k, v in value.items()}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "propertyNames": {"pattern": self.NAME},
                "additionalProperties": self.item.schema()}


@dataclass
class Field:
    """One field of a record: its kind, whether it must be given, and a line of help.

    Defaults are the model dataclass's own, so they are written down once.
    """

    kind: Kind
    help: str = ""
    required: bool = False


Check = Callable[[Any, Mapping[str, Any]], Iterable[tuple[str, str]]]


class Record(Kind):
    """A mapping with known fields, converted to a dataclass ``cls``.

    ``check(obj, raw)`` yields ``(field, message)`` for rules across fields. ``name`` is
    passed to ``cls`` when the record sits in a :class:`MapOf`. ``finish(obj)`` fills
    defaults that depend on other fields, once the record is known to be valid.
    """

    def __init__(self, cls: type, fields: dict[str, Field], *, check: Check | None = None,
                 finish: Callable[[Any], Any] | None = None, title: str = ""):
        self.cls, self.fields, self.check, self.title = cls, fields, check, title
        self.finish = finish
        # `field: null` means "not set" where the model's default is "not set" (None).
        self.nullable = {f.name for f in dataclasses.fields(cls) if f.default is None}

    def convert(self, value: Any, path: str, line: int, ck: Checker, name: str | None = None
                ) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ck.report(line, path, f"expected a mapping (fields: {', '.join(self.fields)}),"
                             f" got {describe(value)}")
        ok = check_known(value, self.fields, path, line, ck)
        values: dict[str, Any] = {} if name is None else {"name": name}
        for fname, spec in self.fields.items():
            if fname in value and not (value[fname] is None and fname in self.nullable):
                v = spec.kind.convert(value[fname], join(path, fname),
                                      line_of(value, fname, line), ck)
            elif spec.required:
                ck.report(line, path or "(top level)", f"missing required field {fname!r}")
                ok = False
                continue
            else:
                continue  # the dataclass default applies
            if v is INVALID:
                ok = False
            else:
                values[fname] = v
        if not ok:
            return INVALID
        obj = self.cls(**values)
        if self.check:
            bad = False
            for fname, message in self.check(obj, value):
                ck.report(line_of(value, fname, line), join(path, fname) if fname else path,
                          message)
                bad = True
            if bad:
                return INVALID
        return self.finish(obj) if self.finish else obj

    def dump(self, value: Any, skip: tuple[str, ...] = ()) -> Any:
        out: dict[str, Any] = {}
        for fname, spec in self.fields.items():
            if fname in skip:
                continue
            v = getattr(value, fname)
            if v is None:
                continue
            out[fname] = spec.kind.dump(v)
        return out

    def schema(self) -> dict[str, Any]:
        props = {}
        defaults = {f.name: f.default for f in dataclasses.fields(self.cls)}
        for fname, spec in self.fields.items():
            s = dict(spec.kind.schema())
            if fname in self.nullable and not spec.required:
                s = {"anyOf": [s, {"type": "null"}]}
            if spec.help:
                s["description"] = spec.help
            default = defaults.get(fname, dataclasses.MISSING)
            if default not in (dataclasses.MISSING, None) and not dataclasses.is_dataclass(
                    default):
                s.setdefault("default", spec.kind.dump(default))
            props[fname] = s
        required = [f for f, spec in self.fields.items() if spec.required]
        out: dict[str, Any] = {"type": "object", "properties": props,
                               "additionalProperties": False}
        if self.title:
            out["title"] = self.title
        if required:
            out["required"] = required
        return out
