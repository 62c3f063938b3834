"""A topology as a docker-compose file a person runs by hand (``faultmesh export compose``).

The file models one live run under ``--runtime docker`` without faultmesh driving it: one
compose service per replica of each topology service (the emulator image, or the user's
``image:``), one ``proxy`` service (faultmesh's Toxiproxy-compatible server) with a proxy on
every edge preloaded from a Toxiproxy ``-config`` file, health checks and ``depends_on``
``service_healthy`` so callees are up before their callers. Everything goes through the proxy,
so every network fault of a scenario is a toxic added through its API; the header comment
lists each scenario's faults as the commands that inject them.

Format version "2.4" because docker-compose 1.29 runs it and Compose v2 reads it, and it has
``depends_on`` conditions and ``cpus``/``mem_limit`` (3.x moved those to swarm-only keys).
The resolved topology and the proxy list are written in ``<file stem>.faultmesh/`` next to
the compose file and bind-mounted (2.4 has no ``configs``); replicas log there too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

import topologies
from topologies.errors import UsageError
from topologies.model import Fault, Topology
from topologies.userservice import dependency_env, is_user_service

__all__ = ["ProxyEdge", "ComposeExport", "build", "write", "API_PORT", "EMULATOR_PORT",
           "FIRST_PROXY_PORT"]

#: The fault proxy's API port inside its container (Toxiproxy's default).
API_PORT = 8474
#: Where an emulated replica listens inside its container.
EMULATOR_PORT = 8000
#: The proxies listen from this port up inside the proxy container.
FIRST_PROXY_PORT = 10000
_MOUNT = "/faultmesh"
_HEALTH_PATH = "/_faultmesh/health"


@dataclass(frozen=True)
class ProxyEdge:
    """One proxy: ``caller`` (``client`` for the load) to replica ``replica`` of ``callee``,
    listening on ``port`` in the proxy container."""

    caller: str
    callee: str
    replica: int
    port: int

    @property
    def name(self) -> str:
        # no '->' or '#': the name goes in API paths a person types with curl
        return f"{self.caller}-to-{self.callee}-{self.replica}"


@dataclass
class ComposeExport:
    """What :func:`build` makes: the compose document, its header comment, the files of the
    side directory and the proxies."""

    compose: dict[str, Any]
    header: str
    files: dict[str, str]
    edges: list[ProxyEdge]


def _slug(name: str) -> str:
    """A compose service name part: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def replica_name(service: str, k: int) -> str:
    return f"{_slug(service)}-{k}"


def _edges(topology: Topology) -> list[ProxyEdge]:
    """Every proxy, the entry's client proxies first, in a stable order."""
    pairs = [("client", topology.entry)]
    for name, spec in topology.services.items():
        pairs += [(name, c) for c in dict.fromkeys(e.to for e in spec.edges())]
    out: list[ProxyEdge] = []
    for caller, callee in pairs:
        for k in range(topology.service(callee).replicas):
            out.append(ProxyEdge(caller, callee, k, FIRST_PROXY_PORT + len(out)))
    return out


def _listen_port(topology: Topology, service: str) -> int:
    spec = topology.service(service)
    return spec.port if is_user_service(spec) else EMULATOR_PORT


def _python_get(url: str) -> list[str]:
    """A health check that needs only Python (the emulator image has no curl)."""
    code = f"import urllib.request; urllib.request.urlopen('{url}', timeout=3)"
    return ["CMD", "python", "-c", code]


def _health(test: list[str] | str) -> dict[str, Any]:
    return {"test": test, "interval": "2s", "timeout": "5s", "retries": 30,
            "start_period": "2s"}


