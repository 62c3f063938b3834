"""The built-in proxy's HTTP API on the wire: status codes, error bodies, headers, /populate."""

from __future__ import annotations

import http.client
import socket

import pytest
import requests
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, round_trip

echo, server = fx.echo, fx.server  # the fixtures


@pytest.fixture
def api(server):
    session = requests.Session()
    base = server.url

    class Api:
        def __getattr__(self, method):
            return lambda path, **kw: session.request(method.upper(), base + path, timeout=5,
                                                      **kw)

    yield Api()
    session.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def test_create_answers_201_with_the_real_port_and_defaults(api, echo):
    r = api.post("/proxies", json={"name": "db", "listen": "127.0.0.1:0",
                                   "upstream": echo.address})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "db" and body["enabled"] is True and body["toxics"] == []
    assert body["upstream"] == echo.address and not body["listen"].endswith(":0")
    assert api.get("/proxies").json() == {"db": body}
    assert api.get("/proxies/db").json() == body


def test_error_bodies_carry_message_and_status(api, echo):
    ok = {"name": "db", "listen": "127.0.0.1:0", "upstream": echo.address}
    assert api.post("/proxies", json=ok).status_code == 201
    cases = [
        (api.post("/proxies", json=ok), 409, "proxy already exists"),
        (api.post("/proxies", json={"upstream": echo.address}), 400,
         "missing required field: name"),
        (api.post("/proxies", json={"name": "x"}), 400, "missing required field: upstream"),
        (api.get("/proxies/nope"), 404, "proxy not found"),
        (api.delete("/proxies/nope"), 404, "proxy not found"),
        (api.post("/proxies/db/toxics", json={"type": "latency", "stream": "sideways"}), 400,
         "stream was invalid, can be either upstream or downstream"),
        (api.post("/proxies/db/toxics", json={"type": "warp"}), 400, "invalid toxic type"),
        (api.get("/proxies/db/toxics/nope"), 404, "toxic not found"),
        (api.delete("/proxies/db/toxics/nope"), 404, "toxic not found"),
        (api.post("/proxies/nope/toxics", json={"type": "latency"}), 404, "proxy not found"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, message
        assert response.json() == {"error": message, "status": status}
    bad = api.post("/proxies", data=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"].startswith("bad request body: ")
    bad = api.post("/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": "x"}})
    assert bad.status_code == 400 and bad.json()["error"].startswith("bad request body: ")


def test_a_listen_address_in_use_is_a_500_with_the_error_text(api, echo):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = api.post("/proxies", json={"name": "db", "listen": f"127.0.0.1:{port}",
                                       "upstream": echo.address})
    assert r.status_code == 500
    assert r.json() == {"error": f"listen tcp 127.0.0.1:{port}: bind: address already in use",
                        "status": 500}
    assert api.get("/proxies").json() == {}


def test_toxic_create_is_200_with_defaults_and_update_keeps_omitted_fields(api, echo):
    api.post("/proxies", json={"name": "db", "upstream": echo.address})
    r = api.post("/proxies/db/toxics", json={"type": "latency", "stream": "UpStream",
                                            "attributes": {"latency": 100}})
    assert r.status_code == 200
    assert r.json() == {"name": "latency_upstream", "type": "latency", "stream": "upstream",
                        "toxicity": 1.0, "attributes": {"latency": 100, "jitter": 0}}
    r = api.patch("/proxies/db/toxics/latency_upstream", json={"attributes": {"jitter": 5}})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"latency": 100, "jitter": 5}
    r = api.post("/proxies/db/toxics/latency_upstream", json={"toxicity": 0.25})
    assert r.status_code == 200 and r.json()["toxicity"] == 0.25
    assert r.json()["attributes"] == {"latency": 100, "jitter": 5}
    assert api.get("/proxies/db/toxics").json() == [r.json()]
    assert api.get("/proxies/db").json()["toxics"] == [r.json()]
    r = api.post("/proxies/db/toxics", json={"type": "noop", "name": "latency_upstream"})
    assert r.status_code == 409 and r.json()["error"] == "toxic already exists"
    r = api.delete("/proxies/db/toxics/latency_upstream")
    assert r.status_code == 204 and r.content == b""


