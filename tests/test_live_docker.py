"""``faultmesh live --runtime docker``: real containers on a per-run network, the fault proxy
in a container, Locust on the host; each fault's effect read back from the result files, and
nothing labelled with the run left afterwards (normal end, SIGTERM, SIGKILL).

Every test runs ``faultmesh live`` as a real subprocess. They skip, with the reason, where no
Docker engine answers. The emulator image is built on first use (about 45 s cold, cached by
its source hash); each run then takes 20-40 s.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from chaos.dockercli import RUN_LABEL, docker, run_pid, unavailable

_WHY = unavailable()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_WHY is not None, reason=f"no Docker engine: {_WHY}")]

#: A gateway calling two backend replicas; one scenario with a latency fault, a kill, a
#: partition and a pause in separate windows (the restart is 2 s, calls time out after 0.5 s).
TOPOLOGY = """\
version: 1
name: docker-mix
entry: gateway
workload: {model: open, rate: 20/s, duration: 15s, warmup: 1s}
services:
  gateway:
    workers: 16
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 500ms}
  backend:
    replicas: 2
    workers: 8
    restart: 2s
    latency: {dist: constant, value: 10ms}
    memory: {base: 16MiB, per_request: 8MiB}
scenarios:
  mix:
    faults:
      - {type: latency, target: backend, start: 2s, duration: 2s, latency: 150ms}
      - {type: kill, target: backend, start: 5s}
      - {type: partition, target: backend, replicas: 1, start: 9s, duration: 2s}
      - {type: pause, target: backend, replicas: 1, start: 12s, duration: 1.5s}
  resources:
    faults:
      - {type: cpu, target: backend, start: 2s, duration: 3s, fraction: 0.25}
      - {type: loss, target: backend, start: 6s, duration: 2s, probability: 0.3}
      - {type: memory, target: backend, start: 9s, duration: 3s, limit: 20MiB}
