"""Container chaos: the faults the docker runtime injects into a replica's container itself,
beyond the network toxics the fault proxy applies on each edge.

Each fault is one function that applies it and returns an :data:`Undo` (a callable with no
arguments taking the fault back); the pairs :func:`kill`/:func:`start`,
:func:`pause`/:func:`unpause` and :func:`partition`/:func:`heal` can also be called directly.
Everything goes through :func:`chaos.dockercli.docker`. What each models, and how it maps to
the simulator's meaning of the fault type (docs/simulation.md):

* ``kill`` -- :func:`kill`: ``docker kill`` (SIGKILL, exit 137); returns when the container
  is no longer running. Callers get "connection refused" (the published port's proxy has no
  one to forward to), as in the simulator, where calls to a killed replica fail at once.
  Back with :func:`start` (``docker start``; the process starts from scratch, ~1 s to healthy).
  ``--restart always`` does not bring back a ``docker kill``ed container, so the undo is ours.
* ``pause`` -- :func:`pause`: ``docker pause`` freezes every process of the container (cgroup
  freezer). TCP still connects (the kernel answers), HTTP hangs until the caller's timeout:
  the simulator's ``pause`` (requests wait, then time out). :func:`unpause` thaws it; the
  requests that waited are then served.
* ``partition`` -- :func:`partition`: every packet in and out of the container's ``eth0`` is
  dropped by iptables rules in the container's own network namespace, so attempts hang until
  the caller's timeout (a blackhole, not a refusal), as the simulator's ``partition``.
  (``docker network disconnect`` would not do: the name stops resolving and calls fail fast.)
  :func:`heal` deletes the rules.
* ``loss`` -- :func:`loss`: incoming packets on ``eth0`` dropped at random with a probability
  (iptables ``statistic``); TCP retransmits (the first after ~1 s), so requests get slower and
  some time out: the simulator's ``loss`` (an attempt is lost with that probability).
* ``cpu`` -- :func:`cpu`: the CPU quota cut to ``fraction`` of ``base_cpus`` (``docker update
  --cpus``): CPU-bound work runs ``1/fraction`` times slower, the simulator's ``cpu``.
* ``memory`` -- :func:`memory`: a memory limit (``docker update --memory`` and the same
  ``--memory-swap``, so nothing goes to swap); a process that allocates past it is killed by
  the kernel's OOM killer, the simulator's ``memory`` fault. :func:`oom_killed` says when.

The iptables rules are applied from the host, ``nsenter -t <pid> -n iptables ...`` into the
container's network namespace (measured 5 ms; the host has nsenter and iptables): it works
for any image, paused ones too, and needs nothing inside the container. Where the host lacks
either tool, a short-lived helper container of the emulator image joins the target's network
namespace and runs them (:func:`iptables`, ``via="helper"``).

No netem in this machine's kernel: delay and jitter stay in the fault proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime

from chaos.dockercli import KIND_LABEL, RUN_LABEL, docker
from topologies.errors import RunError, UsageError

__all__ = ["Undo", "inspect", "kill", "start", "pause", "unpause", "partition", "heal", "loss",
           "cpu", "memory", "oom_killed", "iptables"]

#: Takes a fault back; calling it twice is harmless only where the docstring says so.
Undo = Callable[[], None]

#: The rules of a partition: every packet in or out of the container's network interface.
_PARTITION = (("INPUT", "-i", "eth0", "-j", "DROP"), ("OUTPUT", "-o", "eth0", "-j", "DROP"))


def inspect(container: str) -> dict:
    """``docker inspect`` of one container (RunError when there is no such container)."""
    done = docker("inspect", "--type", "container", container, timeout=30)
    return json.loads(done.stdout)[0]


def _update(container: str, *args: str) -> None:
    docker("update", *args, container, timeout=30)


def kill(container: str, timeout: float = 10.0) -> Undo:
    """``docker kill`` the container and return once it is no longer running (RunError when
    it still runs after ``timeout`` s); the undo is :func:`start`."""
    docker("kill", container, timeout=30)
    # docker kill returns once the signal is sent; the caller wants a dead container
    deadline = time.monotonic() + timeout
    while inspect(container)["State"]["Running"]:
        if time.monotonic() > deadline:
            raise RunError(f"{container}: still running {timeout:g} s after docker kill")
        time.sleep(0.05)
    return lambda: start(container)


def start(container: str) -> None:
    """``docker start``: the container's command runs again from scratch (not yet ready:
    the caller waits for its health check)."""
    docker("start", container, timeout=60)


def pause(container: str) -> Undo:
    """``docker pause``: freeze every process of the container; the undo is :func:`unpause`."""
    docker("pause", container, timeout=30)
    return lambda: unpause(container)


def unpause(container: str) -> None:
    """``docker unpause``: thaw the container's processes."""
    docker("unpause", container, timeout=30)


