"""`faultmesh clean` removes what crashed runs left, and nothing else.

The orphan is made as a crash makes one: a process starts an emulator (as a live run does),
the emulator is paused (SIGSTOP, as a `pause` fault does, so its own watchdog cannot run),
and its parent exits without stopping it. Temporary directories: a load work directory of a
pid that is gone, an old-style one without a pid, one of a running process, a gate result
directory. About 5 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from procs import alive

TOPOLOGY = """\
version: 1
name: orphans
entry: a
workload: {model: open, rate: 1/s, duration: 10s}
services:
  a: {latency: {dist: constant, value: 1ms}}
"""

CRASH = """\
import os, signal, sys
from chaos.emulator.launch import start_replica
rp = start_replica(sys.argv[1], "a", sys.argv[2])
os.kill(rp.process.pid, signal.SIGSTOP)   # paused by a fault when faultmesh died
print(rp.process.pid, flush=True)
os._exit(0)                               # dies without stopping it
"""


def _state(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _clean(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultmesh", "clean", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp)})


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_clean_removes_an_orphaned_emulator_and_stale_work_dirs_and_keeps_the_rest(
        tmp_path) -> None:
    from chaos.emulator.launch import start_replica

    topo = tmp_path / "orphans.yaml"
    topo.write_text(TOPOLOGY)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stale = tmp / f"faultmesh-load-{_dead_pid()}-k2j_x9a1"
    old_style = tmp / "faultmesh-load-q8_3nzp0"
    running = tmp / f"faultmesh-load-{os.getpid()}-abcd1234"
    gate = tmp / "faultmesh-gate-orphans-0f3k2j1a"
    for d in (stale, old_style, running, gate):
        d.mkdir()
        (d / "spool.csv").write_text("start,end\n")

    # stderr not a pipe: the emulator inherits it and would hold it open
    crash = subprocess.run([sys.executable, "-c", CRASH, str(topo), str(tmp_path / "o.csv")],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           timeout=60)
    assert crash.returncode == 0
    orphan = int(crash.stdout)
    own = start_replica(str(topo), "a", str(tmp_path / "own.csv"))  # a run still going
    try:
        state, ppid = _state(orphan)
        assert state == "T" and ppid != os.getpid()

        listed = _clean(tmp, "--dry-run")
        assert listed.returncode == 0, listed.stderr
        assert f"would remove emulator process {orphan} (a/0" in listed.stdout
        assert f"would remove directory {stale}: its faultmesh process" in listed.stdout
        assert f"would remove directory {old_style}: no process uses it" in listed.stdout
        assert alive(orphan) and stale.exists() and old_style.exists()

        done = _clean(tmp)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"removed emulator process {orphan} (a/0 of {tmp_path}): " \
               "its faultmesh process" in done.stdout
        assert "paused" in done.stdout
        assert any(line.startswith(f"removed directory {stale}: ") for line in lines)
        assert any(line.startswith(f"removed directory {old_style}: ") for line in lines)
        assert not alive(orphan)
        assert not stale.exists() and not old_style.exists()
        # a live run's process and directory, and gate results, are not leftovers
        assert str(own.process.pid) not in done.stdout and own.process.poll() is None
        assert running.exists() and gate.exists()
        assert str(running) not in done.stdout and str(gate) not in done.stdout
    finally:
        own.stop()
        if alive(orphan):
            os.kill(orphan, 9)
