"""``faultmesh live`` with two entry replicas on 127.0.0.1: the client's connections are
spread over both (a connection-level round robin in front of the ``client->gateway#k``
proxies), and calls.csv says which entry replica served each request. With ``--toxiproxy
URL`` the run uses that server (here a ProxyServer of the test) and deletes its proxies at the
end. About 10 s."""

from __future__ import annotations

import collections
import csv
import os
import subprocess
import sys

import pytest

TOPOLOGY = """\
version: 1
name: wide
entry: gateway
workload: {model: open, rate: 30/s, duration: 3s, warmup: 0.5s}
services:
  gateway:
    replicas: 2
    latency: {dist: constant, value: 2ms}
    calls:
      - {to: backend, timeout: 1s}
  backend:
    latency: {dist: constant, value: 5ms}
"""


@pytest.mark.slow
def test_two_entry_replicas_both_serve(tmp_path) -> None:
    topo = tmp_path / "wide.yaml"
    topo.write_text(TOPOLOGY)
    out = str(tmp_path / "result")
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo), "--out", out,
                           "--no-report"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(out, "calls.csv"), encoding="utf-8", newline="") as fh:
        calls = list(csv.DictReader(fh))
    client = collections.Counter(c["replica"] for c in calls if c["caller"] == "client")
    assert set(client) == {"0", "1"}
    assert min(client.values()) >= 0.2 * sum(client.values())
    assert all(c["status"] == "200" for c in calls)


@pytest.mark.slow
def test_an_outside_toxiproxy_is_used_and_left_clean(tmp_path) -> None:
    from chaos.proxy import ProxyServer

    topo = tmp_path / "wide.yaml"
    topo.write_text(TOPOLOGY.replace("replicas: 2", "replicas: 1"))
    out = str(tmp_path / "result")
    with ProxyServer("127.0.0.1", 0, seed=1) as server:
        proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo), "--out",
                               out, "--no-report", "--toxiproxy", server.url],
                              capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert server.proxies == {}   # every proxy the run made was deleted
    with open(os.path.join(out, "calls.csv"), encoding="utf-8", newline="") as fh:
        edges = {(c["caller"], c["callee"]) for c in csv.DictReader(fh)}
    assert edges == {("client", "gateway"), ("gateway", "backend")}


def test_an_unreachable_toxiproxy_is_an_environment_problem(tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    topo = tmp_path / "wide.yaml"
    topo.write_text(TOPOLOGY)
    proc = subprocess.run([sys.executable, "-m", "faultmesh", "live", str(topo), "--out",
                           str(tmp_path / "r"), "--toxiproxy", f"http://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (f"faultmesh live: no Toxiproxy API answers at "
                                   f"127.0.0.1:{port}")
