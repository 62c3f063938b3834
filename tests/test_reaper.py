"""Nothing left behind with containers: the reaper and ``faultmesh clean`` against a real
Docker engine (those tests are slow and skipped with the reason where none answers), and
both without a docker command (one line, no traceback; clean finds no containers).

Containers come from the faultmesh emulator image (built when missing), running a sleeping
Python so they stay up until something removes them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chaos.dockercli import RUN_LABEL, docker, new_run_id, run_pid, unavailable

REPO = Path(__file__).resolve().parent.parent
_WHY = unavailable()
#: On every test that needs a Docker engine.
docker_only = pytest.mark.skipif(_WHY is not None, reason=str(_WHY))

SLEEP = ["python3", "-c", "import time; time.sleep(600)"]


@pytest.fixture(scope="module")
def image() -> str:
    from chaos.images import emulator_image

    return emulator_image()


def _containers(run_id: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout.split()


def _networks(run_id: str) -> list[str]:
    return docker("network", "ls", "-q", "--filter",
                  f"label={RUN_LABEL}={run_id}").stdout.split()


def _start(image: str, run_id: str, n: int = 2) -> None:
    for k in range(n):
        docker("run", "-d", "--name", f"{run_id}-t-{k}", "--label", f"{RUN_LABEL}={run_id}",
               "--label", "faultmesh.kind=other", image, *SLEEP)
    docker("network", "create", "--label", f"{RUN_LABEL}={run_id}",
           "--label", "faultmesh.kind=network", f"faultmesh-{run_id}")


def _wait_gone(run_id: str, within: float) -> float:
    """Seconds until the run's containers and networks are all gone (fails after
    ``within``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if not _containers(run_id) and not _networks(run_id):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"still there after {within} s: containers {_containers(run_id)}, "
                         f"networks {_networks(run_id)}")


@pytest.fixture
def cleanup():
    """Run ids whose objects the test made: removed whatever the test's outcome."""
    ids: list[str] = []
    yield ids
    from chaos.reaper import reap

    for run_id in ids:
        reap(run_id)


def test_run_id_names_its_pid():
    run_id = new_run_id()
    assert run_id.startswith(f"faultmesh-{os.getpid()}-") and len(run_id.rsplit("-", 1)[1]) == 6
    assert run_pid(run_id) == os.getpid()
    assert new_run_id() != run_id
    assert run_pid("faultmesh-x-abcdef") is None and run_pid("other") is None


