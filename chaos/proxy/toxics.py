"""Toxics as the API sees them: a named, typed fault on one stream of a proxy.

A toxic is data — type, stream, toxicity and attributes. What it does to bytes in flight is in
:mod:`chaos.proxy.link`. ``upstream`` is the client → server stream, ``downstream`` server →
client. Attribute units follow Toxiproxy: milliseconds, KB/s (KB = 1024 bytes), bytes,
microseconds for the slicer's delay.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from chaos.proxy.errors import INVALID_STREAM, INVALID_TOXIC_TYPE, bad_body

__all__ = ["Toxic", "TOXIC_TYPES", "STREAMS", "parse_toxic", "update_toxic"]

STREAMS = ("upstream", "downstream")

#: Every toxic type with its attributes and their defaults (all whole numbers).
TOXIC_TYPES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "noop": {},
}

_uids = itertools.count(1)


@dataclass
class Toxic:
    """One fault on one stream of a proxy; applies to every connection of that stream.

    ``toxicity`` is the probability that a given connection is affected, drawn once per
    connection. ``uid`` tells apart a toxic from a later one of the same name.
    """

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]
    uid: int = field(default_factory=lambda: next(_uids))

    def to_dict(self) -> dict[str, Any]:
        return {"attributes": dict(self.attributes), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}

    def attr(self, key: str) -> int:
        return self.attributes.get(key, 0)


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_body(f"toxicity must be a number, not {value!r}")
    return float(value)


def _attributes(kind: str, given: object, base: dict[str, int]) -> dict[str, int]:
    if given is None:
        return dict(base)
    if not isinstance(given, dict):
        raise bad_body(f"attributes must be an object, not {given!r}")
    attrs = dict(base)
    for key in TOXIC_TYPES[kind]:
        if key not in given:
            continue
        value = given[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_body(f"attribute {key} of a {kind} toxic must be a whole number, "
                           f"not {value!r}")
        if value < 0:
            raise bad_body(f"attribute {key} of a {kind} toxic must not be negative")
        attrs[key] = value
    return attrs


def parse_toxic(body: object) -> Toxic:
    """A new toxic from the body of ``POST /proxies/{p}/toxics``, with Toxiproxy's defaults."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    stream = body.get("stream") or "downstream"
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise INVALID_STREAM
    stream = stream.lower()
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in TOXIC_TYPES:
        raise INVALID_TOXIC_TYPE
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise bad_body(f"name must be a string, not {name!r}")
    toxicity = _toxicity(body["toxicity"]) if body.get("toxicity") is not None else 1.0
    attrs = _attributes(kind, body.get("attributes"), TOXIC_TYPES[kind])
    return Toxic(name=name, type=kind, stream=stream, toxicity=toxicity, attributes=attrs)


def update_toxic(toxic: Toxic, body: object) -> None:
    """Apply ``PATCH /proxies/{p}/toxics/{t}``: attributes and toxicity, omitted ones kept.

    Everything is checked before the toxic changes.
    """
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    attrs = _attributes(toxic.type, body.get("attributes"), toxic.attributes)
    toxicity = toxic.toxicity
    if body.get("toxicity") is not None:
        toxicity = _toxicity(body["toxicity"])
    toxic.attributes = attrs
    toxic.toxicity = toxicity

