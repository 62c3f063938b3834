"""The docker runtime (``--runtime docker``): every replica a container on a network of the
run's own, the fault proxy in a container on that network.

What a run makes, all labelled ``faultmesh.run=<run id>`` (and ``faultmesh.kind``) and removed
at its end, on Ctrl-C/SIGTERM and on failure, or by the run's reaper
(:class:`chaos.reaper.Reaper`) if faultmesh is SIGKILLed:

* a bridge network named after the run (MTU 1400, as the host's), on which container names
  resolve;
* the fault proxy: faultmesh's Toxiproxy-compatible server in a container of the emulator
  image, its API (8474) and the entry's proxies published on 127.0.0.1, driven through
  toxiproxy-python like the process runtime's. Proxies listen from port 10000 up inside it;
  a caller dials ``<proxy container>:<port>``, the load the published port. With
  ``--toxiproxy URL`` the outside Toxiproxy stands in for it: its proxies listen on the
  network's gateway address (the host, as the containers reach it) and forward to the
  replicas' published ports;
* two containers per replica, as a Kubernetes pod has: a *sandbox* (``sleep``, named after
  the replica) that holds the replica's network namespace, address and published port, and
  the *program* in that namespace (``--network container:<sandbox>``): the emulator image
  running ``python -m chaos.emulator``, as the invoking user, with the result directory
  mounted at the same path (its logs land there), or the service's own ``image:`` as it is,
  given ``FAULTMESH_<CALLEE>_URL`` variables that name the proxies and listening on its
  ``port:``. The port is published on a 127.0.0.1 port for the health check, the admin API
  and the autoscaler. ``kill`` ends the program and not the sandbox, so, as for a crashed
  container in a pod, its address stays and callers are refused at once (a removed address
  would hang them in ARP, or in DNS for a removed name), and the restarted program takes
  the same address and port.

A replica is ready once an HTTP GET of its health path answers 2xx: a published port accepts
connections before the program inside listens, so a TCP connect proves nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaos import containerfaults
from chaos.dockercli import KIND_LABEL, RUN_LABEL, docker, new_run_id, require_docker
from topologies.errors import RunError, UsageError
from topologies.userservice import dependency_env, is_user_service

from ..userproc import healthy as _healthy
from ..wiring import destroy_edges, start_proxy_server
from . import Runtime

if TYPE_CHECKING:
    from topologies.model import Fault, Topology

    from ..run import LiveRun
    from ..wiring import Edge

__all__ = ["DockerRuntime", "ContainerReplica", "API_PORT", "EMULATOR_PORT",
           "FIRST_PROXY_PORT", "READY_TIMEOUT"]

#: The fault proxy's API port inside its container (Toxiproxy's default).
API_PORT = 8474
#: Where an emulated replica listens inside its container.
EMULATOR_PORT = 8000
#: The proxies listen from this port up inside the proxy container.
FIRST_PROXY_PORT = 10000
#: Seconds a container gets to answer its health check.
READY_TIMEOUT = 60.0
#: Lines of a container's output quoted when it does not come up.
TAIL_LINES = 10
_EMULATOR_HEALTH = "/_faultmesh/health"


def _slug(name: str) -> str:
    """A container name part: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def _published(container: str, inner: int) -> int:
    """The 127.0.0.1 port a container's ``inner`` port is published on."""
    out = docker("port", container, f"{inner}/tcp", timeout=30).stdout.split()
    for word in out:
        host, _, port = word.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0") and port.isdigit():
            return int(port)
    raise RunError(f"{container}: port {inner} is not published ({' '.join(out) or 'none'})")