def build(topology: Topology, image: str, stem: str, port_base: int | None = None,
          compose_file: str = "docker-compose.yml") -> ComposeExport:
    """The compose export of ``topology`` running emulated services from ``image``.

    ``stem`` names the side directory (``<stem>.faultmesh``); ``port_base`` publishes the
    proxy API on 127.0.0.1:port_base and the entry's proxies on the ports after it (None:
    ephemeral host ports, found with ``docker-compose port``).
    """
    for name, spec in topology.services.items():
        if spec.image is None and spec.command is not None:
            raise UsageError(f"services.{name}: a command: service has no image for "
                             f"docker-compose to run; give it image:")
    edges = _edges(topology)
    side = f"./{stem}.faultmesh"
    services: dict[str, Any] = {}
    client = [e for e in edges if e.caller == "client"]

    def publish(inner: int, n: int) -> str:
        return f"127.0.0.1::{inner}" if port_base is None else f"127.0.0.1:{port_base + n}:{inner}"

    services["proxy"] = {
        "image": image,
        "command": ["python", "-m", "faultmesh", "proxy", "--host", "0.0.0.0", "--port",
                    str(API_PORT), "--config", f"{_MOUNT}/proxies.json"],
        "volumes": [f"{side}/proxies.json:{_MOUNT}/proxies.json:ro"],
        "ports": [publish(API_PORT, 0)] + [publish(e.port, n + 1) for n, e in enumerate(client)],
        "healthcheck": _health(_python_get(f"http://127.0.0.1:{API_PORT}/version")),
        "labels": {"faultmesh.kind": "proxy"},
    }
    for name, spec in topology.services.items():
        callees = list(dict.fromkeys(e.to for e in spec.edges()))
        slots = {c: [f"proxy:{e.port}" for e in edges if e.caller == name and e.callee == c]
                 for c in callees}
        depends = {"proxy": {"condition": "service_healthy"}}
        for c in callees:
            for k in range(topology.service(c).replicas):
                depends[replica_name(c, k)] = {"condition": "service_healthy"}
        for k in range(spec.replicas):
            svc: dict[str, Any]
            if is_user_service(spec):
                url = f"http://127.0.0.1:{spec.port}{spec.health}"
                # the user's image may have any of these (or none: then edit the check)
                probe = (f"python3 -c \"import urllib.request; urllib.request.urlopen('{url}')\""
                         f" || python -c \"import urllib.request; urllib.request.urlopen('{url}')\""
                         f" || wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}")
                env = dependency_env(topology, name, slots, k)
                svc = {"image": spec.image,
                       # '$$': compose would otherwise substitute variables in the values
                       "environment": {n: v.replace("$", "$$") for n, v in env.items()},
                       "healthcheck": _health(["CMD-SHELL", probe]),
                       "labels": {"faultmesh.kind": "replica", "faultmesh.service": name}}
            else:
                command = ["python", "-m", "chaos.emulator", "--topology",
                           f"{_MOUNT}/topology.yaml", "--service", name, "--replica", str(k),
                           "--host", "0.0.0.0", "--port", str(EMULATOR_PORT), "--log",
                           f"{_MOUNT}/logs/{_slug(name)}-{k}.csv", "--epoch", "0"]
                for c in callees:
                    command += ["--upstream", f"{c}={','.join(slots[c])}"]
                svc = {"image": image, "command": command,
                       "volumes": [f"{side}/topology.yaml:{_MOUNT}/topology.yaml:ro",
                                   f"{side}/logs:{_MOUNT}/logs"],
                       "healthcheck": _health(_python_get(
                           f"http://127.0.0.1:{EMULATOR_PORT}{_HEALTH_PATH}")),
                       "labels": {"faultmesh.kind": "replica", "faultmesh.service": name}}
            svc["depends_on"] = dict(depends)
            services[replica_name(name, k)] = svc
    config = [{"name": e.name, "listen": f"0.0.0.0:{e.port}",
               "upstream": f"{replica_name(e.callee, e.replica)}:"
                           f"{_listen_port(topology, e.callee)}",
               "enabled": True} for e in edges]
    files = {"topology.yaml": topologies.dump(topology),
             "proxies.json": json.dumps(config, indent=2) + "\n"}
    header = _header(topology, edges, compose_file, port_base)
    return ComposeExport({"version": "2.4", "services": services}, header, files, edges)