def test_toxics_are_listed_upstream_first_then_in_order_added(api, echo):
    api.post("/proxies", json={"name": "db", "upstream": echo.address})
    for body in ({"type": "noop", "name": "d1"}, {"type": "noop", "name": "u1",
                 "stream": "upstream"}, {"type": "noop", "name": "d2"}):
        assert api.post("/proxies/db/toxics", json=body).status_code == 200
    assert [t["name"] for t in api.get("/proxies/db/toxics").json()] == ["u1", "d1", "d2"]


def test_proxy_update_is_partial_and_disable_refuses_connections(api, echo):
    made = api.post("/proxies", json={"name": "db", "upstream": echo.address}).json()
    r = api.patch("/proxies/db", json={"enabled": False})
    assert r.status_code == 200
    assert r.json() == {**made, "enabled": False}
    with pytest.raises(ConnectionRefusedError):
        connect(made["listen"])
    assert api.post("/proxies/db", json={"enabled": True}).json()["enabled"] is True
    with connect(made["listen"]) as sock:
        round_trip(sock)
    assert api.delete("/proxies/db").status_code == 204


def test_reset_is_204_and_reenables_and_clears(api, echo):
    made = api.post("/proxies", json={"name": "db", "upstream": echo.address}).json()
    api.post("/proxies/db/toxics", json={"type": "timeout"})
    api.post("/proxies/db", json={"enabled": False})
    r = api.post("/reset")
    assert r.status_code == 204 and r.content == b""
    assert api.get("/proxies/db").json() == made


def test_browsers_are_refused(api):
    r = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert r.status_code == 403
    assert api.get("/proxies").status_code == 200


def test_every_answer_carries_a_request_id(api):
    ids = {api.get("/version").headers["X-Toxiproxy-Request-Id"] for _ in range(3)}
    assert len(ids) == 3 and all(ids)
    assert api.get("/nope").headers["X-Toxiproxy-Request-Id"]


def test_version_is_json(api):
    r = api.get("/version")
    assert r.status_code == 200 and set(r.json()) == {"version"}


def test_unknown_paths_404_and_wrong_methods_405(api):
    assert api.get("/nope").status_code == 404
    assert api.put("/proxies").status_code == 405
    assert api.get("/reset").status_code == 405


def test_keep_alive_serves_many_requests_on_one_connection(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        for _ in range(5):
            conn.request("GET", "/proxies")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b"{}\n"
        conn.request("POST", "/proxies", body=b"{bad", headers={"Content-Length": "4"})
        r = conn.getresponse()
        assert r.status == 400 and r.read()
        conn.request("GET", "/version")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_populate_creates_keeps_and_replaces(api, echo):
    listen = f"127.0.0.1:{_free_port()}"
    r = api.post("/populate", json=[{"name": "a", "listen": listen, "upstream": echo.address},
                                    {"name": "b", "upstream": echo.address}])
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["a", "b"]
    api.post("/proxies/a/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    api.post("/proxies/b/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    r = api.post("/populate", json=[
        {"name": "a", "listen": listen, "upstream": echo.address},  # unchanged: kept
        {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.address}])  # changed: new
    assert r.status_code == 201
    a, b = r.json()["proxies"]
    assert len(a["toxics"]) == 1 and b["toxics"] == []


def test_populate_validates_everything_before_creating_anything(api, echo):
    r = api.post("/populate", json=[{"name": "a", "upstream": echo.address},
                                    {"name": "b"}])
    assert r.status_code == 400
    assert r.json()["error"] == "missing required field: upstream at proxy 2"
    assert r.json()["status"] == 400
    assert api.get("/proxies").json() == {}
    r = api.post("/populate", json=[{"upstream": echo.address}])
    assert r.json()["error"] == "missing required field: name at proxy 1"


def test_populate_reports_what_it_made_before_a_failure(api, echo):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = api.post("/populate", json=[
            {"name": "a", "upstream": echo.address},
            {"name": "b", "listen": f"127.0.0.1:{port}", "upstream": echo.address}])
    assert r.status_code == 500
    body = r.json()
    assert body["error"].endswith(" at proxy 2") and body["status"] == 500
    assert [p["name"] for p in body["proxies"]] == ["a"]
