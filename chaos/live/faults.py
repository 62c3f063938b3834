"""A live run's faults: what each fault type does to the proxies, the emulators or the
replica processes, and how it is undone (docs/live.md, Fault mapping).

* network faults are toxics on the target's proxies (``down`` disables them;
  ``partition`` is a blackhole: a ``timeout`` toxic with timeout 0 on both streams of the
  chosen replicas' proxies, which holds their connections, open ones included, until it is
  removed and the proxy resets them);
* ``errors`` and ``slow`` go to every replica's admin API (and to replicas started or
  restarted while they are active); on a user's program (``command:``), which has none, they
  are HTTP toxics (:func:`chaos.proxy.toxics.fault_toxic`) on the proxies into it;
* ``kill`` SIGKILLs replicas, which serve again on the same port after the service's
  ``restart`` (their process starts ahead and listens from the due time on); ``pause``
  SIGSTOPs them for the window (SIGCONT at its end).

Replicas are chosen as the simulator chooses them: ``kill`` the first ``replicas`` (default
1) of those serving, ``pause`` and ``partition`` the first ``replicas`` (default all) of
those existing, in the order they started.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chaos.proxy.toxics import fault_toxic
from topologies.errors import RunError, UsageError
from topologies.model import Fault

from .containers import CONTAINER_FAULTS, apply_container_fault
from .rollout import Rollout
from .util import http

if TYPE_CHECKING:
    from .book import Replica
    from .run import LiveRun

__all__ = ["Applied", "apply", "remove", "NETWORK_FAULTS", "EMULATOR_FAULTS",
           "PROCESS_FAULTS"]

#: Faults applied as toxics on proxies (``down`` disables proxies).
NETWORK_FAULTS = ("latency", "bandwidth", "down", "timeout", "reset_peer", "partition")
#: Faults the emulator applies itself (its admin API).
EMULATOR_FAULTS = ("errors", "slow")
#: Faults done to replica processes (or containers).
PROCESS_FAULTS = ("kill", "pause")

_TOXICS = ("latency", "bandwidth", "timeout", "reset_peer")


@dataclass
class Applied:
    """A fault as it actually ran: wall-clock window and what was done to undo it."""

    fault: Fault
    start: float | None = None
    end: float | None = None
    undo: list[Any] = field(default_factory=list)
    watch: Any = None  # a memory fault's OOM watch (docker runtime)


def admin_body(f: Fault) -> dict[str, Any]:
    """The emulator admin request of an ``errors``, ``slow`` or ``cpu`` fault."""
    if f.type == "errors":
        return {"type": "errors", "rate": 1.0 if f.rate is None else f.rate,
                "status": f.status or 500}
    if f.type == "cpu":
        return {"type": "cpu", "fraction": f.fraction or 1.0}
    return {"type": "slow", "factor": f.factor or 1.0}


def apply(run: LiveRun, a: Applied, tag: str) -> None:
    """Apply fault ``a`` now; toxics are named ``tag``."""
    f = a.fault
    service = run.target_service(f.target)
    if f.type in _TOXICS:
        attributes = _attributes(f)
        for e in run.target_edges(f.target):
            _toxic(run, a, e, tag, f.type, "downstream", attributes)
    elif f.type == "down":
        for e in run.target_edges(f.target):
            e.proxy.disable()
            a.undo.append(("enable", e))
    elif f.type in CONTAINER_FAULTS and run.runtime.containers:
        chosen = _chosen(run.book.existing(service),
                         f.replicas if f.type in ("partition", "memory") else None)
        apply_container_fault(run, a, service, chosen)
        if f.type == "cpu" and service not in run.user_services:
            _admin(run, a, service, f)  # the emulated work is slept: stretch it too
    elif f.type == "partition":
        for rep in _chosen(run.book.existing(service), f.replicas):
            for e in run.edges_into(None, service):
                if e.replica == rep.index:
                    _toxic(run, a, e, f"{tag}_up", "timeout", "upstream", {"timeout": 0})
                    _toxic(run, a, e, f"{tag}_down", "timeout", "downstream", {"timeout": 0})
    elif f.type in EMULATOR_FAULTS and service in run.user_services:
        # a user's program has no admin API: the proxies into it answer or delay instead
        body = fault_toxic(f.type, rate=f.rate, status=f.status, factor=f.factor)
        for e in run.target_edges(f.target):
            e.proxy.add_toxic(name=tag, stream="downstream", **body)
            a.undo.append(("toxic", e, tag))
            if tag not in e.proxy.toxics():
                run.problem(f"proxy {e.name} refused the {body['type']} toxic")
    elif f.type in EMULATOR_FAULTS:
        _admin(run, a, service, f)
    elif f.type == "pause":
        for rep in _chosen(run.book.existing(service), f.replicas):
            if rep.process is not None and not rep.down:
                rep.process.pause()
                rep.paused = True
                a.undo.append(("cont", rep))
    elif f.type == "rollout":
        rollout = Rollout(run, a, service)
        run.timers.append(rollout)  # type: ignore[arg-type]  # cancelled, joined at teardown
        rollout.start()
    elif f.type == "kill":
        victims = run.book.serving(service)[: f.replicas or 1]
        if not victims:
            run.problem(f"fault kill on {f.target}: no replica serving to kill")
        restart = run.topology.services[service].restart
        for rep in victims:
            rep.process.kill()
            killed = time.time()
            run.book.set_down(rep, killed, True)
            # started ahead, listening from the due time: serving again after ``restart``
            lead = min(restart, run.startup_time())
            timer = threading.Timer(restart - lead, run.restart,
                                    args=(a, rep, killed + restart))
            timer.daemon = True
            run.timers.append(timer)
            timer.start()
    else:
        raise UsageError(f"fault type {f.type!r} is not supported by the live engine")


def remove(run: LiveRun, a: Applied) -> None:
    """Undo what :func:`apply` did (a killed replica restarts by itself)."""
    for item in a.undo:
        try:
            if item[0] == "toxic":
                item[1].proxy.destroy_toxic(item[2])
            elif item[0] == "enable":
                item[1].proxy.enable()
            elif item[0] == "admin":
                _, service, kind = item
                run.admin_faults.get(service, {}).pop(kind, None)
                for rep in run.book.existing(service):
                    if rep.port is not None and not rep.down:
                        http("DELETE", rep.port, f"/_faultmesh/faults/{kind}")
            elif item[0] == "cont":
                rep = item[1]
                rep.paused = False
                if rep.process is not None:
                    rep.process.resume()
            elif item[0] == "call":
                item[1]()
        except (OSError, ProcessLookupError, RunError) as exc:
            if item[0] == "call":
                run.problem(f"undoing {a.fault.type} on {a.fault.target}: {exc}")
    a.undo.clear()


def _admin(run: LiveRun, a: Applied, service: str, f: Fault) -> None:
    """A fault the emulator applies itself, sent to every replica of ``service`` (and kept
    for the replicas started while it is in force)."""
    body = admin_body(f)
    run.admin_faults.setdefault(service, {})[f.type] = body
    a.undo.append(("admin", service, f.type))
    for rep in run.book.existing(service):
        if rep.port is not None and not rep.down:
            http("POST", rep.port, "/_faultmesh/faults", body)


def _chosen(reps: list[Replica], n: int | None) -> list[Replica]:
    return reps if n is None else reps[:n]


def _attributes(f: Fault) -> dict[str, int]:
    if f.type == "latency":
        return {"latency": round(1000 * (f.latency or 0.0)),
                "jitter": round(1000 * (f.jitter or 0.0))}
    if f.type == "bandwidth":
        return {"rate": max(1, round((f.rate or 0.0) / 1024))}
    return {"timeout": round(1000 * (f.timeout or 0.0))}  # timeout, reset_peer


def _toxic(run: LiveRun, a: Applied, e: Any, name: str, kind: str, stream: str,
           attributes: dict[str, int]) -> None:
    e.proxy.add_toxic(type=kind, name=name, stream=stream, attributes=attributes)
    a.undo.append(("toxic", e, name))
    if name not in e.proxy.toxics():  # the client does not raise on errors
        run.problem(f"proxy {e.name} refused the {kind} toxic {attributes}")
