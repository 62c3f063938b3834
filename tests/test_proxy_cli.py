"""``faultmesh proxy`` as a user meets it: help, a taken port, Ctrl-C, a working API."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from faultmesh.cli import main


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["proxy", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--port" in out and "--host" in out


def test_a_taken_port_exits_3_with_one_line():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "faultmesh", "proxy", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"127.0.0.1:{port}" in out.stderr and "in use" in out.stderr


def test_serves_the_api_until_ctrl_c_then_exits_0_with_every_socket_closed():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultmesh", "proxy", "--port", str(port)],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert "Toxiproxy API on" in proc.stderr.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as r:
            assert "version" in json.loads(r.read())
        body = json.dumps({"name": "p", "listen": "127.0.0.1:0",
                           "upstream": "127.0.0.1:9"}).encode()
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/proxies", data=body), timeout=5) as r:
            assert r.status == 201
            listen = json.loads(r.read())["listen"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()
    for port_left in (port, int(listen.rsplit(":", 1)[1])):  # the API and the proxy
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port_left), timeout=2)
