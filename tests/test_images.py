"""The emulator image, built with no registry (chaos.images, ``faultmesh images``).

Quick: the source hash follows the source files and nothing else; with no docker command,
``faultmesh images`` exits 3 with one line. Slow (a minute cold, seconds when this tree's image
exists; skipped with the reason where no Docker engine answers or mmdebstrap is missing):
the build is cached by tag (the second call builds nothing), leaves no build container, the
labels are on; a replica and the fault proxy run from the image on a user network, and the
host gets HTTP answers from both, the replica's also through a proxy the proxy made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chaos.images.recipe import source_hash

TOPOLOGY = """\
version: 1
name: imaged
entry: s
workload: {model: open, rate: 1/s, duration: 10s}
services:
  s: {latency: {dist: constant, value: 2ms}}
"""


def test_source_hash_follows_source_files_only(tmp_path: Path) -> None:
    root = tmp_path
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "chaos" / "emulator").mkdir(parents=True)
    module = root / "chaos" / "emulator" / "replica.py"
    module.write_text("A = 1\n")
    (root / "topologies").mkdir()
    (root / "topologies" / "t.yaml").write_text("version: 1\n")
    first = source_hash(root)
    assert len(first) == 12 and int(first, 16) >= 0
    assert source_hash(root) == first
    # not sources: caches, tests, notes, hidden files
    (root / "chaos" / "__pycache__").mkdir()
    (root / "chaos" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0junk")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("def test(): pass\n")
    (root / "chaos" / "notes.txt").write_text("todo\n")
    (root / "chaos" / ".x.py.swp").write_text("editor\n")
    assert source_hash(root) == first
    module.write_text("A = 2\n")
    changed = source_hash(root)
    assert changed != first
    module.write_text("A = 1\n")
    assert source_hash(root) == first
    (root / "topologies" / "t.yaml").write_text("version: 2\n")
    assert source_hash(root) != first
    (root / "topologies" / "t.yaml").write_text("version: 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert source_hash(root) != first
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "chaos" / "new.py").write_text("")
    assert source_hash(root) != first
    (root / "chaos" / "new.py").unlink()
    assert source_hash(root) == first
    assert source_hash(root, extra="faultmesh/base:000000000000") != first


def test_no_docker_command_exits_3_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no docker on it
    for action in ("build", "list"):
        done = subprocess.run([sys.executable, "-m", "faultmesh", "images", action],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().splitlines() == [
            "faultmesh images: the docker command is not installed"]


def test_no_mmdebstrap_exits_3_with_one_line_and_changes_nothing(tmp_path: Path) -> None:
    from chaos.dockercli import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    (tmp_path / "docker").symlink_to(shutil.which("docker"))  # docker, and nothing else
    before = _docker("images", "-q", "--filter", "label=faultmesh.kind=image")
    done = subprocess.run([sys.executable, "-m", "faultmesh", "images", "build", "--force"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "faultmesh images: mmdebstrap is not installed"), done.stderr
    assert done.stdout == ""
    assert _docker("images", "-q", "--filter", "label=faultmesh.kind=image") == before


def _why_not() -> str | None:
    from chaos.dockercli import unavailable
    from chaos.images import base_image
    from topologies.errors import RunError

    why = unavailable()
    if why:
        return why
    if shutil.which("mmdebstrap") is None:
        try:
            base_image(build=False)
        except RunError:  # no base built and none can be: skip, saying why
            return "mmdebstrap is not installed (bash scripts/setup.sh --test as root)"
    return None


def _docker(*args: str, check: bool = True) -> str:
    from chaos.dockercli import docker

    return docker(*args, check=check).stdout.strip()


def _leftover_build_containers() -> list[str]:
    return _docker("ps", "-a", "--filter", "label=faultmesh.kind=image",
                   "--format", "{{.Names}}").split()


@pytest.fixture(scope="module")
def image() -> str:
    why = _why_not()
    if why:
        pytest.skip(f"no image build here: {why}")
    from chaos.images import emulator_image

    return emulator_image(progress=lambda line: print(line, flush=True))


@pytest.mark.slow
def test_build_is_cached_by_tag_labelled_and_leaves_no_container(image: str) -> None:
    assert image.startswith("faultmesh/emulator:") and len(image.split(":")[1]) == 12
    assert _leftover_build_containers() == []
    from chaos.images import emulator_image

    for _attempt in range(3):
        # in a working tree being edited the sources may change between two calls (a new
        # tag, rightly built): then again, from the tree as it is now
        image = emulator_image()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "faultmesh", "images", "build"],
                              capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        if done.stdout.strip() == image:
            break
    assert done.stdout.strip() == image
    assert "exists, reused" in done.stderr
    for step in ("mmdebstrap", "wheelhouse", "committing", "installing"):
        assert step not in done.stderr, done.stderr  # nothing was built again
    assert elapsed < 30, f"a cached build took {elapsed:.1f} s"
    labels = json.loads(_docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                                image))
    assert labels["faultmesh.kind"] == "image"
    assert labels["faultmesh.source"] == image.split(":")[1]
    base = labels["faultmesh.base"]
    base_labels = json.loads(_docker("image", "inspect", "--format",
                                     "{{json .Config.Labels}}", base))
    assert base_labels["faultmesh.kind"] == "image"
    assert base_labels["faultmesh.recipe"] == base.split(":")[1]
    listed = subprocess.run([sys.executable, "-m", "faultmesh", "images", "list"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"* {image} " in listed.stdout and f"* {base} " in listed.stdout
    # the in-namespace fault tools are in the image, and it needs no network to start
    tools = _docker("run", "--rm", "--network", "none", image, "sh", "-c",
                    "for t in iptables ip python; do command -v $t; done; "
                    "python -c 'import chaos.emulator'")
    assert tools.splitlines() == ["/usr/sbin/iptables", "/usr/sbin/ip",
                                  "/opt/faultmesh/bin/python"]
    assert _leftover_build_containers() == []


def _get(url: str, data: bytes | None = None, deadline: float = 30.0) -> tuple[int, bytes]:
    """The first answer of ``url`` within ``deadline`` s (a published port accepts before the
    program inside listens: keep asking over HTTP)."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data),
                                        timeout=5) as resp:
                return resp.status, resp.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def _published(container: str, port: int) -> int:
    return int(_docker("port", container, str(port)).splitlines()[0].rsplit(":", 1)[1])


