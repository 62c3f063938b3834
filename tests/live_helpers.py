"""Helpers for the live-run tests: a `faultmesh live` run, reading result CSVs and finding
leftover processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["rows", "emulators_of", "live_cli"]


def live_cli(base: Path, name: str, topology: str, scenario: str,
             timeout: float = 90) -> tuple[int, str, str]:
    """Run ``faultmesh live`` on ``topology`` (YAML text) under ``scenario`` in a child
    process; returns (exit code, its output, the result directory)."""
    topo = base / name
    topo.write_text(topology)
    out = str(base / "result")
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo),
                           "--scenario", scenario, "--out", out, "--no-report"],
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, out


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
