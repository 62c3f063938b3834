"""The small files a load process and faultmesh pass each other: JSON status and progress
files written whole (a reader never sees half of one), read back leniently, and the tail of
a process's log quoted when it fails. Shared by the one-process load (``worker``), the
distributed one (``distworker``) and the parents that start them (``runner``,
``distributed``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

__all__ = ["write_json", "read_json", "tail", "stop"]


def write_json(path: str, data: Any) -> None:
    """``data`` as JSON at ``path``, replaced whole (written beside it, then renamed)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any]:
    """The JSON object at ``path``; empty when it is missing or not (yet) readable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def tail(path: str, lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined on one line (for a one-line error)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def stop(proc: subprocess.Popen[bytes], wait: float) -> None:
    """Ask a load process to stop (SIGINT: it writes its status and rows); kill it if it has
    not ended ``wait`` seconds later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
