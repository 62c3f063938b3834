"""``faultmesh export compose``: the compose file's services, ports, depends_on and health
checks (two-service topology, bundled rag-chat), docker-compose accepting it, ``faultmesh proxy
--config`` creating the proxies, and (slow, Docker) the file run by hand: healthy, 200s through
the published entry proxy, a latency toxic's delay measured, nothing left after ``down -v``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

import topologies
from chaos.compose import build

ROOT = Path(__file__).resolve().parents[1]
TWO = """\
version: 1
name: two
entry: front
services:
  front:
    latency: 2ms
    calls:
      - to: back
  back:
    replicas: 2
    latency: 2ms
workload:
  rate: 5
  duration: 10s
scenarios:
  back-slow:
    faults:
      - type: latency
        target: back
        latency: 200ms
  back-errors:
    faults:
      - type: errors
        target: back
        rate: 0.5
        status: 503
  front-killed:
    faults:
      - type: kill
        target: front
"""


def _faultmesh(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faultmesh", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def two(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    return path


def test_two_services_replicas_proxy_ports_depends_on_and_health(two: Path) -> None:
    export = build(topologies.load(two), "img:1", "dc")
    services = export.compose["services"]
    assert export.compose["version"] == "2.4"
    assert list(services) == ["proxy", "front-0", "back-0", "back-1"]
    proxy = services["proxy"]
    # the API and the entry's one client proxy, loopback only, ephemeral host ports
    assert proxy["ports"] == ["127.0.0.1::8474", "127.0.0.1::10000"]
    assert "--config" in proxy["command"] and proxy["labels"]["faultmesh.kind"] == "proxy"
    front = services["front-0"]
    assert front["depends_on"] == {n: {"condition": "service_healthy"}
                                   for n in ("proxy", "back-0", "back-1")}
    assert services["back-0"]["depends_on"] == {"proxy": {"condition": "service_healthy"}}
    # front reaches back only through the proxies front-to-back-0/1
    cmd = front["command"]
    assert cmd[cmd.index("--upstream") + 1] == "back=proxy:10001,proxy:10002"
    assert cmd[cmd.index("--service") + 1] == "front" and "/faultmesh/topology.yaml" in cmd
    for name in ("front-0", "back-0", "back-1"):
        check = services[name]["healthcheck"]["test"]
        assert check[:2] == ["CMD", "python"] and "/_faultmesh/health" in check[-1]
        assert services[name]["image"] == "img:1"
        assert "./dc.faultmesh/topology.yaml:/faultmesh/topology.yaml:ro" in \
            services[name]["volumes"]
    config = json.loads(export.files["proxies.json"])
    assert [(p["name"], p["listen"], p["upstream"]) for p in config] == [
        ("client-to-front-0", "0.0.0.0:10000", "front-0:8000"),
        ("front-to-back-0", "0.0.0.0:10001", "back-0:8000"),
        ("front-to-back-1", "0.0.0.0:10002", "back-1:8000")]
    assert topologies.loads(export.files["topology.yaml"]).services["back"].replicas == 2
    # the header gives each scenario's faults as commands
    h = export.header
    assert all(line.startswith("#") for line in h.strip().splitlines())
    assert "curl -s -X POST $API/proxies/front-to-back-1/toxics" in h and '"latency":200' in h
    assert "exec -T back-1 python -c" in h and '\\"status\\": 503' in h
    assert "docker-compose -f docker-compose.yml kill front-0" in h


def test_port_base_fixes_the_published_ports(two: Path) -> None:
    export = build(topologies.load(two), "img:1", "dc", port_base=18000)
    assert export.compose["services"]["proxy"]["ports"] == ["127.0.0.1:18000:8474",
                                                           "127.0.0.1:18001:10000"]
    assert "API=127.0.0.1:18000" in export.header


def test_rag_chat_every_replica_and_edge() -> None:
    topology = topologies.load(ROOT / "topologies/rag-chat.yaml")
    export = build(topology, "img:1", "rag")
    services = export.compose["services"]
    want = {f"{n}-{k}" for n, s in topology.services.items() for k in range(s.replicas)}
    assert set(services) == want | {"proxy"}
    entry = topology.entry
    n_entry = topology.service(entry).replicas
    assert len(services["proxy"]["ports"]) == 1 + n_entry
    # every callee replica a caller depends on, and one proxy per caller, callee and replica
    for name, spec in topology.services.items():
        callees = {c.to for c in spec.edges()}
        deps = set(services[f"{name}-0"]["depends_on"])
        assert deps == {"proxy"} | {f"{c}-{k}" for c in callees
                                    for k in range(topology.service(c).replicas)}
    names = {p["name"] for p in json.loads(export.files["proxies.json"])}
    assert len(names) == len(export.edges)
    assert f"client-to-{entry}-0" in names
    for scenario in topology.scenarios:
        assert f"# scenario {scenario}" in export.header


def test_cli_writes_the_file_and_its_side_directory(two: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "stack.yml"
    done = _faultmesh("export", "compose", str(two), "-o", str(out), "--image", "img:1",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# faultmesh export of topology 'two'")
    assert set(yaml.safe_load(text)["services"]) == {"proxy", "front-0", "back-0", "back-1"}
    side = tmp_path / "out" / "stack.faultmesh"
    assert (side / "topology.yaml").is_file() and (side / "proxies.json").is_file()
    assert (side / "logs").is_dir()


@pytest.mark.parametrize("args, words", [
    (["-o", "."], "is a directory"),
    (["--port-base", "70000"], "--port-base"),
    (["--port-base", "0"], "--port-base"),
])
def test_bad_input_exits_2_with_one_line(two: Path, tmp_path: Path, args, words) -> None:
    done = _faultmesh("export", "compose", str(two), "--image", "img:1", *args, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_bad_topology_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    done = _faultmesh("export", "compose", str(bad), "--image", "img:1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert not (tmp_path / "docker-compose.yml").exists()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose")
@pytest.mark.parametrize("topology", ["two", "rag-chat"])
def test_docker_compose_accepts_the_file(two: Path, tmp_path: Path, topology: str) -> None:
    path = two if topology == "two" else ROOT / "topologies/rag-chat.yaml"
    out = tmp_path / "docker-compose.yml"
    assert _faultmesh("export", "compose", str(path), "-o", str(out), "--image", "img:1",
                      cwd=tmp_path).returncode == 0
    done = subprocess.run(["docker-compose", "-f", str(out), "config", "-q"], text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- faultmesh proxy --config ----------------------------------------------------------------


def test_proxy_config_creates_the_proxies_at_start(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "enabled": True},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2", "enabled": False}]))
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "proxy", "--port", "0",
                             "--config", str(config)], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/proxies") as r:
            proxies = json.load(r)
        assert set(proxies) == {"a", "b"}
        assert proxies["a"]["enabled"] and not proxies["b"]["enabled"]
        assert proxies["b"]["upstream"] == "127.0.0.1:2"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.mark.parametrize("text, words", [
    ('[{"name": "a"}]', "upstream"),
    ("{}", "list"),
    ("[", "not JSON"),
])
def test_proxy_bad_config_exits_2(tmp_path: Path, text: str, words: str) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(text)
    done = _faultmesh("proxy", "--port", "0", "--config", str(config), cwd=tmp_path,
                      timeout=30)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


# -- run by hand with docker-compose (slow) --------------------------------------------------


def _compose(project: str, out: Path, *args: str, timeout: float = 180
             ) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "-p", project, "-f", str(out), *args], text=True,
                          capture_output=True, timeout=timeout)


def _get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
        return r.status, time.monotonic() - started


@pytest.mark.slow
def test_the_file_runs_by_hand(two: Path, tmp_path: Path) -> None:
    from chaos.dockercli import docker, unavailable

    why = unavailable()
    if why or shutil.which("docker-compose") is None:
        pytest.skip(why or "no docker-compose")
    from chaos.images import emulator_image

    image = emulator_image(build=True)
    out = tmp_path / "docker-compose.yml"
    assert _faultmesh("export", "compose", str(two), "-o", str(out), "--image", image,
                      cwd=tmp_path).returncode == 0
    project = f"fmexport{uuid.uuid4().hex[:8]}"
    try:
        up = _compose(project, out, "up", "-d")
        assert up.returncode == 0, up.stderr
        ids = _compose(project, out, "ps", "-q").stdout.split()
        assert len(ids) == 4
        deadline = time.monotonic() + 60
        while True:
            states = docker("inspect", "--format", "{{.State.Health.Status}}", *ids).stdout
            if set(states.split()) == {"healthy"}:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
        entry = _compose(project, out, "port", "proxy", "10000").stdout.strip()
        api = _compose(project, out, "port", "proxy", "8474").stdout.strip()
        assert entry.startswith("127.0.0.1:") and api.startswith("127.0.0.1:")
        before = [_get(f"http://{entry}/") for _ in range(10)]
        assert [s for s, _ in before] == [200] * 10
        body = json.dumps({"name": "lat", "type": "latency", "stream": "downstream",
                           "attributes": {"latency": 300}}).encode()
        request = urllib.request.Request(f"http://{api}/proxies/client-to-front-0/toxics",
                                         data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        after = [_get(f"http://{entry}/") for _ in range(5)]
        assert [s for s, _ in after] == [200] * 5
        added = min(t for _, t in after) - min(t for _, t in before)
        assert 0.28 <= added <= 0.6, (before, after)
        # the emulated replicas wrote their calls in the side directory
        assert (tmp_path / "docker-compose.faultmesh/logs/front-0.csv").is_file()
    finally:
        down = _compose(project, out, "down", "-v", "--timeout", "2")
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={project}"
    assert docker("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert docker("network", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert os.path.isdir(tmp_path / "docker-compose.faultmesh")


USER = """\
version: 1
name: mixed
entry: front
services:
  front:
    image: acme/front:1
    port: 9000
    health: /ready
    env: {MODE: fast, PRICE: "$5"}
    calls:
      - to: back-end
  back-end:
    replicas: 2
