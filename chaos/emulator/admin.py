"""The replica's admin API under ``/_faultmesh/``: the faults the emulator applies itself.

The live engine sends the ``errors``, ``slow`` and ``cpu`` faults to the emulator (network
faults are the proxies'). ``POST /_faultmesh/faults`` with ``{"type": "errors", "rate": 0.5,
"status": 503}`` (answer that share of requests at once with that status, error ``injected``),
``{"type": "slow", "factor": 4}`` (own processing and LLM time multiplied) or ``{"type": "cpu",
"fraction": 0.25}`` (a CPU quota cut to that share: own processing time divided by it, an
LLM's iterations not slowed, as they run on its GPU); each replaces the fault of its type.
``DELETE /_faultmesh/faults`` clears them (``DELETE /_faultmesh/faults/slow`` one);
``GET /_faultmesh/faults`` lists them; ``GET /_faultmesh/health`` answers 200 while
serving; ``GET /_faultmesh/stats`` the replica's counts as JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chaos.proxy.http import Request, Response

if TYPE_CHECKING:
    from .replica import ReplicaServer

__all__ = ["PREFIX", "Faults", "route"]

PREFIX = "/_faultmesh/"


class Faults:
    """The emulator-applied faults active on this replica now, as the simulator's faults
    module models them (simulator/faults.py): ``errors`` (rate, status), the ``slow``
    factor and the ``cpu`` fraction (the share of the CPU left)."""

    def __init__(self) -> None:
        self.errors: tuple[float, int] | None = None
        self.slow = 1.0
        self.cpu = 1.0

    @property
    def own_slow(self) -> float:
        """What own processing time is multiplied by: ``slow`` / ``cpu`` (a CPU cut slows the
        replica's own work, not an LLM's GPU iterations, which take ``slow`` alone)."""
        return self.slow / self.cpu

    def apply(self, spec: dict[str, Any]) -> None:
        """Set a fault from its JSON form; ValueError names the bad field."""
        kind = spec.get("type")
        if kind == "errors":
            rate = spec.get("rate", 1.0)
            status = spec.get("status", 500)
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"rate: must be a number in [0, 1], not {rate!r}")
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError(f"status: must be an HTTP error status, not {status!r}")
            self.errors = (float(rate), status)
        elif kind == "slow":
            factor = spec.get("factor")
            if not isinstance(factor, int | float) or factor <= 0:
                raise ValueError(f"factor: must be a number > 0, not {factor!r}")
            self.slow = float(factor)
        elif kind == "cpu":
            fraction = spec.get("fraction")
            # bool is an int subclass: true must not pass for a fraction of 1
            if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                    or not 0 < fraction <= 1:
                raise ValueError(f"fraction: must be a number in (0, 1], not {fraction!r}")
            self.cpu = float(fraction)
        else:
            raise ValueError(f"type: must be 'errors', 'slow' or 'cpu', not {kind!r}")

    def clear(self, kind: str | None = None) -> None:
        """Clear one fault type (an unknown one: nothing), or all with None."""
        if kind in (None, "errors"):
            self.errors = None
        if kind in (None, "slow"):
            self.slow = 1.0
        if kind in (None, "cpu"):
            self.cpu = 1.0

    def describe(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.errors is not None:
            out.append({"type": "errors", "rate": self.errors[0], "status": self.errors[1]})
        if self.slow != 1.0:
            out.append({"type": "slow", "factor": self.slow})
        if self.cpu != 1.0:
            out.append({"type": "cpu", "fraction": self.cpu})
        return out


def _json(status: int, body: Any) -> Response:
    return Response(status, (json.dumps(body) + "\n").encode())


def _members(server: ReplicaServer, request: Request) -> Response:
    """``{"callee": NAME, "owners": [replica per address], "seq": N}``: which replica of an
    autoscaled or rolled-out callee each of its addresses (relay slots) leads to now."""
    try:
        spec = json.loads(request.body or b"{}")
        callee, owners, seq = spec["callee"], spec["owners"], int(spec["seq"])
        if not isinstance(owners, list) or not all(isinstance(o, int) for o in owners):
            raise ValueError("owners: must be a list of replica indices")
    except (ValueError, KeyError, TypeError) as exc:
        return _json(400, {"error": f"members: {exc}"})
    edges = [e for e in server.edges if e.call.to == callee]
    if not edges:
        return _json(404, {"error": f"no call to {callee!r}"})
    if not all(e.set_owners(owners, seq) for e in edges):
        return _json(400, {"error": f"owners: one per address of {callee!r}"})
    return _json(200, {"callee": callee, "owners": edges[0].owners})


def route(server: ReplicaServer, request: Request) -> Response:
    """Answer one admin request."""
    path, method = request.path.rstrip("/"), request.method
    if path == "/_faultmesh/health" and method == "GET":
        return _json(200, {"service": server.spec.name, "replica": server.replica})
    if path == "/_faultmesh/stats" and method == "GET":
        body = server.stats.snapshot()
        body.update(queued=server.queued, service=server.spec.name, replica=server.replica,
                    batch=server.engine.batch if server.engine else None,
                    short_circuited={e.call.to: e.short_circuited for e in server.edges},
                    in_progress=server.memory.in_progress, memory_held=server.memory.held)
        return _json(200, body)
    if path.startswith("/_faultmesh/faults/") and method == "DELETE":
        server.faults.clear(path.rsplit("/", 1)[1])
        return _json(200, server.faults.describe())
    if path == "/_faultmesh/members" and method == "PUT":
        return _members(server, request)
    if path == "/_faultmesh/faults":
        faults = server.faults
        if method == "GET":
            return _json(200, faults.describe())
        if method == "DELETE":
            faults.clear()
            return _json(200, faults.describe())
        if method == "POST":
            try:
                spec = json.loads(request.body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("body: must be a JSON object")
                faults.apply(spec)
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, faults.describe())
        return _json(405, {"error": f"method {method} not allowed"})
    return _json(404, {"error": f"no admin route {request.path}"})