@pytest.mark.slow
def test_replica_and_proxy_run_from_the_image(image: str, tmp_path: Path) -> None:
    run = f"faultmesh-test-{secrets.token_hex(3)}"
    network, replica, proxy = f"faultmesh-{run}", f"{run}-s-0", f"{run}-proxy"
    labels = ["--label", f"faultmesh.run={run}"]
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    os.chmod(tmp_path, 0o755)
    try:
        _docker("network", "create", "-o", "com.docker.network.driver.mtu=1400", *labels,
                "--label", "faultmesh.kind=network", network)
        _docker("run", "--rm", "-d", "--name", replica, "--network", network, *labels,
                "--label", "faultmesh.kind=replica", "-p", "127.0.0.1::8000",
                "-v", f"{tmp_path}:/topology:ro", image, "python", "-m", "chaos.emulator",
                "--topology", "/topology/t.yaml", "--service", "s", "--host", "0.0.0.0",
                "--port", "8000", "--log", "/tmp/calls.csv", "--epoch", f"{time.time():.3f}")
        # the image's default command is the proxy
        _docker("run", "--rm", "-d", "--name", proxy, "--network", network, *labels,
                "--label", "faultmesh.kind=proxy", "-p", "127.0.0.1::8474",
                "-p", "127.0.0.1::9000", image)
        port = _published(replica, 8000)
        status, body = _get(f"http://127.0.0.1:{port}/_faultmesh/health")
        assert status == 200 and json.loads(body)["service"] == "s"
        status, _ = _get(f"http://127.0.0.1:{port}/", data=b"{}")
        assert status == 200
        api = f"http://127.0.0.1:{_published(proxy, 8474)}"
        status, body = _get(f"{api}/proxies")
        assert status == 200 and json.loads(body) == {}
        spec = {"name": "s", "listen": "0.0.0.0:9000", "upstream": f"{replica}:8000"}
        status, _ = _get(f"{api}/proxies", data=json.dumps(spec).encode())
        assert status == 201
        status, body = _get(f"http://127.0.0.1:{_published(proxy, 9000)}/_faultmesh/health")
        assert status == 200 and json.loads(body)["service"] == "s"
    finally:
        for name in (replica, proxy):
            _docker("rm", "-f", name, check=False)
        _docker("network", "rm", network, check=False)
    assert _docker("ps", "-a", "--filter", f"label=faultmesh.run={run}", "-q") == ""