"""


def _run_ids() -> set[str]:
    """Run ids of every container and network labelled ``faultmesh.run`` now."""
    ids = set()
    for what in (("ps", "-a"), ("network", "ls")):
        done = docker(*what, "--filter", f"label={RUN_LABEL}",
                      "--format", f'{{{{.Label "{RUN_LABEL}"}}}}')
        ids.update(done.stdout.split())
    return ids


def _left_by(pid: int) -> set[str]:
    """Run ids of the faultmesh process ``pid`` that still label a container or network
    (other runs on the machine, a parallel test's, are not this test's business)."""
    return {i for i in _run_ids() if run_pid(i) == pid}


def _live(tmp_path: Path, scenario: str, *extra: str) -> subprocess.Popen[str]:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    return subprocess.Popen(
        [sys.executable, "-m", "faultmesh", "live", str(topo), "--runtime", "docker",
         "--scenario", scenario, "--out", str(tmp_path / "out"), "--no-report", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FAULTMESH_PROGRESS": "off"})


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _window(faults: list[dict[str, str]], kind: str) -> tuple[float, float]:
    row = next(r for r in faults if r["type"] == kind)
    return float(row["start"]), float(row["end"])


def _backend_calls(calls: list[dict[str, str]], a: float, b: float) -> list[dict[str, str]]:
    return [c for c in calls if c["callee"] == "backend" and a <= float(c["start"]) < b]


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def test_latency_kill_partition_and_pause_in_containers(tmp_path) -> None:
    """Each fault has its effect on the calls into the backend's containers, the result
    files are the process runtime's, and nothing of the run is left."""
    proc = _live(tmp_path, "mix")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    res = tmp_path / "out"
    for name in ("summary.json", "requests.csv", "calls.csv", "timeseries.csv", "faults.csv",
                 "topology.yaml"):
        assert (res / name).is_file(), name
    faults = _rows(res / "faults.csv")
    calls = _rows(res / "calls.csv")
    assert [r["type"] for r in faults] == ["latency", "kill", "partition", "pause"]

    # latency: 150 ms more on every call into the backend (10 ms of own work)
    a, b = _window(faults, "latency")
    during = [float(c["end"]) - float(c["start"]) for c in _backend_calls(calls, a + 0.2, b)
              if c["ok"] == "1"]
    outside = [float(c["end"]) - float(c["start"]) for c in _backend_calls(calls, 0.5, a)
               if c["ok"] == "1"]
    assert len(during) > 10 and len(outside) > 10
    assert 0.15 <= _median(during) < 0.25, _median(during)
    assert _median(outside) < 0.05, _median(outside)

    # kill: one replica down for the restart (2 s), its calls refused; ready count dips
    a, b = _window(faults, "kill")
    assert 2.0 <= b - a < 3.5, (a, b)
    failed = [c for c in _backend_calls(calls, a, a + 1.5) if c["ok"] != "1"]
    assert failed, "a killed replica refuses its share of the calls"
    assert all(float(c["end"]) - float(c["start"]) < 0.3 for c in failed)  # refused, not hung
    ready = defaultdict(list)
    for r in _rows(res / "timeseries.csv"):
        if r["service"] == "backend":
            ready[int(float(r["t"]))].append(float(r["ready_replicas"]))
    assert min(min(v) for t, v in ready.items() if a <= t < a + 1.5) == 1
    assert max(v[0] for t, v in ready.items() if t >= b + 1) == 2

    # partition: attempts into the cut-off replica hang until the 0.5 s timeout
    a, b = _window(faults, "partition")
    hung = [c for c in _backend_calls(calls, a + 0.1, b - 0.6) if c["ok"] != "1"]
    assert hung, "calls into a partitioned replica fail"
    assert all(0.45 <= float(c["end"]) - float(c["start"]) < 0.8 for c in hung)
    assert {c["replica"] for c in hung} == {"0"}  # replicas: 1 cuts off the first one
    after = _backend_calls(calls, b + 0.3, _window(faults, "pause")[0])  # before the pause
    assert after and all(c["ok"] == "1" for c in after), "healed: every call answered"

    # pause: the frozen container holds the calls sent to it (docker pause): they time out
    a, b = _window(faults, "pause")
    held = [c for c in _backend_calls(calls, a + 0.1, b - 0.6) if c["replica"] == "0"]
    assert held and all(c["ok"] != "1" and float(c["end"]) - float(c["start"]) >= 0.45
                        for c in held), held
    assert all(c["ok"] == "1" for c in _backend_calls(calls, a + 0.1, b) if c["replica"] == "1")

    summary = json.loads((res / "summary.json").read_text())
    assert summary["engine"] == "live" and not summary.get("partial")
    assert not _left_by(proc.pid), "a container or network of the run is left"


def test_cpu_loss_and_memory_in_containers(tmp_path) -> None:
    """cpu stretches the emulated work (and cuts the real quota), loss slows calls through
    retransmissions, a memory limit under what the replica holds OOM-kills it: one faults.csv
    row per OOM kill, and the replica serves again after its restart."""
    proc = _live(tmp_path, "resources")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    res = tmp_path / "out"
    faults = _rows(res / "faults.csv")
    calls = _rows(res / "calls.csv")

    a, b = _window(faults, "cpu")
    slowed = [float(c["end"]) - float(c["start"]) for c in _backend_calls(calls, a + 0.2, b)
              if c["ok"] == "1"]
    assert slowed and 0.035 <= _median(slowed) < 0.08, _median(slowed)  # 10 ms / 0.25

    a, b = _window(faults, "loss")
    lossy = [float(c["end"]) - float(c["start"]) for c in _backend_calls(calls, a + 0.2, b)]
    # a lost segment costs a retransmission timeout (about 200 ms or more)
    assert sum(1 for x in lossy if x > 0.15) >= 2, sorted(lossy)[-5:]

    # 16 MiB held at rest, 8 MiB more per request in progress: over 20 MiB with the first
    # request, each replica is OOM-killed, and again after its restart under the limit (as
    # the simulator's rows of the same scenario say)
    ooms = [r for r in faults if r["type"] == "memory" and "oom_kill" in r["parameters"]]
    assert {json.loads(r["parameters"])["oom_kill"] for r in ooms} == {0, 1}, faults
    a, b = _window(faults, "memory")
    for r in ooms:
        assert json.loads(r["parameters"])["limit"] == 20 * 1024 * 1024
        assert a <= float(r["start"]) < b
        # down for the restart (2 s), or until the run's end
        assert float(r["end"]) - float(r["start"]) == pytest.approx(
            min(2.0, float(b) + 1.0 - float(r["start"])), abs=1.1)
    first = min(float(r["start"]) for r in ooms)
    assert first - a < 1.0, "the first request over the limit is killed at once"
    assert not _left_by(proc.pid)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_nothing_left_after_sigterm_or_sigkill(tmp_path, how) -> None:
    """Stopped during the load, by SIGTERM (partial results, exit 143) or SIGKILL (the
    reaper), the run leaves no container or network behind."""
    proc = _live(tmp_path, "mix")
    ours: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until the run's replicas are up and loaded
        ours = _left_by(proc.pid)
        if ours and (tmp_path / "out" / "live-logs").is_dir() and any(
                (tmp_path / "out").glob("live-logs/*.csv")):
            break
        time.sleep(0.5)
    assert ours, "the run made no container"
    time.sleep(4)  # into the load
    proc.send_signal(how)
    out, err = proc.communicate(timeout=120)
    if how == signal.SIGTERM:
        assert proc.returncode == 143, out + err
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["partial"] is True
    gone = time.monotonic() + 30
    while _run_ids() & ours and time.monotonic() < gone:
        time.sleep(0.2)
    assert not _run_ids() & ours, "left behind: " + ", ".join(_run_ids() & ours)