def _state(container: str) -> dict[str, Any]:
    done = docker("inspect", "--type", "container", "--format", "{{json .State}}", container,
                  check=False, timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _tail(container: str, n: int = TAIL_LINES) -> str:
    done = docker("logs", "--tail", str(n), container, check=False, timeout=30)
    text = (done.stdout or "") + (done.stderr or "")
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


#: Share of this machine's memory the emulators of memory-faulted services may really hold.
MEMORY_SHARE = 0.5


def _check_memory(topology: Topology, services: set[str]) -> None:
    """RunError (exit 3) when the emulators that must really hold their memory (a memory
    fault on their service) would hold more than :data:`MEMORY_SHARE` of this machine's."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = 0.0
    for name in services:
        spec = topology.services[name]
        n = spec.autoscale.max if spec.autoscale is not None else spec.replicas
        need += n * (spec.memory.base if spec.memory is not None else 0.0)
    if need > MEMORY_SHARE * machine:
        gib = 1024.0 ** 3
        raise RunError(f"the memory fault needs {need / gib:.1f} GiB held for real by "
                       f"{', '.join(sorted(services))} (memory.base x replicas), more than "
                       f"{MEMORY_SHARE:.0%} of this machine's {machine / gib:.1f} GiB")


@dataclass
class ContainerReplica:
    """A replica running as a container: its name, the 127.0.0.1 port its HTTP is
    published on, the address the proxies forward to, and where a user image's output is
    kept (its ``docker logs``, appended at each end)."""

    service: str
    replica: int
    port: int
    log: str
    container: str    # the program's container (killed, paused, limited)
    upstream: str
    output: str = ""
    created: float = 0.0  # Unix time its program's container was asked for

    @property
    def address(self) -> str:
        return self.upstream

    def kill(self) -> None:
        """``docker kill``: returns once the container is no longer running."""
        containerfaults.kill(self.container)
        self.save_output()

    def pause(self) -> None:
        containerfaults.pause(self.container)

    def resume(self) -> None:
        docker("unpause", self.container, check=False, timeout=30)

    def terminate(self) -> None:
        """SIGTERM to its main process, without waiting (a paused one is thawed first)."""
        self.resume()
        docker("kill", "--signal", "TERM", self.container, check=False, timeout=30)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout`` s for it to end (then SIGKILL); its exit code."""
        state = _state(self.container)
        if state.get("Running"):
            self.terminate()
            give_up = time.monotonic() + timeout
            while (state := _state(self.container)).get("Running"):
                if time.monotonic() > give_up:
                    docker("kill", self.container, check=False, timeout=30)
                    state = _state(self.container)
                    break
                time.sleep(0.05)
        self.save_output()
        return int(state.get("ExitCode", -1) or 0)

    def save_output(self) -> None:
        """Append the container's output so far to its output file (user images)."""
        if not self.output:
            return
        done = docker("logs", self.container, check=False, timeout=60, text=False)
        if done.stdout or done.stderr:
            with open(self.output, "ab") as fh:
                fh.write(done.stdout or b"")
                fh.write(done.stderr or b"")


class DockerRuntime(Runtime):
    """Replicas as containers on a per-run network; the fault proxy in a container."""

    name = "docker"
    containers = True
    user_field = "image"

    def __init__(self) -> None:
        self.run_id = ""
        self.network = ""
        self.gateway = ""
        self.image = ""
        self.proxy_container = ""
        self.outside = False            # an outside Toxiproxy (--toxiproxy) on the host
        self._reaper: Any = None
        self._client_ports: list[int] = []   # inside the proxy container, published
        self._next_client = 0
        self._next_port = 0
        self._published: dict[int, int] = {}  # proxy container port -> 127.0.0.1 port
        self._memory_faulted: set[str] = set()  # their emulators really hold their memory

    def check(self, topology: Topology, faults: tuple[Fault, ...],
              toxiproxy_url: str | None) -> None:
        users = self.check_user_services(topology, faults, toxiproxy_url)
        for f in faults:
            if (f.type == "memory" and f.service not in users
                    and topology.services[f.service].memory is None):
                raise UsageError(f"fault memory on {f.target!r}: services.{f.service}.memory "
                                 f"is not set (what an emulated replica holds)")
        self._memory_faulted = {f.service for f in faults if f.type == "memory"} - users
        require_docker()
        _check_memory(topology, self._memory_faulted)

    # --- the network and the fault proxy -------------------------------------------------
    def open(self, run: LiveRun) -> None:
        from chaos.images import emulator_image
        from chaos.images.build import PROXY_COMMAND
        from chaos.reaper import Reaper

        run._phase("emulator image: reusing or building it (faultmesh images build)")
        self.image = emulator_image(build=True)
        self.run_id = new_run_id()
        self._reaper = Reaper(self.run_id)  # from here on, nothing outlives the run
        self.network = self.run_id
        docker("network", "create", "--label", f"{RUN_LABEL}={self.run_id}",
               "--label", f"{KIND_LABEL}=network",
               "-o", "com.docker.network.driver.mtu=1400", self.network, timeout=60)
        self.gateway = docker("network", "inspect", "--format",
                              "{{(index .IPAM.Config 0).Gateway}}", self.network,
                              timeout=30).stdout.strip()
        if run.toxiproxy_url:
            self.outside = True
            start_proxy_server(run.toxiproxy_url, run.seed)
            return
        entry = run.topology.services[run.topology.entry]
        n_client = entry.autoscale.max if entry.autoscale is not None else entry.replicas
        self._client_ports = [FIRST_PROXY_PORT + i for i in range(n_client)]
        self._next_port = FIRST_PROXY_PORT + n_client
        self.proxy_container = f"{self.run_id}-proxy"
        publish = [a for p in (API_PORT, *self._client_ports) for a in ("-p", f"127.0.0.1::{p}")]
        command = [*PROXY_COMMAND[:-4], "--host", "0.0.0.0", "--port", str(API_PORT),
                   "--seed", str(run.seed)]
        docker("run", "-d", "--name", self.proxy_container, "--network", self.network,
               "--label", f"{RUN_LABEL}={self.run_id}", "--label", f"{KIND_LABEL}=proxy",
               *publish, self.image, *command, timeout=120)
        for p in (API_PORT, *self._client_ports):
            self._published[p] = _published(self.proxy_container, p)
        api = self._published[API_PORT]
        self._wait_healthy(self.proxy_container, api, "/version", READY_TIMEOUT)
        from toxiproxy.api import APIConsumer

        APIConsumer.host, APIConsumer.port = "127.0.0.1", api

    def proxy_listen(self, caller: str) -> str:
        if self.outside:  # the host's Toxiproxy: the load on loopback, containers via the gateway
            return "127.0.0.1:0" if caller == "client" else f"{self.gateway}:0"
        if caller == "client":
            port = self._client_ports[self._next_client]
            self._next_client += 1
        else:
            port = self._next_port
            self._next_port += 1
        return f"0.0.0.0:{port}"

    def reach(self, edge: Edge) -> str:
        if self.outside:
            return edge.listen
        port = int(edge.listen.rpartition(":")[2])
        if edge.caller == "client":
            return f"127.0.0.1:{self._published[port]}"
        return f"{self.proxy_container}:{port}"

    def relay_host(self) -> str:
        return self.gateway  # the host as the containers (the proxy) reach it

    # --- replicas ---------------------------------------------------------------------------
    def container_name(self, service: str, k: int) -> str:
        """The sandbox's name (what callers resolve); the program's adds ``-app``."""
        return f"{self.run_id}-{_slug(service)}-{k}"

    def _sandbox(self, name: str, inner: int) -> int:
        """The replica's sandbox (created once, kept across restarts of its program); the
        127.0.0.1 port its ``inner`` port is published on."""
        if not _state(name).get("Running"):
            docker("rm", "-f", name, check=False, timeout=60)
            docker("run", "-d", "--name", name, "--network", self.network,
                   "--label", f"{RUN_LABEL}={self.run_id}", "--label", f"{KIND_LABEL}=sandbox",
                   "-p", f"127.0.0.1::{inner}", "--entrypoint", "sleep", self.image,
                   "infinity", timeout=120)
        return _published(name, inner)

    def start_replica(self, run: LiveRun, service: str, k: int, port: int = 0,
                      listen_at: float | None = None) -> ContainerReplica:
        spec = run.topology.services[service]
        user = is_user_service(spec)
        sandbox = self.container_name(service, k)
        name = f"{sandbox}-app"
        inner = spec.port if user else EMULATOR_PORT
        host_port = self._sandbox(sandbox, inner)
        docker("rm", "-f", name, check=False, timeout=60)  # a restart: the killed one goes
        created = time.time()
        args = ["run", "-d", "--name", name, "--network", f"container:{sandbox}",
                "--label", f"{RUN_LABEL}={self.run_id}", "--label", f"{KIND_LABEL}=replica"]
        from ..containers import memory_limit

        limit = memory_limit(run, service, k)
        if limit is not None:  # restarted while a memory fault is in force: under its limit
            args += ["--memory", str(limit), "--memory-swap", str(limit)]
        if user:
            if listen_at is not None:  # a user's program cannot wait to listen: start it then
                time.sleep(max(0.0, listen_at - time.time()))
            env = dependency_env(run.topology, service, run.upstreams[service], k)
            for key, value in env.items():
                args += ["-e", f"{key}={value}"]
            args.append(str(spec.image))
            health = spec.health
        else:
            from chaos.emulator.launch import emulator_args

            out = os.path.abspath(run.out)
            args += ["--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{out}:{out}",
                     self.image, "python", "-m", "chaos.emulator",
                     *emulator_args(os.path.abspath(run.topo_path), service,
                                    run.replica_log(service, k), replica=k,
                                    upstreams=run.upstreams[service], epoch=run.epoch,
                                    seed=run.seed, host="0.0.0.0", port=EMULATOR_PORT,
                                    listen_at=listen_at,
                                    hold_memory=service in self._memory_faulted)]
            health = _EMULATOR_HEALTH
        docker(*args, timeout=120)
        wait = READY_TIMEOUT + (max(0.0, listen_at - time.time()) if listen_at else 0.0)
        try:
            self._wait_healthy(name, host_port, health, wait)
        except BaseException:
            docker("rm", "-f", name, check=False, timeout=60)
            raise
        upstream = f"127.0.0.1:{host_port}" if self.outside else f"{sandbox}:{inner}"
        return ContainerReplica(service, k, host_port, run.replica_log(service, k), name,
                                upstream, run.output_log(service, k) if user else "", created)

    def _wait_healthy(self, container: str, port: int, path: str, timeout: float) -> None:
        """Until GET ``path`` on ``port`` answers 2xx; RunError, with the container's last
        output, when it exits or ``timeout`` s pass."""
        give_up = time.monotonic() + timeout
        checked = time.monotonic()
        while not _healthy(port, path):
            now = time.monotonic()
            if now > checked + 0.5:  # an inspect costs ~30 ms: not on every try
                checked = now
                state = _state(container)
                if not state.get("Running"):
                    why = f"exited with {state.get('ExitCode', '?')}"
                    break
            if now > give_up:
                why = f"did not answer GET {path} with 2xx within {timeout:g} s"
                break
            time.sleep(0.05)
        else:
            return
        tail = _tail(container)
        raise RunError(f"container {container} {why}"
                       + (f"; its last output: {tail}" if tail else ""))

    def close(self, run: LiveRun) -> None:
        """Every container and the network of the run go (the reaper removes them by label
        and is waited for)."""
        if self._reaper is not None:
            self._reaper.close()
            self._reaper = None
        if self.outside:
            destroy_edges(run)
