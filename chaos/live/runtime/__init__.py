"""Where a live run's replicas and fault proxy run: the runtime interface and its two
implementations.

A :class:`Runtime` answers the questions a live run cannot answer the same way for local
processes and for containers, and nothing else: where the fault proxy runs and how its API
is reached, where each proxy listens and what address its caller dials, how one replica is
started and stopped, and which faults act on a replica's container. Everything else (the
wiring of the call graph, the fault schedule, the load, the autoscaler, the results) lives
once in :mod:`chaos.live` and drives a runtime through this interface.

* :class:`~chaos.live.runtime.process.ProcessRuntime` (``--runtime process``, the default):
  emulator processes and users' ``command:`` programs on 127.0.0.1, the built-in proxy in
  faultmesh's own process.
* :class:`~chaos.live.runtime.docker.DockerRuntime` (``--runtime docker``): every replica a
  container on a per-run Docker network (the emulator image, or a service's own ``image:``),
  the built-in proxy in a container of its own, its API and the entry's proxies published on
  127.0.0.1; ``kill``, ``pause``, ``partition``, ``loss``, ``cpu`` and ``memory`` act on the
  containers themselves (:mod:`chaos.containerfaults`).

A replica, whatever runs it, is a handle with ``port`` (a 127.0.0.1 port where its HTTP
answers: health, and for an emulator the admin API and stats), ``address`` (where the
proxies in front of it forward), and ``kill``, ``pause``, ``resume``, ``terminate`` and
``stop`` (:class:`ReplicaHandle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from topologies.errors import UsageError

if TYPE_CHECKING:
    from topologies.model import Fault, Topology

    from ..run import LiveRun
    from ..wiring import Edge

__all__ = ["Runtime", "ReplicaHandle", "RUNTIMES", "make_runtime"]

#: The runtimes ``faultmesh live --runtime`` accepts.
RUNTIMES = ("process", "docker")


class ReplicaHandle(Protocol):
    """One running replica, as the live run drives it."""

    service: str
    replica: int
    port: int
    log: str

    @property
    def address(self) -> str: ...

    def kill(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def terminate(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> int: ...


class Runtime:
    """What runs a live run's replicas and its fault proxy (one object per run)."""

    #: The ``--runtime`` word.
    name = ""
    #: Whether ``partition``, ``loss``, ``cpu`` and ``memory`` act on replica containers.
    containers = False

    #: What a user's service must give to run here (``command`` or ``image``).
    user_field = ""

    def check(self, topology: Topology, faults: tuple[Fault, ...],
              toxiproxy_url: str | None) -> None:
        """UsageError for what this runtime cannot run, before anything starts."""
        self.check_user_services(topology, faults, toxiproxy_url)

    def check_user_services(self, topology: Topology, faults: tuple[Fault, ...],
                            toxiproxy_url: str | None) -> set[str]:
        """UsageError for a user's service this runtime cannot run: one without its
        :attr:`user_field`, one with autoscaling (no stats to read), its ``errors``/``slow``
        faults on a real Toxiproxy (they are HTTP toxics of faultmesh's own proxy). Returns
        the user services."""
        from topologies.userservice import is_user_service

        from ..faults import EMULATOR_FAULTS

        other = {"command": "image", "image": "command"}[self.user_field]
        users = {n for n, spec in topology.services.items() if is_user_service(spec)}
        for name in sorted(users):
            spec = topology.services[name]
            if getattr(spec, self.user_field) is None:
                runtime = "docker" if self.name == "process" else "process"
                raise UsageError(f"service {name} gives only {other}:; run it with --runtime "
                                 f"{runtime} or give {self.user_field}:")
            if spec.autoscale is not None:
                raise UsageError(f"service {name}: autoscale of a user's service is "
                                 f"not supported by the live engine yet")
        for f in faults:
            if toxiproxy_url and f.type in EMULATOR_FAULTS and f.service in users:
                raise UsageError(f"fault {f.type} on {f.target}: on a user's service it is an "
                                 f"HTTP toxic of faultmesh's own proxy, which a real "
                                 f"Toxiproxy (--toxiproxy) does not have")
        return users

    def open(self, run: LiveRun) -> None:
        """Start the fault proxy (and whatever the replicas need: a network, images) and point
        toxiproxy-python at its API."""
        raise NotImplementedError

    def proxy_listen(self, caller: str) -> str:
        """The ``listen`` address to create the next proxy with (from ``caller``; ``client``
        is the load)."""
        raise NotImplementedError

    def reach(self, edge: Edge) -> str:
        """The ``host:port`` the edge's caller dials to reach its proxy (for the client: an
        address on this machine's 127.0.0.1)."""
        raise NotImplementedError

    def relay_host(self) -> str:
        """Where in-process relays (an autoscaled service's membership relay) listen so the
        proxies can reach them."""
        return "127.0.0.1"

    def start_replica(self, run: LiveRun, service: str, k: int, port: int = 0,
                      listen_at: float | None = None) -> Any:
        """Start replica ``k`` of ``service`` and return its handle once it answers: on
        ``port`` (0: any free one; a restart passes its old port), serving from
        ``listen_at`` (Unix time; a killed replica's restart is due then)."""
        raise NotImplementedError

    def entry_connected(self, edges: list[Edge]) -> bool | None:
        """Whether the load holds a connection to one of the entry's proxies ``edges`` now;
        None when this runtime cannot tell."""
        return None

    def close(self, run: LiveRun) -> None:
        """After the replicas are stopped: stop the fault proxy and remove what was made."""


def make_runtime(name: str) -> Runtime:
    """The runtime called ``name`` (UsageError naming the choices otherwise)."""
    if name == "process":
        from .process import ProcessRuntime

        return ProcessRuntime()
    if name == "docker":
        from .docker import DockerRuntime

        return DockerRuntime()
    raise UsageError(f"--runtime: expected one of {', '.join(RUNTIMES)}, not {name!r}")
