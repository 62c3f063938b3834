"""Output paths, checked before a command does any work.

A simulation may run for minutes before it writes a byte; a path it cannot write must stop it
at the start, with one line, not with a traceback at the end. Every command that writes
(sim, live, report, gate, sweep, graph, schema) checks each of its output paths here first.

Two kinds of failure, two exit codes, as everywhere in faultmesh:

* the argument is wrong (:class:`UsageError`, exit 2): a file where a directory is needed,
  a directory where a file is needed, a path through a file;
* the environment is wrong (:class:`RunError`, exit 3): the place cannot be written (no
  permission, a read-only or pseudo filesystem such as /proc), or its disk is (nearly) full.

Writability is found out by creating (and at once removing) a probe file in the directory
the command will write in, or in its nearest existing ancestor: permission bits alone do not
tell (root passes every permission check, and /proc refuses root). Nothing else is created:
a missing result directory is made by the run itself, so a refused run leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile

from topologies.errors import RunError, UsageError

__all__ = ["MIN_FREE_BYTES", "check_output_dir", "check_output_file"]

# Below this much free space a run is refused up front: result tables of a short bundled
# run take a few MiB, and a disk that full fails mid-write anyway.
MIN_FREE_BYTES = 8 * 1024 * 1024


def check_output_dir(path: str, option: str) -> str:
    """Check that ``path`` is, or can be made, a directory this process can write in.

    ``option`` names the argument in messages (``--out``). Returns ``path``.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a file, not a directory")
    _check_writable_from(path, option)
    return path


def check_output_file(path: str, option: str) -> str:
    """Check that a file can be written (made or replaced) at ``path``.

    ``option`` names the argument in messages (``-o``, ``--junit``). Returns ``path``.
    """
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if path.endswith(os.sep):
        raise UsageError(f"{option} {path}: names a directory; give a file name")
    # the file is written beside itself and renamed into place: its directory must be writable
    _check_writable_from(os.path.dirname(os.path.abspath(path)), option, shown=path)
    return path


def _check_writable_from(directory: str, option: str, shown: str | None = None) -> None:
    """``directory`` (to be written in, made if missing): the nearest existing ancestor must be
    a directory we can create files in, on a disk with room."""
    shown = shown or directory
    existing = _nearest_existing(directory)
    if not os.path.isdir(existing):
        raise UsageError(f"{option} {shown}: {existing} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".faultmesh-probe-", dir=existing)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise RunError(f"{option} {shown}: cannot write in {existing} ({reason})") from None
    os.close(fd)
    os.unlink(probe)
    try:
        stat = os.statvfs(existing)
    except OSError:
        return  # no figure to judge by; the write itself will tell
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        raise RunError(f"{option} {shown}: no space left on the disk of {existing} "
                       f"({free / 1024 / 1024:.1f} MiB free, a run needs at least "
                       f"{MIN_FREE_BYTES // 1024 // 1024} MiB)")


def _nearest_existing(path: str) -> str:
    """``path`` itself if it exists, else its closest existing ancestor."""
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current