def test_rag_real_redis_outage_and_http_errors_on_user_images(tmp_path) -> None:
    """The real-parts example under --runtime docker: the cache container (a real Redis) is
    killed and the gateway's fallback degrades answers instead of failing them; an ``errors``
    fault on the retriever (a user's image: no admin API) is an HTTP toxic of the proxy,
    which answers 503 for half the calls, and the gateway's retry absorbs them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rag_real_images", Path(__file__).parents[1] / "examples" / "rag-real" / "images.py")
    assert spec is not None and spec.loader is not None
    images = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = images  # its dataclasses look their module up
    spec.loader.exec_module(images)
    images.build_all(progress=lambda line: None)
    text = (Path(__file__).parents[1] / "topologies" / "rag-real.yaml").read_text()
    text = text.replace("scenarios:\n", "scenarios:\n  outage-and-errors:\n    faults:\n"
                        "      - {type: kill, target: cache, start: 30s}\n"
                        "      - {type: errors, target: retriever, start: 78s, duration: 24s,"
                        " rate: 0.5, status: 503}\n", 1)
    topo = tmp_path / "rag-real.yaml"
    topo.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultmesh", "live", str(topo), "--runtime", "docker",
         "--scenario", "outage-and-errors", "--out", str(tmp_path / "out"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FAULTMESH_PROGRESS": "off", "FAULTMESH_MAX_DURATION": "20s"})
    out, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1), out + err  # 1: the "full answers" SLO
    res = tmp_path / "out"
    faults = _rows(res / "faults.csv")
    requests = _rows(res / "requests.csv")
    calls = _rows(res / "calls.csv")
    a, b = _window(faults, "kill")
    assert b - a >= 1.0  # the cache's restart, scaled to the 20 s run
    inside = [r for r in requests if a + 0.3 <= float(r["start"]) < b - 0.3]
    before_kill = [r for r in requests if 2.0 <= float(r["start"]) < a]
    assert inside and before_kill
    assert all(r["ok"] == "True" for r in inside), "the fallback answers without the cache"
    assert sum(r["degraded"] == "True" for r in inside) / len(inside) > 0.9
    assert sum(r["degraded"] == "True" for r in before_kill) / len(before_kill) < 0.1
    # the user's images write no calls.csv rows: their callers' rows measure them
    assert {c["caller"] for c in calls if c["callee"] in ("cache", "retriever")} == {"gateway"}
    a, b = _window(faults, "errors")
    into = [c for c in calls if c["callee"] == "retriever" and a + 0.2 <= float(c["start"]) < b]
    refused = [c for c in into if c["status"] == "503"]
    assert 0.3 < len(refused) / len(into) < 0.7, (len(refused), len(into))
    during = [r for r in requests if a + 0.2 <= float(r["start"]) < b - 0.5]
    assert sum(r["ok"] == "True" for r in during) / len(during) > 0.6  # retried
    assert not _left_by(proc.pid)