def write(export: ComposeExport, path: str) -> list[str]:
    """Write the compose file at ``path`` and its side directory; the paths written."""
    import yaml

    from topologies.files import atomic_write_text

    stem = os.path.splitext(os.path.basename(path))[0]
    side = os.path.join(os.path.dirname(os.path.abspath(path)), f"{stem}.faultmesh")
    os.makedirs(os.path.join(side, "logs"), exist_ok=True)
    written = []
    for name, text in export.files.items():
        atomic_write_text(os.path.join(side, name), text)
        written.append(os.path.join(side, name))
    body = yaml.safe_dump(export.compose, sort_keys=False, default_flow_style=False, width=100)
    atomic_write_text(path, export.header + body)
    return [path] + written


# -- the header comment: how to inject each scenario's faults by hand ------------------------


def _header(topology: Topology, edges: list[ProxyEdge], compose_file: str,
            port_base: int | None) -> str:
    dc = f"docker-compose -f {compose_file}"
    entry = [e for e in edges if e.caller == "client"]
    if port_base is None:
        api = f'API=$({dc} port proxy {API_PORT})'
        front = f"{dc} port proxy {entry[0].port}"
    else:
        api = f"API=127.0.0.1:{port_base}"
        front = f"127.0.0.1:{port_base + 1}" + (
            f"..{port_base + len(entry)}" if len(entry) > 1 else "")
    lines = [
        f"faultmesh export of topology {topology.name!r}: run it by hand.",
        "",
        f"  {dc} up -d            # wait until `{dc} ps` shows every service healthy",
        f"  {dc} down -v          # stop and remove everything",
        "",
        f"The load goes to the entry ({topology.entry}) through its proxies, published on",
        f"127.0.0.1 ({front}); the Toxiproxy API of the proxy service is on its port {API_PORT}:",
        "",
        f"  {api}",
        "  curl -s $API/proxies                  # or toxiproxy-cli, or toxiproxy-python",
        "",
        "Proxies are named CALLER-to-CALLEE-K (client: the load). Emulated replicas log their",
        "calls in the .faultmesh/logs directory next to this file. Scenario faults, as the",
        "commands that inject them (times from `up`; each 'undo' ends the fault):",
    ]
    for name, scenario in topology.scenarios.items():
        lines += ["", f"scenario {name}: {scenario.description}".rstrip(": ")]
        if not scenario.faults:
            lines.append("  (no faults)")
        for f in scenario.faults:
            until = "" if f.duration is None else f" for {f.duration:g} s"
            lines.append(f"  at {f.start:g} s{until}: {f.type} on {f.target}")
            lines += [f"    {c}" for c in _fault_commands(topology, edges, f, dc)]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines) + "\n"


def _targets(topology: Topology, edges: list[ProxyEdge], target: str) -> list[ProxyEdge]:
    if "->" in target:
        caller, callee = target.split("->", 1)
        return [e for e in edges if e.caller == caller and e.callee == callee]
    return [e for e in edges if e.callee == target]


def _toxic(edge: ProxyEdge, name: str, kind: str, stream: str, attributes: dict[str, Any],
           toxicity: float = 1.0) -> list[str]:
    body = json.dumps({"name": name, "type": kind, "stream": stream, "toxicity": toxicity,
                       "attributes": attributes}, separators=(",", ":"))
    return [f"curl -s -X POST $API/proxies/{edge.name}/toxics -d {shlex.quote(body)}",
            f"  undo: curl -s -X DELETE $API/proxies/{edge.name}/toxics/{name}"]


