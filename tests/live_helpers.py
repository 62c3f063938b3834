"""Helpers for the live-run tests: a `faultmesh live` run, reading result CSVs and finding
what a run left behind (its emulators, load worker, proxies and listening ports)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

from procs import listening, listening_ports, run_processes

__all__ = ["rows", "emulators_of", "live_cli", "run_ports", "leftovers"]

#: result directory -> (pid of the faultmesh process that wrote it, ports it and its
#: children listened on while it ran), for :func:`leftovers`
_RUNS: dict[str, tuple[int, set[int]]] = {}


def run_ports(pid: int) -> set[int]:
    """The TCP ports faultmesh process ``pid`` and its children listen on now (proxies,
    relays, emulators)."""
    ports = listening_ports(pid)
    for child in run_processes(parent=pid):
        ports |= listening_ports(child.pid)
    return ports


def live_cli(base: Path, name: str, topology: str, scenario: str | None,
             timeout: float = 90) -> tuple[int, str, str]:
    """Run ``faultmesh live`` on ``topology`` (YAML text) under ``scenario`` (None: the
    baseline) in a child process; returns (exit code, its output, the result directory).
    The ports the run listened on are sampled while it runs, for :func:`leftovers`."""
    topo = base / name
    topo.write_text(topology)
    out = str(base / "result")
    argv = [sys.executable, "-m", "faultmesh", "live", str(topo), "--out", out, "--no-report"]
    if scenario is not None:
        argv += ["--scenario", scenario]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            ports.update(run_ports(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        done.set()
        sampler.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _RUNS[out] = (proc.pid, ports)
    return proc.returncode, stdout + stderr, out


def leftovers(out: str, parent: int | None = None, ports: set[int] | None = None
              ) -> list[str]:
    """What the live run that wrote ``out`` left behind, one line each: processes of any
    kind (emulator, load worker, proxy) that name ``out`` or carry the run's
    FAULTMESH_PARENT marker, and ports the run listened on that still listen. ``parent`` and
    ``ports`` default to what :func:`live_cli` recorded for ``out``."""
    pid, seen = _RUNS.get(out, (None, set()))
    parent = pid if parent is None else parent
    ports = seen if ports is None else ports
    procs = {p.pid: p for p in run_processes(out=out)}
    if parent is not None:
        procs.update((p.pid, p) for p in run_processes(parent=parent))
    left = [f"{p.kind} {p.pid}: {' '.join(p.args)}" for p in procs.values()]
    left += [f"port {port} still listening" for port in sorted(listening(ports))]
    return left


def rows(path: str) -> list[dict[str, str]]:
    """The rows of a result CSV as dicts."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def emulators_of(out: str) -> list[str]:
    """Command lines of live emulator processes whose arguments mention ``out``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "chaos.emulator" in cmd and out in cmd:
            found.append(cmd)
    return found
