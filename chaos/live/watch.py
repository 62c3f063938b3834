"""What a live run tells whoever watches it: the step it is at, the load's counts so far and
the faults in force. The run only calls a :class:`LiveWatch`; the command line shows it
(``faultmesh.progress.LiveView``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from topologies.model import Topology

    from .faults import Applied

__all__ = ["LiveWatch", "active_faults"]


class LiveWatch(Protocol):
    """The watcher of a live run; every method may be called from any thread."""

    def phase(self, text: str) -> None:
        """A step begins: ``starting 9 replicas``, ``starting the load``, ``tearing down``."""

    def load(self, counts: dict[str, Any], faults: Sequence[str]) -> None:
        """The load's counts so far (see ``loadtests.runner.LoadProgress``) and the faults
        in force now, as :func:`active_faults` names them."""

    def echo(self, message: str) -> None:
        """A warning to show now."""


def active_faults(topology: Topology, applied: Sequence[Applied],
                  now: float | None = None) -> list[str]:
    """``latency on llm``, ... for each fault in force at ``now`` (wall clock): applied and
    not yet removed; a kill without a duration for as long as its replicas take to restart."""
    now = time.time() if now is None else now
    names = []
    for a in list(applied):  # the scheduler thread may append meanwhile
        f = a.fault
        if a.start is None or a.end is not None:
            continue
        if f.type == "kill" and f.duration is None:
            service = f.target.split("->", 1)[-1].strip()
            spec = topology.services.get(service)
            if spec is None or now - a.start > spec.restart:
                continue
        names.append(f"{f.type} on {f.target}")
    return names