def iptables(container: str, *rule: str, via: str | None = None) -> str:
    """Run ``iptables RULE...`` in the container's network namespace and return its output.

    ``via="nsenter"`` (the default when the host has nsenter and iptables): from the host,
    ``nsenter -t <pid> -n iptables``. ``via="helper"`` (the default otherwise): in a
    short-lived container of the emulator image (it has iptables) sharing the target's
    network namespace (``--network container:<c> --cap-add NET_ADMIN``), labelled with the
    target's run; works for any target image. (``docker exec --privileged`` is refused on
    this machine: "unable to apply caps".)"""
    if via is None:
        via = "nsenter" if shutil.which("nsenter") and shutil.which("iptables") else "helper"
    info = inspect(container)
    if not info["State"]["Pid"]:
        raise RunError(f"{container}: not running, no network namespace to change")
    if via == "nsenter":
        cmd = ["nsenter", "-t", str(info["State"]["Pid"]), "-n", "iptables", "-w", "5", *rule]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RunError(f"{container}: {' '.join(cmd[4:])}: {last}")
        return done.stdout
    from chaos.images import emulator_image  # only this path needs the image

    labels = info["Config"].get("Labels") or {}
    run = labels.get(RUN_LABEL, "")
    return docker("run", "--rm", "--label", f"{RUN_LABEL}={run}", "--label",
                  f"{KIND_LABEL}=other", "--network", f"container:{container}",
                  "--cap-add", "NET_ADMIN", emulator_image(build=False),
                  "iptables", "-w", "5", *rule, timeout=60).stdout


def partition(container: str) -> Undo:
    """Drop every packet in and out of the container's eth0 (attempts hang until the
    caller's timeout); the undo is :func:`heal`."""
    for chain, *spec in _PARTITION:
        iptables(container, "-I", chain, *spec)
    return lambda: heal(container)


def heal(container: str) -> None:
    """Delete the rules :func:`partition` inserted (as many times as it was applied)."""
    for chain, *spec in _PARTITION:
        iptables(container, "-D", chain, *spec)


def loss(container: str, probability: float) -> Undo:
    """Drop each incoming packet on eth0 with ``probability`` (0..1); the undo deletes the
    rule."""
    if not 0.0 <= probability <= 1.0:
        raise UsageError(f"loss probability must be within 0..1, not {probability}")
    spec = ("INPUT", "-i", "eth0", "-m", "statistic", "--mode", "random",
            "--probability", f"{probability:.6f}", "-j", "DROP")
    iptables(container, "-I", *spec)

    def undo() -> None:
        iptables(container, "-D", *spec)
    return undo


def cpu(container: str, fraction: float, base_cpus: float = 1.0) -> Undo:
    """Cut the container's CPU quota to ``fraction`` (0 < f <= 1) of ``base_cpus`` CPUs
    (``docker update --cpus``); the undo restores the quota it had (a container without one
    gets all the host's CPUs: docker update cannot unset a quota)."""
    if not 0.0 < fraction <= 1.0 or base_cpus <= 0:
        raise UsageError(f"cpu fraction must be in (0, 1] and base_cpus > 0, not "
                         f"{fraction}, {base_cpus}")
    before = inspect(container)["HostConfig"].get("NanoCpus") or 0
    # docker refuses less than 0.01 CPU
    docker("update", "--cpus", f"{max(fraction * base_cpus, 0.01):.3f}", container, timeout=30)
    restore = before / 1e9 if before else float(os.cpu_count() or 1)
    return lambda: _update(container, "--cpus", f"{restore:.3f}")


def memory(container: str, limit_bytes: int) -> Undo:
    """Limit the container's memory to ``limit_bytes`` with no swap beyond it (``docker
    update --memory L --memory-swap L``); the undo restores the limits it had (a container
    without one gets the host's physical memory: docker update cannot unset a limit)."""
    if limit_bytes < 6 * 1024 * 1024:
        raise UsageError(f"memory limit {limit_bytes} bytes: docker's minimum is 6 MiB")
    host = inspect(container)["HostConfig"]
    mem, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    docker("update", "--memory", str(limit_bytes), "--memory-swap", str(limit_bytes),
           container, timeout=30)
    mem_back = mem or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # cgroup v1 wants memory <= memory+swap at every step: both in one update
    swap_back = swap if swap > 0 else mem_back
    return lambda: _update(container, "--memory", str(mem_back), "--memory-swap",
                           str(swap_back))


def _unix(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds as Unix time."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def oom_killed(container: str, since: float | None = None) -> float | None:
    """The Unix time of the first OOM kill in the container since ``since`` (default: its
    last start), or None. A container whose main process the OOM killer took shows
    ``State.OOMKilled`` (its time: ``FinishedAt``); a kill of another process in it (the
    container lives on) only shows as an ``oom`` event, so the events are asked too."""
    state = inspect(container)["State"]
    if since is None:
        since = _unix(state["StartedAt"])
    if state.get("OOMKilled") and not state.get("Running"):
        finished = _unix(state["FinishedAt"])
        if finished >= since:
            return finished
    done = docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                  "--filter", f"container={container}", "--filter", "event=oom",
                  "--format", "{{.TimeNano}}", timeout=30)
    times = [int(line) / 1e9 for line in done.stdout.split() if line.strip().isdigit()]
    return min(times) if times else None
