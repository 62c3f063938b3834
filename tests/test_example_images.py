"""The real-parts RAG example's cache and images (examples/rag-real/cache.py, images.py).

Quick: the cache's key rule (a JSON query is its own key, request ids fold into buckets);
with a real redis-server on this machine (skipped without one), cache.py starts its own
Redis, answers a miss then a hit, 503 at once on a Redis-less port, and exits when its Redis
is killed. Slow (skipped with the reason where no Docker engine answers or no base image can
be built): the two images are built (the second call reuses them), the cache runs as a
container on a fresh labelled network (health, miss then hit, its redis-server killed inside
the container: the service goes down), and the retriever's container answers a search.
Everything a test makes is removed, whatever its outcome.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "rag-real"


def _load(name: str) -> ModuleType:
    """A program of the example folder (not a package) as a module, loaded once."""
    key = f"rag_real_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


cache = _load("cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None, conn: http.client.HTTPConnection | None
             = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            conn.close()


def _wait_healthy(port: int, deadline: float = 30.0) -> dict:
    """The first 200 of GET /healthz (a published port accepts before the program listens,
    and the program answers 503 until Redis does: keep asking over HTTP)."""
    end = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < end:
        try:
            status, _, body = _request(port, "GET", "/healthz")
            if status == 200:
                return json.loads(body)
            last = f"{status} {body[:80]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"127.0.0.1:{port}/healthz not 200 within {deadline} s: {last}")


# -- quick ------------------------------------------------------------------------------------

def test_key_rule_json_query_exact_request_ids_folded() -> None:
    a = cache.question_key(b'{"query": "what is rag"}', "r1", 1000)
    assert a == cache.question_key(b'{"query": "what is rag"}', "r2", 1000)  # the query decides
    assert a.startswith("q:") and a != cache.question_key(b'{"query": "other"}', "r1", 1000)
    assert cache.question_key(b'{"key": "what is rag"}', "", 10) == a
    # an emulated caller's body is filler: the request id, folded into the buckets
    body = b"x" * 512
    keys = {cache.question_key(body, f"gateway.0.{i}", 50) for i in range(2000)}
    assert keys <= {f"b:{i}" for i in range(50)} and len(keys) == 50
    assert cache.question_key(body, "r1", 50) == cache.question_key(b"y", "r1", 50)
    assert cache.question_key(b"abc", "", 50) == cache.question_key(b"abc", "", 50)


def test_bad_environment_is_refused_before_anything_starts() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE / "cache.py")], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "CACHE_TTL": "0"})
    assert done.returncode == 2
    assert "CACHE_TTL must be a positive integer" in done.stderr


@pytest.fixture
def cache_process() -> Iterator[tuple[subprocess.Popen, int, int]]:
    """cache.py on free ports with its own redis-server (this machine's)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed here (apt-get install redis-server)")
    port, redis_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "cache.py")],
                            env={**os.environ, "PORT": str(port),
                                 "REDIS_PORT": str(redis_port), "CACHE_TTL": "60"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, port, redis_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def test_cache_with_a_real_redis_miss_then_hit_and_down_with_it(cache_process) -> None:
    proc, port, redis_port = cache_process
    health = _wait_healthy(port)
    assert health["status"] == "ok" and health["redis"] == "PONG"
    redis_pid = health["redis_pid"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:  # one keep-alive connection, as the emulator's callers keep theirs
        body = json.dumps({"query": f"what is a vector index {port}"}).encode()
        s1, h1, v1 = _request(port, "POST", "/", body, conn=conn)
        s2, h2, v2 = _request(port, "POST", "/", body, conn=conn)
        assert (s1, h1["x-cache"], s2, h2["x-cache"]) == (200, "miss", 200, "hit")
        assert v1 == v2 and len(v1) == 1024
        # the value is in the real Redis, with the time to live asked for
        r = cache.Redis("127.0.0.1", redis_port)
        assert r.command("GET", h1["x-cache-key"]) == v1
        assert 0 < r.command("TTL", h1["x-cache-key"]) <= 60
        r.close()
        # what an emulated caller sends: filler and a request id, echoed back
        s3, h3, _ = _request(port, "POST", "/", b"x" * 100,
                             {"X-Faultmesh-Request": "req-1"}, conn=conn)
        assert s3 == 200 and h3["x-faultmesh-request"] == "req-1"
        assert h3["x-cache-key"].startswith("b:")
    finally:
        conn.close()
    # Redis killed: the service stops (exit 3), the same outage as a killed container
    os.kill(redis_pid, signal.SIGKILL)
    assert proc.wait(10) == 3
    out = proc.stdout.read()
    assert "redis-server exited" in out, out
    with pytest.raises(OSError):
        _request(port, "GET", "/healthz")


def test_cache_answers_503_at_once_when_redis_is_unreachable() -> None:
    port, nothing = _free_port(), _free_port()  # no Redis listens on `nothing`
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "cache.py")],
                            env={**os.environ, "PORT": str(port), "REDIS_PORT": str(nothing),
                                 "REDIS_START": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 20
        while True:
            try:
                status, _, _ = _request(port, "GET", "/healthz")
                break
            except OSError:
                assert time.monotonic() < end, "cache.py did not listen"
                time.sleep(0.05)
        assert status == 503
        started = time.monotonic()
        status, headers, _ = _request(port, "POST", "/", b'{"query": "q"}')
        assert status == 503 and headers["x-faultmesh-error"] == "redis_unavailable"
        assert time.monotonic() - started < 0.5  # fast: the caller's fallback, not its timeout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- slow: the images ------------------------------------------------------------------------

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
        except RunError:
            return "mmdebstrap is not installed (bash scripts/setup.sh --test as root)"
    return None


def _docker(*args: str, check: bool = True) -> str:
    from chaos.dockercli import docker

    return docker(*args, check=check).stdout.strip()


@pytest.fixture(scope="module")
def images() -> dict[str, float]:
    """Both example images built (or found); the seconds the first and the second call took."""
    why = _why_not()
    if why:
        pytest.skip(f"no image build here: {why}")
    images_py = _load("images")
    started = time.monotonic()
    images_py.build_all(progress=lambda line: print(line, flush=True))
    first = time.monotonic() - started
    lines: list[str] = []
    started = time.monotonic()
    images_py.build_all(progress=lines.append)
    second = time.monotonic() - started
    print(f"example images: first call {first:.1f} s, second {second:.2f} s")
    return {"first": first, "second": second, "lines": lines}  # type: ignore[dict-item]


@pytest.fixture
def network() -> Iterator[tuple[str, str]]:
    """A fresh network labelled with a run id (``faultmesh clean`` finds it if we die), and
    the run id; every container the test labels with it goes at the end."""
    from chaos.dockercli import new_run_id

    run = new_run_id()
    name = f"faultmesh-{run}"
    _docker("network", "create", "--label", f"faultmesh.run={run}",
            "--label", "faultmesh.kind=network", name)
    try:
        yield name, run
    finally:
        left = _docker("ps", "-aq", "--filter", f"label=faultmesh.run={run}").split()
        if left:
            _docker("rm", "-f", *left, check=False)
        _docker("network", "rm", name, check=False)


def _run(image: str, network: tuple[str, str], service: str, *env: str) -> str:
    name, run = network
    args = ["run", "-d", "--network", name, "--network-alias", service,
            "--label", f"faultmesh.run={run}", "--label", "faultmesh.kind=replica",
            "-p", "127.0.0.1::8080"]
    for item in env:
        args += ["-e", item]
    return _docker(*args, image)


def _published(container: str) -> int:
    return int(_docker("port", container, "8080").splitlines()[0].rsplit(":", 1)[1])


@pytest.mark.slow
def test_images_are_built_labelled_and_reused(images) -> None:
    images_py = _load("images")
    assert images["second"] < 10, images
    assert all("reused" in line for line in images["lines"][:2]), images["lines"]
    for image in images_py.IMAGES:
        labels = json.loads(_docker("image", "inspect", "--format",
                                    "{{json .Config.Labels}}", image.tag))
        assert labels["faultmesh.kind"] == "image"
        assert labels["faultmesh.source"] == images_py.source_hash(image)
    assert _docker("ps", "-a", "--filter", "name=faultmesh-image-build-",
                   "--filter", f"ancestor={images_py.CACHE_IMAGE}", "-q") == ""


@pytest.mark.slow
def test_cache_container_miss_hit_and_down_when_its_redis_dies(images, network) -> None:
    images_py = _load("images")
    started = time.monotonic()
    c = _run(images_py.CACHE_IMAGE, network, "cache")
    port = _published(c)
    health = _wait_healthy(port)
    print(f"cache container healthy {time.monotonic() - started:.2f} s after docker run")
    body = b'{"query": "which index is exact"}'
    s1, h1, v1 = _request(port, "POST", "/", body)
    s2, h2, v2 = _request(port, "POST", "/", body)
    assert (s1, h1["x-cache"], s2, h2["x-cache"]) == (200, "miss", 200, "hit") and v1 == v2
    # Redis killed inside the container: cache.py (PID 1) exits, the container stops
    _docker("exec", c, "sh", "-c", f"kill -9 {health['redis_pid']}")
    end = time.monotonic() + 15
    while _docker("inspect", "--format", "{{.State.Running}}", c) == "true":
        assert time.monotonic() < end, "the cache container still runs without its Redis"
        time.sleep(0.1)
    assert _docker("inspect", "--format", "{{.State.ExitCode}}", c) == "3"
    with pytest.raises((OSError, http.client.HTTPException)):
        _request(port, "POST", "/", body)
    # docker start (what a kill fault's restart does): served again, and cold
    _docker("start", c)
    _wait_healthy(_published(c))
    s3, h3, _ = _request(_published(c), "POST", "/", body)
    assert (s3, h3["x-cache"]) == (200, "miss")


@pytest.mark.slow
def test_retriever_container_answers_searches(images, network) -> None:
    images_py = _load("images")
    r = _run(images_py.RETRIEVER_IMAGE, network, "retriever", "CORPUS_SIZE=2000")
    port = _published(r)
    health = _wait_healthy(port, deadline=60)
    assert health == {"status": "ok", "documents": 2000, "index": "exact"}
    status, _, body = _request(port, "POST", "/", b"x" * 64, {"X-Faultmesh-Request": "q-1"})
    assert status == 200
    answer = json.loads(body)
    assert answer["index"] == "exact" and len(answer["results"]) == 5
    # SIGTERM reaches the program (not ignored as by a bare PID 1): docker stop is quick
    started = time.monotonic()
    _docker("stop", r)
    assert time.monotonic() - started < 5