def _fault_commands(topology: Topology, edges: list[ProxyEdge], f: Fault,
                    dc: str) -> list[str]:
    """The shell commands injecting ``f`` by hand (as chaos/live/faults.py maps it)."""
    service = f.target.split("->", 1)[1] if "->" in f.target else f.target
    spec = topology.service(service)
    chosen = list(range(spec.replicas if f.replicas is None else min(f.replicas,
                                                                      spec.replicas)))
    out: list[str] = []
    if f.type in ("latency", "bandwidth", "timeout", "reset_peer"):
        if f.type == "latency":
            attrs: dict[str, Any] = {"latency": round(1000 * (f.latency or 0.0)),
                                     "jitter": round(1000 * (f.jitter or 0.0))}
        elif f.type == "bandwidth":
            attrs = {"rate": max(1, round((f.rate or 0.0) / 1024))}
        else:
            attrs = {"timeout": round(1000 * (f.timeout or 0.0))}
        for e in _targets(topology, edges, f.target):
            out += _toxic(e, f.type, f.type, "downstream", attrs)
    elif f.type == "down":
        for e in _targets(topology, edges, f.target):
            out += [f"curl -s -X POST $API/proxies/{e.name} -d '{{\"enabled\":false}}'",
                    f"  undo: curl -s -X POST $API/proxies/{e.name} -d '{{\"enabled\":true}}'"]
    elif f.type == "partition":
        for e in edges:
            if e.callee == service and e.replica in chosen:
                out += _toxic(e, "partition_up", "timeout", "upstream", {"timeout": 0})
                out += _toxic(e, "partition_down", "timeout", "downstream", {"timeout": 0})
    elif f.type in ("errors", "slow"):
        out += _http_fault(topology, edges, f, service, dc)
    elif f.type == "kill":
        for k in chosen[: f.replicas or 1]:
            out += [f"{dc} kill {replica_name(service, k)}",
                    f"  undo (after restart, {spec.restart:g} s): "
                    f"{dc} start {replica_name(service, k)}"]
    elif f.type == "pause":
        for k in chosen:
            out += [f"{dc} pause {replica_name(service, k)}",
                    f"  undo: {dc} unpause {replica_name(service, k)}"]
    elif f.type in ("cpu", "memory"):
        for k in range(spec.replicas):
            cid = f"$({dc} ps -q {replica_name(service, k)})"
            if f.type == "cpu":
                out += [f"docker update --cpus {f.fraction or 1:g} {cid}   # a share of one CPU",
                        f"  undo: docker update --cpus 0 {cid}"]
            else:
                limit = int(f.limit or 0)
                out += [f"docker update --memory {limit} --memory-swap {limit} {cid}",
                        f"  undo: {dc} up -d --force-recreate {replica_name(service, k)}"]
    else:  # loss: iptables in the replica's namespace needs NET_ADMIN, which this file omits
        out.append(f"(not by hand from this file: faultmesh live --runtime docker applies "
                   f"{f.type})")
    return out


def _http_fault(topology: Topology, edges: list[ProxyEdge], f: Fault, service: str,
                dc: str) -> list[str]:
    """``errors``/``slow``: the emulator's admin API inside each replica; for a user service,
    the proxy's HTTP toxics in front of it."""
    if f.type == "errors":
        body: dict[str, Any] = {"type": "errors", "rate": 1.0 if f.rate is None else f.rate,
                                "status": f.status or 500}
    else:
        body = {"type": "slow", "factor": f.factor or 1.0}
    spec = topology.service(service)
    out: list[str] = []
    if is_user_service(spec):
        for e in _targets(topology, edges, f.target):
            if f.type == "errors":
                out += _toxic(e, "errors", "http_error", "downstream",
                              {"status": body["status"]}, toxicity=body["rate"])
            else:
                out += _toxic(e, "slow", "http_slow", "downstream",
                              {"factor": round(100 * body["factor"])})
        return out
    admin = f"http://127.0.0.1:{EMULATOR_PORT}/_faultmesh/faults"
    for k in range(spec.replicas):
        data = json.dumps(body).replace('"', '\\"')  # inside the shell's double quotes
        post = (f"import urllib.request as u; u.urlopen(u.Request('{admin}', "
                f"data=b'{data}', method='POST'))")
        undo = f"import urllib.request as u; u.urlopen(u.Request('{admin}/{f.type}', " \
               f"method='DELETE'))"
        out += [f"{dc} exec -T {replica_name(service, k)} python -c \"{post}\"",
                f"  undo: {dc} exec -T {replica_name(service, k)} python -c \"{undo}\""]
    return out
