"""Toxics as the API sees them: a named, typed fault on one stream of a proxy.

A toxic is data — type, stream, toxicity and attributes. What it does to bytes in flight is in
:mod:`chaos.proxy.link`. ``upstream`` is the client → server stream, ``downstream`` server →
client. Attribute units follow Toxiproxy: milliseconds, KB/s (KB = 1024 bytes), bytes,
microseconds for the slicer's delay.

The HTTP toxics (:data:`HTTP_TOXICS`: ``http_error``, ``http_slow``, ``http_fail_first``) are
faultmesh's own: they act on HTTP/1.1 requests and responses (:mod:`chaos.proxy.httpflow`),
whatever their stream, and have text attributes (``path``, ``header``, ``body``) beside whole
numbers. A real Toxiproxy refuses them (400 ``invalid toxic type``). :func:`fault_toxic` turns
a topology's ``errors`` or ``slow`` fault into the body of such a toxic.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from chaos.proxy.errors import INVALID_STREAM, INVALID_TOXIC_TYPE, bad_body

__all__ = ["Toxic", "TOXIC_TYPES", "HTTP_TOXICS", "TEXT_ATTRIBUTES", "STREAMS", "parse_toxic",
           "update_toxic", "fault_toxic"]

STREAMS = ("upstream", "downstream")

#: What the HTTP toxics match on: a path prefix and a ``Name: value`` header (both optional).
_MATCH: dict[str, int | str] = {"path": "", "header": ""}

#: Every toxic type with its attributes and their defaults (whole numbers; the HTTP toxics'
#: :data:`TEXT_ATTRIBUTES` are strings).
TOXIC_TYPES: dict[str, dict[str, int | str]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "noop": {},
    # faultmesh's HTTP toxics (chaos.proxy.httpflow); rate in bytes/s, factor in percent
    "http_error": {"status": 503, "body": "", **_MATCH},
    "http_slow": {"latency": 0, "jitter": 0, "rate": 0, "factor": 0, **_MATCH},
    "http_fail_first": {"count": 1, "status": 503, "body": "", **_MATCH},
}

HTTP_TOXICS = ("http_error", "http_slow", "http_fail_first")
TEXT_ATTRIBUTES = ("path", "header", "body")

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
    attributes: dict[str, int | str]
    uid: int = field(default_factory=lambda: next(_uids))

    def to_dict(self) -> dict[str, Any]:
        return {"attributes": dict(self.attributes), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}

    def attr(self, key: str) -> int:
        value = self.attributes.get(key, 0)
        return value if isinstance(value, int) else 0

    def text(self, key: str) -> str:
        """A text attribute of an HTTP toxic ("" when unset)."""
        value = self.attributes.get(key, "")
        return value if isinstance(value, str) else ""


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_body(f"toxicity must be a number, not {value!r}")
    return float(value)


def _attributes(kind: str, given: object,
                base: dict[str, int | str]) -> dict[str, int | str]:
    if given is None:
        return dict(base)
    if not isinstance(given, dict):
        raise bad_body(f"attributes must be an object, not {given!r}")
    attrs = dict(base)
    for key in TOXIC_TYPES[kind]:
        if key not in given:
            continue
        value = given[key]
        if key in TEXT_ATTRIBUTES:
            if not isinstance(value, str):
                raise bad_body(f"attribute {key} of a {kind} toxic must be a string, "
                               f"not {value!r}")
            attrs[key] = value
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_body(f"attribute {key} of a {kind} toxic must be a whole number, "
                           f"not {value!r}")
        if value < 0:
            raise bad_body(f"attribute {key} of a {kind} toxic must not be negative")
        attrs[key] = value
    _check_http(kind, attrs)
    return attrs


def _check_http(kind: str, attrs: dict[str, int | str]) -> None:
    """What an HTTP toxic's attributes must be beyond whole numbers and strings."""
    status = attrs.get("status")
    if isinstance(status, int) and not 200 <= status <= 599:
        raise bad_body(f"attribute status of a {kind} toxic must be 200..599, not {status}")
    factor = attrs.get("factor")
    if isinstance(factor, int) and 0 < factor < 100:
        raise bad_body(f"attribute factor of a {kind} toxic is a percentage of the upstream's "
                       f"time, 100 or more (0: none), not {factor}")
    header = attrs.get("header")
    if isinstance(header, str) and header and not header.partition(":")[0].strip():
        raise bad_body(f"attribute header of a {kind} toxic must be 'Name: value' or 'Name'")
    for key in ("body", "header", "path"):
        value = attrs.get(key)
        if isinstance(value, str) and any(c in value for c in "\r\n") and key != "body":
            raise bad_body(f"attribute {key} of a {kind} toxic must be one line")


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



def fault_toxic(kind: str, *, rate: float | None = None, status: int | None = None,
                factor: float | None = None, latency: float | None = None,
                path: str = "", header: str = "") -> dict[str, Any]:
    """The toxic body (type, toxicity, attributes) of a topology's ``errors`` or ``slow`` fault,
    for a service faultmesh does not control: ``POST /proxies/{p}/toxics`` with it, or
    ``proxy.add_toxic(**body)`` with toxiproxy-python (add a ``name``).

    ``errors``: ``rate`` (share of requests, default 1.0) answered with ``status`` (default
    500, as the emulator's) by the proxy, not forwarded. ``slow``: the response headers wait
    ``factor`` − 1 times the upstream's own time to answer (``factor`` 2 doubles it), plus
    ``latency`` seconds if given. Only faultmesh's own proxy knows these types.
    """
    match = {"path": path, "header": header}
    if kind == "errors":
        share = 1.0 if rate is None else float(rate)
        return {"type": "http_error", "toxicity": share,
                "attributes": {"status": status or 500, **match}}
    if kind == "slow":
        percent = round(100 * (factor or 1.0))
        return {"type": "http_slow", "toxicity": 1.0,
                "attributes": {"factor": percent if percent > 100 else 0,
                               "latency": round(1000 * (latency or 0.0)), **match}}
    raise ValueError(f"no HTTP toxic for a {kind!r} fault (errors or slow)")