@pytest.mark.slow
@docker_only
def test_sigkilled_parent_leaves_nothing(image, cleanup):
    # a real parent: starts the reaper, then its containers and network, then says so and
    # waits to be killed
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from chaos.dockercli import docker, new_run_id
        from chaos.reaper import Reaper
        run_id = new_run_id()
        reaper = Reaper(run_id)
        label = "{RUN_LABEL}=" + run_id
        for k in range(2):
            docker("run", "-d", "--label", label, {image!r}, *{SLEEP!r})
        docker("network", "create", "--label", label, "faultmesh-" + run_id)
        print(run_id, reaper.process.pid, flush=True)
        time.sleep(600)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline().split()
        assert line, "the parent did not start its containers"
        run_id, reaper_pid = line[0], int(line[1])
        cleanup.append(run_id)
        assert len(_containers(run_id)) == 2 and len(_networks(run_id)) == 1
        # the reaper is in a session of its own: a Ctrl-C to the run's group misses it
        assert os.getsid(reaper_pid) == reaper_pid != os.getsid(parent.pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    took = _wait_gone(run_id, within=5.0)
    print(f"gone {took:.1f} s after SIGKILL")


@pytest.mark.slow
@docker_only
def test_container_still_being_created_at_the_kill_is_reaped(image, cleanup):
    # the run dies while its `docker run` is in flight: the orphaned docker command creates
    # the container after the reaper's first pass, which must not be its last
    run_id = new_run_id()
    cleanup.append(run_id)
    since = str(int(time.time()) - 1)
    parent = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, subprocess
        from chaos.reaper import Reaper
        Reaper({run_id!r})
        # a docker run slow to get going (a loaded machine): after the reaper's first pass
        run = ("sleep 1.5; exec docker run -d --label {RUN_LABEL}={run_id} {image} "
               "python3 -c 'import time; time.sleep(600)'")
        subprocess.Popen(["sh", "-c", run], stdout=subprocess.DEVNULL)
        os.kill(os.getpid(), signal.SIGKILL)
        """)], cwd=REPO, timeout=60)
    assert parent.returncode == -signal.SIGKILL
    # the container is made (else this proves nothing), then removed by the reaper
    t0, actions = time.monotonic(), []
    while time.monotonic() - t0 < 10 and "destroy" not in actions:
        time.sleep(0.5)
        actions = docker("events", "--since", since, "--until", str(int(time.time())),
                         "--filter", f"label={RUN_LABEL}={run_id}",
                         "--format", "{{.Action}}").stdout.split()
    assert "create" in actions and "destroy" in actions, actions
    assert not _containers(run_id)


@pytest.mark.slow
@docker_only
def test_close_reaps_at_once(image, cleanup):
    from chaos.reaper import Reaper

    run_id = new_run_id()
    cleanup.append(run_id)
    reaper = Reaper(run_id)
    _start(image, run_id, n=1)
    other = new_run_id()  # another run's containers are not touched
    cleanup.append(other)
    _start(image, other, n=1)
    t0 = time.monotonic()
    assert reaper.close() == 0
    assert not _containers(run_id) and not _networks(run_id)
    assert time.monotonic() - t0 < 15
    assert len(_containers(other)) == 1 and len(_networks(other)) == 1


def _clean(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faultmesh", "clean", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def test_without_docker_clean_finds_no_containers_and_the_reaper_says_why(tmp_path):
    # no docker command on the PATH: as on a machine without Docker
    env = {**os.environ, "PATH": str(tmp_path)}
    done = _clean("--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert "container" not in done.stdout and "network" not in done.stdout
    reaper = subprocess.run([sys.executable, "-m", "chaos.reaper", new_run_id()], cwd=REPO,
                            env=env, input="", capture_output=True, text=True, timeout=60)
    assert reaper.returncode == 3
    assert reaper.stderr.count("\n") == 1 and "docker" in reaper.stderr, reaper.stderr
    assert "Traceback" not in reaper.stderr
    usage = subprocess.run([sys.executable, "-m", "chaos.reaper"], cwd=REPO, input="",
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")


@pytest.mark.slow
@docker_only
def test_clean_removes_dead_runs_only(image, cleanup):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"faultmesh-{gone.pid}-{os.urandom(3).hex()}"
    live = new_run_id()  # this test's own pid: a live run
    cleanup += [dead, live]
    _start(image, dead)
    _start(image, live, n=1)

    listed = _clean("--dry-run")
    assert listed.returncode == 0, listed.stderr
    lines = [ln for ln in listed.stdout.splitlines() if dead in ln]
    assert len(lines) == 3 and all(ln.startswith("would remove") for ln in lines), listed.stdout
    assert live not in listed.stdout
    assert len(_containers(dead)) == 2 and len(_networks(dead)) == 1  # only listed

    done = _clean()
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if dead in ln]
    assert len(lines) == 3 and all(ln.startswith("removed ") for ln in lines), done.stdout
    assert sum("container" in ln for ln in lines) == 2 and sum("network" in ln for ln in lines) == 1
    assert not _containers(dead) and not _networks(dead)
    assert len(_containers(live)) == 1 and len(_networks(live)) == 1
    assert live not in done.stdout


@pytest.mark.slow
@docker_only
def test_clean_removes_image_build_leftovers_of_gone_builds(image, cleanup):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = [f"faultmesh-image-build-{gone.pid}-{os.urandom(3).hex()}",
             f"faultmesh-image-build-{os.getpid()}-{os.urandom(3).hex()}"]  # a build under way
    for name in names:
        docker("run", "-d", "--name", name, "--label", "faultmesh.kind=image", "--network",
               "none", image, *SLEEP)
    try:
        done = _clean()
        assert done.returncode == 0, done.stderr
        assert names[0] in done.stdout and names[1] not in done.stdout, done.stdout
        left = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert names[0] not in left and names[1] in left
    finally:
        docker("rm", "-f", *names, check=False)
