"""The test proxy (tests/_netproxy.py) against a real Redis: it adds the latency it is told
to, a partition blackholes calls until heal, reset drops connections, order is kept.

Only lower bounds on time are asserted (the proxy guarantees a minimum delay); the upper
bounds are wide, since the CI machine is slow and loaded.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

import redis
from _netproxy import NetProxy
from _redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[NetProxy]:
    with NetProxy("127.0.0.1", server.port) as made:
        yield made


def _client(proxy: NetProxy, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis.from_url(proxy.url_for(), socket_timeout=timeout, socket_connect_timeout=5)


def _timed_ping(client: redis.Redis) -> float:
    started = time.perf_counter()
    assert client.ping() is True
    return time.perf_counter() - started


def _recv_until(sock: socket.socket, size: int, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_ping_through_the_proxy_gains_the_injected_latency(proxy: NetProxy) -> None:
    client = _client(proxy)
    try:
        _timed_ping(client)  # connect first: the handshake is not what we time
        plain = min(_timed_ping(client) for _ in range(3))
        proxy.set_latency(0.05)
        both = [_timed_ping(client) for _ in range(3)]
        proxy.set_latency(0.08, direction="to_client")
        proxy.set_latency(0.0, direction="to_server")
        replies = [_timed_ping(client) for _ in range(3)]
        proxy.set_latency(0.0)
        after = min(_timed_ping(client) for _ in range(3))
    finally:
        client.close()
    assert all(rtt >= 0.1 for rtt in both), both  # 50 ms each way
    assert all(rtt >= 0.08 for rtt in replies), replies
    assert plain < 0.08 and after < 0.08, (plain, after)  # wide: only "no delay left"


def test_latency_with_jitter_keeps_byte_order(proxy: NetProxy) -> None:
    proxy.set_latency(0.001, jitter=0.01)
    client = _client(proxy)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(200):
            pipe.echo(f"m{i}")
        assert pipe.execute() == [f"m{i}".encode() for i in range(200)]
    finally:
        client.close()


def test_partition_times_a_call_out_and_heal_restores(proxy: NetProxy) -> None:
    client = _client(proxy, timeout=0.3)
    try:
        assert client.ping() is True
        proxy.partition()
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert time.monotonic() - started >= 0.3
        proxy.heal()
        assert client.ping() is True  # redis-py reconnects after the timeout
    finally:
        client.close()


def test_bytes_sent_during_a_partition_arrive_after_heal(proxy: NetProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert _recv_until(sock, 7, 5) == b"+PONG\r\n"
        proxy.partition()
        sock.sendall(b"ECHO held\r\n")
        with pytest.raises(TimeoutError):
            _recv_until(sock, 1, 0.3)
        proxy.heal()
        assert _recv_until(sock, 10, 5) == b"$4\r\nheld\r\n"


def test_a_connection_opened_during_a_partition_reaches_the_server_only_after_heal(
    proxy: NetProxy, server: RedisServer
) -> None:
    admin = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        before = len(admin.client_list())
        proxy.partition()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            time.sleep(0.2)
            assert len(admin.client_list()) == before
            proxy.heal()
            assert _recv_until(sock, 7, 5) == b"+PONG\r\n"
            assert len(admin.client_list()) == before + 1
    finally:
        admin.close()


def test_reset_closes_current_connections_and_accepts_new_ones(proxy: NetProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert _recv_until(sock, 7, 5) == b"+PONG\r\n"
        assert proxy.connections == 1
        proxy.reset()
        assert proxy.connections == 0
        assert _recv_until(sock, 1, 5) == b""  # the proxy closed our side
    client = _client(proxy)
    try:
        assert client.ping() is True
        assert proxy.connections == 1
    finally:
        client.close()
    assert proxy.accepted == 2


def test_close_is_idempotent_and_refuses_new_connections(server: RedisServer) -> None:
    proxy = NetProxy("127.0.0.1", server.port)
    port = proxy.port
    proxy.close()
    proxy.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_only_loopback_targets_and_non_negative_latency() -> None:
    with pytest.raises(ValueError, match="target_host"):
        NetProxy("10.0.0.1", 6379)
    with NetProxy("127.0.0.1", 1) as proxy:
        with pytest.raises(ValueError, match="latency"):
            proxy.set_latency(-1)
        with pytest.raises(ValueError, match="direction"):
            proxy.set_latency(0.1, direction="sideways")  # type: ignore[arg-type]
