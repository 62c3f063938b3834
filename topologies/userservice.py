"""User services: a service the user brings as a program (``image:`` for the docker runtime,
``command:`` for the process runtime) instead of faultmesh's emulator.

faultmesh starts the program, waits for ``health`` to answer 2xx on ``port``, puts proxies in
front of it and tells it where its dependencies are through environment variables, all named
here (one place, shared by every runtime):

* ``FAULTMESH_<CALLEE>_URL``: ``http://HOST:PORT`` of the proxy of balancer slot 0 of each
  service it calls; ``FAULTMESH_<CALLEE>_URLS``: every slot, comma-separated. ``<CALLEE>`` is
  the callee's name upper-cased with every other character than A-Z and 0-9 as ``_``.
* ``FAULTMESH_SERVICE`` (its service name), ``FAULTMESH_REPLICA`` (its replica index) and
  ``PORT`` (where it must listen: the service's ``port``).

The simulator does not run the program: it models the service from its ``latency``,
``workers`` and other fields like any other, which say what the user expects of the program;
a live run measures the real one. This module also holds the field kinds of ``command``,
``health`` and ``env``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from .kinds import INVALID, Checker, Kind, describe, join, line_of
from .model import FrozenMap, Service, Topology

__all__ = ["is_user_service", "env_name", "dependency_env", "env_collisions", "CommandKind",
           "EnvKind", "HealthKind", "RESERVED_PREFIX", "ENV_NAME"]

#: Environment variables with this prefix are faultmesh's to set.
RESERVED_PREFIX = "FAULTMESH_"
#: A portable environment variable name (POSIX: letters, digits, '_', not starting with a digit).
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def is_user_service(spec: Service) -> bool:
    """True when the user brings the service's program (``image`` or ``command``)."""
    return spec.image is not None or spec.command is not None


def env_name(callee: str) -> str:
    """``FAULTMESH_<CALLEE>_URL``: the variable holding the address of ``callee``."""
    return f"{RESERVED_PREFIX}{re.sub(r'[^A-Z0-9]', '_', callee.upper())}_URL"


def env_collisions(spec: Service) -> list[str]:
    """Messages for callees of ``spec`` whose names give the same variable (``a-b``, ``a.b``)."""
    seen: dict[str, str] = {}
    out = []
    for callee in dict.fromkeys(c.to for c in spec.edges()):
        name = env_name(callee)
        if name in seen:
            out.append(f"calls {seen[name]!r} and {callee!r}, whose addresses would both be "
                       f"passed in {name}: rename one of them")
        else:
            seen[name] = callee
    return out


def dependency_env(topology: Topology, service: str, slots: Mapping[str, Sequence[str]],
                   replica: int) -> dict[str, str]:
    """The environment of replica ``replica`` of user service ``service``.

    ``slots`` maps each callee to the ``host:port`` addresses of its balancer slots (the
    proxies in front of its replicas, in slot order). The service's own ``env`` comes first;
    faultmesh's variables are laid over it (validation keeps the two apart).
    """
    spec = topology.service(service)
    out = dict(spec.env)
    for callee in dict.fromkeys(c.to for c in spec.edges()):
        addrs = [a if "://" in a else f"http://{a}" for a in slots.get(callee, ())]
        if not addrs:
            continue
        name = env_name(callee)
        out[name] = addrs[0]
        out[name + "S"] = ",".join(addrs)
    out[RESERVED_PREFIX + "SERVICE"] = service
    out[RESERVED_PREFIX + "REPLICA"] = str(replica)
    out["PORT"] = str(spec.port)
    return out


# -- field kinds ---------------------------------------------------------------------------


class CommandKind(Kind):
    """``command``: a list of strings, or one string split as a POSIX shell would."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                return ck.report(line, path, f"cannot split the command: {exc}")
        elif isinstance(value, list):
            bad = [i for i, w in enumerate(value) if not isinstance(w, str)]
            for i in bad:
                ck.report(line_of(value, i, line), join(path, i),
                          f"expected a text, got {describe(value[i])} (quote it)")
            if bad:
                return INVALID
            words = list(value)
        else:
            return ck.report(line, path, f"expected a list of texts or a command line, got "
                             f"{describe(value)}")
        if not words or not words[0]:
            return ck.report(line, path, "an empty command: give the program to run")
        return tuple(words)

    def dump(self, value: Any) -> Any:
        return list(value)

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "minLength": 1},
                          {"type": "array", "items": {"type": "string"}, "minItems": 1}]}


class HealthKind(Kind):
    """``health``: the HTTP path that answers 2xx once the program is ready."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if not isinstance(value, str):
            return ck.report(line, path, f"expected an HTTP path like /healthz, got "
                             f"{describe(value)}")
        if not value.startswith("/") or any(c.isspace() for c in value):
            return ck.report(line, path, f"an HTTP path starts with '/' and has no spaces, "
                             f"got {value!r}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^/\S*$"}


class EnvKind(Kind):
    """``env``: variables ``NAME: value`` for the program; values are texts (numbers are
    taken as written), names are portable and not faultmesh's own."""

    def convert(self, value: Any, path: str, line: int, ck: Checker) -> Any:
        if value is None:
            return FrozenMap()
        if not isinstance(value, dict):
            return ck.report(line, path, f"expected a mapping NAME: value, got "
                             f"{describe(value)}")
        out: dict[str, str] = {}
        ok = True
        for key, v in value.items():
            problem = None
            if not isinstance(key, str) or not re.match(ENV_NAME, key):
                problem = ("an environment variable name uses letters, digits and '_' and "
                           "does not start with a digit")
            elif key.upper().startswith(RESERVED_PREFIX) or key == "PORT":
                problem = (f"{key} is set by faultmesh (the {RESERVED_PREFIX}* variables and "
                           "PORT, from port:); choose another name")
            elif isinstance(v, bool) or not isinstance(v, str | int | float):
                problem = f"expected a text, got {describe(v)} (quote it)"
            if problem:
                ck.report(line_of(value, key, line), join(path, key), problem)
                ok = False
            else:
                out[key] = v if isinstance(v, str) else str(v)
        return FrozenMap(out) if ok else INVALID

    def dump(self, value: Any) -> Any:
        return dict(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "propertyNames": {"pattern": ENV_NAME},
                "additionalProperties": {"type": ["string", "number"]}}
