"""Helpers for the live-run tests: reading result CSVs and finding leftover processes."""

from __future__ import annotations

import csv
import os

__all__ = ["rows", "emulators_of"]


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
