"""The Docker engine as faultmesh drives it: the ``docker`` command line, one call at a time.

Everything faultmesh does with containers (build images, start replicas, inject faults,
clean up) goes through :func:`docker`, so there is one place that knows how a failed call
reads and one place that decides what "no Docker here" means (:func:`unavailable`). The
command line, not an SDK: it is what users type to look at what faultmesh made, and on these
machines it is the one client that certainly matches the engine.

Every object a run creates carries the label :data:`RUN_LABEL` (its value the run's id) and
:data:`KIND_LABEL` (``replica``, ``sandbox``, ``proxy``, ``network``, ``image``,
``reaper``), so that whatever a crashed run left can be found and removed by label
(``faultmesh clean``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence

from topologies.errors import RunError

__all__ = ["RUN_LABEL", "KIND_LABEL", "docker", "unavailable", "require_docker", "new_run_id",
           "run_pid"]

#: Label on every container, network and image a run creates; its value is the run's id.
RUN_LABEL = "faultmesh.run"
#: Label saying what the object is to faultmesh.
KIND_LABEL = "faultmesh.kind"


_RUN_ID = re.compile(r"^faultmesh-([0-9]+)-[0-9a-f]{6}$")


def new_run_id() -> str:
    """A fresh run id, ``faultmesh-<pid>-<6 hex>``: the pid says which process owns the run
    (``faultmesh clean`` leaves a run alone while that process lives), the random part keeps
    two runs of one process apart."""
    return f"faultmesh-{os.getpid()}-{secrets.token_hex(3)}"


def run_pid(run_id: str) -> int | None:
    """The pid of the process that owns ``run_id``; None when it is not a faultmesh run id."""
    match = _RUN_ID.match(run_id)
    return int(match.group(1)) if match else None


def docker(*args: str, check: bool = True, timeout: float | None = 120.0,
           input: str | bytes | None = None, text: bool = True
           ) -> subprocess.CompletedProcess:
    """Run ``docker ARGS...`` and return the finished process (output captured).

    With ``check`` a non-zero exit raises :class:`RunError` (exit 3: an environment problem)
    carrying the command and the last line docker printed; a call that takes longer than
    ``timeout`` seconds is killed and raises too.
    """
    cmd = ["docker", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input,
                              text=text, check=False)
    except FileNotFoundError:
        raise RunError("docker: command not found (install Docker Engine)") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"{_show(cmd)}: no answer within {timeout:g} s") from None
    if check and done.returncode != 0:
        err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode(
            "utf-8", "replace")
        last = (err.strip().splitlines() or ["(no message)"])[-1]
        raise RunError(f"{_show(cmd)}: {last}")
    return done


def unavailable() -> str | None:
    """Why containers cannot be run here (no docker command, no engine answering), or None
    when the engine answers."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (docker version timed out)"
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"the Docker engine does not answer ({last})"
    return None


def require_docker() -> None:
    """Raise :class:`RunError` (exit 3) saying why when no Docker engine answers."""
    why = unavailable()
    if why:
        raise RunError(f"--runtime docker: {why}")


def _show(cmd: Sequence[str], limit: int = 8) -> str:
    """The command as a reader recognises it: the first few words."""
    words = list(cmd[:limit]) + (["..."] if len(cmd) > limit else [])
    return " ".join(words)
