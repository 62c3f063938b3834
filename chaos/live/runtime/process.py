"""The process runtime (``--runtime process``, the default): every replica a local process
on 127.0.0.1 (an emulator, or a user's ``command:`` program under faultmesh's watchdog), the
fault proxy the built-in server in faultmesh's own process or an outside Toxiproxy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from topologies.errors import UsageError
from topologies.userservice import dependency_env, is_user_service

from ..wiring import destroy_edges, start_proxy_server
from . import Runtime

if TYPE_CHECKING:
    from topologies.model import Fault, Topology

    from ..run import LiveRun
    from ..wiring import Edge

__all__ = ["ProcessRuntime", "CONTAINER_ONLY"]

#: Fault types that act on a container (its network namespace, cgroup limits).
CONTAINER_ONLY = ("loss", "cpu", "memory")


class ProcessRuntime(Runtime):
    """Replicas as local processes; proxies on 127.0.0.1."""

    name = "process"
    user_field = "command"

    def __init__(self) -> None:
        self._server: Any = None

    def check(self, topology: Topology, faults: tuple[Fault, ...],
              toxiproxy_url: str | None) -> None:
        """UsageError for what local processes cannot do: a fault on a container, an
        ``image:``-only service, autoscaling a user's program (no stats to read), its
        ``errors``/``slow`` faults on a real Toxiproxy (they are HTTP toxics)."""
        for f in faults:
            if f.type in CONTAINER_ONLY:
                raise UsageError(f"fault type {f.type!r} acts on containers: run it with "
                                 f"--runtime docker")
        self.check_user_services(topology, faults, toxiproxy_url)

    def open(self, run: LiveRun) -> None:
        self._server = start_proxy_server(run.toxiproxy_url, run.seed)

    def proxy_listen(self, caller: str) -> str:
        return "127.0.0.1:0"

    def reach(self, edge: Edge) -> str:
        return edge.listen

    def start_replica(self, run: LiveRun, service: str, k: int, port: int = 0,
                      listen_at: float | None = None) -> Any:
        from chaos.emulator.launch import start_replica

        spec = run.topology.services[service]
        if is_user_service(spec):
            from ..userproc import start_user_process

            source = run.topology.source
            return start_user_process(
                service, k, spec.command,
                dependency_env(run.topology, service, run.upstreams[service], k),
                run.output_log(service, k), health=spec.health, port=port,
                start_at=listen_at,
                cwd=os.path.dirname(os.path.abspath(source)) if source else None)
        return start_replica(run.topo_path, service, run.replica_log(service, k), replica=k,
                             upstreams=run.upstreams[service], epoch=run.epoch,
                             seed=run.seed, port=port, listen_at=listen_at)

    def entry_connected(self, edges: list[Edge]) -> bool | None:
        if self._server is None:
            return None  # a real Toxiproxy's connections are not seen from here
        proxies = self._server.proxies
        return any(getattr(proxies.get(e.name), "connections", None) for e in edges)

    def close(self, run: LiveRun) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        elif run.toxiproxy_url:
            destroy_edges(run)
