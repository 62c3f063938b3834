"""The built-in proxy server driven through toxiproxy-python, as a user drives a real Toxiproxy."""

from __future__ import annotations

import asyncio
import socket

import pytest
import test_proxy_fixtures as fx
from test_proxy_fixtures import connect, port_of, round_trip
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.proxy import ProxyServer

echo, server, client = fx.echo, fx.server, fx.client  # the fixtures


def test_client_sees_a_running_server_and_its_version(client):
    assert client.running()
    assert b'"version"' in client.version()


def test_create_list_get_and_destroy_a_proxy(client, echo):
    proxy = client.create(upstream=echo.address, name="echo")
    assert proxy.listen.startswith("127.0.0.1:") and port_of(proxy.listen) > 0  # port 0 resolved
    assert proxy.enabled is True and proxy.upstream == echo.address
    assert set(client.proxies()) == {"echo"}
    assert client.get_proxy("echo").listen == proxy.listen
    with connect(proxy.listen) as sock:
        round_trip(sock, b"hello through the proxy")
    with pytest.raises(ProxyExists):
        client.create(upstream=echo.address, name="echo")
    assert client.destroy(proxy)
    assert client.proxies() == {}
    assert client.get_proxy("echo") is None
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    with pytest.raises(NotFound):
        proxy.destroy()


def test_destroy_all_removes_every_proxy(client, echo):
    for name in ("a", "b", "c"):
        client.create(upstream=echo.address, name=name)
    client.destroy_all()
    assert client.proxies() == {}


def test_populate_creates_missing_proxies_and_keeps_identical_ones(client, echo):
    made = client.populate([{"name": "one", "upstream": echo.address, "listen": "127.0.0.1:0"},
                            {"name": "two", "upstream": echo.address, "listen": "127.0.0.1:0"}])
    assert [p.name for p in made] == ["one", "two"]
    one = client.get_proxy("one")
    # the client compares listen literally: with the real address it keeps the proxy
    again = client.populate([{"name": "one", "upstream": echo.address, "listen": one.listen}])
    assert again == [] and client.get_proxy("one").listen == one.listen


def test_toxics_add_get_and_destroy(client, echo):
    proxy = client.create(upstream=echo.address, name="echo")
    proxy.add_toxic(type="latency", attributes={"latency": 10, "jitter": 2})
    proxy.add_toxic(type="bandwidth", stream="upstream", name="slow_up", toxicity=0.5,
                    attributes={"rate": 100})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "slow_up"}
    latency = proxy.get_toxic("latency_downstream")
    assert (latency.type, latency.stream, latency.toxicity) == ("latency", "downstream", 1.0)
    assert latency.attributes == {"latency": 10, "jitter": 2}
    assert proxy.get_toxic("slow_up").attributes == {"rate": 100}
    assert proxy.get_toxic("slow_up").toxicity == 0.5
    assert proxy.get_toxic("nope") is None
    with pytest.raises(ProxyExists):  # names are unique across both streams
        proxy.add_toxic(type="noop", stream="downstream", name="slow_up")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="sideways")
    assert proxy.destroy_toxic("slow_up")
    assert set(proxy.toxics()) == {"latency_downstream"}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("slow_up")


def test_reset_enables_every_proxy_and_removes_every_toxic(client, echo):
    proxy = client.create(upstream=echo.address, name="echo")
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    assert client.reset()
    again = client.get_proxy("echo")
    assert again.enabled is True and again.toxics() == {}
    with connect(again.listen) as sock:
        round_trip(sock)


def test_disable_refuses_connections_and_closes_open_ones(client, echo):
    proxy = client.create(upstream=echo.address, name="echo")
    sock = connect(proxy.listen)
    round_trip(sock)
    proxy.disable()
    assert client.get_proxy("echo").enabled is False
    try:
        assert sock.recv(10) == b""  # the open connection was closed
    except ConnectionResetError:
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    proxy.enable()  # listens again on the same address
    assert client.get_proxy("echo").listen == proxy.listen
    with connect(proxy.listen) as again:
        round_trip(again)


def test_down_context_manager_takes_the_proxy_down_for_the_block(client, echo):
    proxy = client.create(upstream=echo.address, name="echo")
    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            connect(proxy.listen)
    with connect(proxy.listen) as sock:
        round_trip(sock)


def test_proxy_created_disabled_does_not_listen(client, echo):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proxy = client.create(upstream=echo.address, name="off", listen=f"127.0.0.1:{port}",
                          enabled=False)
    assert proxy.enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    proxy.enable()
    with connect(proxy.listen) as conn:
        round_trip(conn)


def test_stop_closes_every_listener_and_connection(echo):
    server = ProxyServer("127.0.0.1", 0).start()
    try:
        proxy = server.call(_make(server, echo.address))
        sock = connect(proxy)
        round_trip(sock)
    finally:
        server.stop()
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2)


async def _make(server: ProxyServer, upstream: str) -> str:
    proxy = server._new_proxy("p", "127.0.0.1:0", upstream)
    await proxy.start()
    server.proxies["p"] = proxy
    return proxy.listen


def test_async_context_runs_inside_a_loop():
    async def main() -> bytes:
        async with ProxyServer("127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        return answer

    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 200 OK") and b'"version"' in answer


def test_an_unreachable_upstream_closes_the_client_connection(client):
    with socket.create_server(("127.0.0.1", 0)) as gone:
        dead = f"127.0.0.1:{gone.getsockname()[1]}"
    proxy = client.create(upstream=dead, name="dead")
    try:  # the reset may come before connect() returns
        with connect(proxy.listen) as sock:
            assert sock.recv(10) == b""
    except ConnectionResetError:
        pass


def test_the_same_seed_draws_the_same_toxicity_pattern(echo):
    import requests

    patterns = []
    for _ in range(2):
        with ProxyServer("127.0.0.1", 0, seed=11) as server:
            listen = requests.post(server.url + "/proxies", timeout=5, json={
                "name": "p", "upstream": echo.address}).json()["listen"]
            requests.post(server.url + "/proxies/p/toxics", timeout=5, json={
                "type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 0}})
            hits = []
            for _ in range(12):
                with connect(listen) as sock:
                    sock.sendall(b"?")
                    hits.append(sock.recv(1) == b"")  # closed by the toxic, or echoed
            patterns.append(hits)
    assert patterns[0] == patterns[1] and 0 < sum(patterns[0]) < 12
