"""The emulator behind the fault proxy: an edge's latency toxic shows in the caller's log."""

from __future__ import annotations

import textwrap
import time

import test_proxy_fixtures as fx
from emulator_helpers import read_calls, send

from chaos.emulator.launch import start_replica

server, client = fx.server, fx.client  # the fixtures

TEXT = textwrap.dedent("""\
    version: 1
    name: proxied
    entry: front
    workload: {rate: 1/s, duration: 10s}
    services:
      front:
        calls:
          - {to: back, timeout: 2s}
      back: {latency: 10ms}
""")


def test_latency_toxic_on_the_edge_lengthens_the_logged_attempt(tmp_path, client):
    path = tmp_path / "t.yaml"
    path.write_text(TEXT)
    epoch = time.time()
    started = []
    try:
        back = start_replica(str(path), "back", str(tmp_path / "back.csv"), epoch=epoch)
        started.append(back)
        proxy = client.create(upstream=back.address, name="front-back",
                              listen="127.0.0.1:0")
        listen = client.get_proxy("front-back").listen
        front = start_replica(str(path), "front", str(tmp_path / "front.csv"), epoch=epoch,
                              upstreams={"back": [listen]})
        started.append(front)
        assert send(front.port)[0] == 200
        proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 100})
        status, _, _, took = send(front.port)
        assert status == 200 and 0.11 <= took <= 0.3
        assert front.stop() == 0
    finally:
        for rep in started:
            rep.stop()
    rows = read_calls(tmp_path / "front.csv")
    spans = [float(r["end"]) - float(r["start"]) for r in rows]
    assert len(rows) == 2 and spans[0] < 0.08 and 0.11 <= spans[1] <= 0.3