workload:
  rate: 5
  duration: 10s
scenarios:
  front-errors:
    faults:
      - {type: errors, target: front, rate: 0.2, status: 502}
"""


def test_a_user_service_runs_its_image_with_the_dependency_variables(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(USER)
    export = build(topologies.load(path), "img:1", "dc")
    front = export.compose["services"]["front-0"]
    assert front["image"] == "acme/front:1" and "command" not in front
    env = front["environment"]
    assert env["FAULTMESH_BACK_END_URL"] == "http://proxy:10001"
    assert env["FAULTMESH_BACK_END_URLS"] == "http://proxy:10001,http://proxy:10002"
    assert (env["FAULTMESH_SERVICE"], env["FAULTMESH_REPLICA"], env["PORT"]) == \
        ("front", "0", "9000")
    assert env["MODE"] == "fast" and env["PRICE"] == "$$5"  # not a compose variable
    test = front["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "http://127.0.0.1:9000/ready" in test[1]
    config = json.loads(export.files["proxies.json"])
    assert config[0]["upstream"] == "front-0:9000"
    # errors on a user service: the proxy's HTTP toxic in front of it
    assert '"type":"http_error"' in export.header and '"toxicity":0.2' in export.header


def test_a_command_only_service_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cmd.yaml"
    path.write_text(USER.replace("image: acme/front:1", "command: python -m front"))
    done = _faultmesh("export", "compose", str(path), "--image", "img:1", cwd=tmp_path)
    assert done.returncode == 2 and "services.front" in done.stderr
    assert "Traceback" not in done.stderr
