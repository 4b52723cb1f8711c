"""``rediss://`` against a TLS-only redis-server, with certificates made at test time.

The server listens on a TLS port only (``--port 0``), so every success here went
through TLS. A client that cannot verify the server (wrong CA, no CA) or that the
server refuses (no client certificate) gets a ``CoordinatorUnavailableError``:
leasepool's error, not redis-py's, with the password redacted everywhere,
including the chained cause.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from _servers_extra import Certs, TlsRedisServer, TlsUnsupportedError, make_certs

import redis
from leasepool import (
    CoordinatorUnavailableError,
    LeasedExecutorManager,
    RedisCoordinator,
    ReleaseOutcome,
)

pytestmark = pytest.mark.redis

PASSWORD = "tls-Secret-pw-7"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def _start(certs: Certs, *, client_certs: bool) -> TlsRedisServer:
    server = TlsRedisServer(certs, password=PASSWORD, client_certs=client_certs)
    try:
        return server.start()
    except TlsUnsupportedError as exc:
        pytest.skip(f"this redis-server was built without TLS: {exc}")


@pytest.fixture
def tls_server(certs: Certs) -> Iterator[TlsRedisServer]:
    server = _start(certs, client_certs=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mtls_server(certs: Certs) -> Iterator[TlsRedisServer]:
    """A server that also requires a client certificate signed by the test CA."""
    server = _start(certs, client_certs=True)
    try:
        yield server
    finally:
        server.stop()


def _url(server: TlsRedisServer) -> str:
    return f"rediss://default:{PASSWORD}@127.0.0.1:{server.port}/0"


def _square(x: int) -> int:
    return x * x


def _manager(coordinator: RedisCoordinator) -> LeasedExecutorManager:
    return LeasedExecutorManager(max_pools=1, workers_per_pool=1, coordinator=coordinator)


async def test_rediss_url_acquire_run_release_and_hand_off(
    tls_server: TlsRedisServer, certs: Certs, pool_name: str
) -> None:
    """Two hosts share a pool of 1 over TLS: a grant, work, and a hand-off by event."""
    first = _manager(
        RedisCoordinator.from_url(
            _url(tls_server), pool=pool_name, capacity=1, ssl_ca_certs=certs.ca
        )
    )
    second = _manager(
        RedisCoordinator.from_url(
            _url(tls_server), pool=pool_name, capacity=1, ssl_ca_certs=certs.ca
        )
    )
    await first.start()
    await second.start()
    try:
        lease = await first.acquire(lease_seconds=30)
        assert await lease.run(_square, 7) == 49
        waiter = asyncio.ensure_future(second.acquire(lease_seconds=30, timeout=20))
        await asyncio.sleep(0.2)
        assert not waiter.done()  # the cap of 1 holds over TLS too
        assert await lease.release() is ReleaseOutcome.RELEASED
        handed = await asyncio.wait_for(waiter, 20)
        assert handed.fencing_token > lease.fencing_token
        assert await handed.run(_square, 8) == 64
        assert await handed.release() is ReleaseOutcome.RELEASED
    finally:
        await second.stop()
        await first.stop()


async def test_client_certificate_when_the_server_asks_for_one(
    mtls_server: TlsRedisServer, certs: Certs, pool_name: str
) -> None:
    manager = _manager(
        RedisCoordinator.from_url(
            _url(mtls_server),
            pool=pool_name,
            capacity=1,
            ssl_ca_certs=certs.ca,
            ssl_certfile=certs.client_cert,
            ssl_keyfile=certs.client_key,
        )
    )
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=30)
        assert await lease.run(_square, 3) == 9
        assert await lease.release() is ReleaseOutcome.RELEASED
    finally:
        await manager.stop()


def _assert_clean(exc: BaseException, server: TlsRedisServer) -> None:
    """leasepool's error, naming the action and the redacted URL; no password anywhere."""
    assert type(exc) is CoordinatorUnavailableError
    assert not isinstance(exc, redis.RedisError)
    text = str(exc)
    assert text.startswith("start pool "), text
    assert f"rediss://default:***@127.0.0.1:{server.port}/0" in text
    everything = "".join(traceback.format_exception(exc))  # the chained cause included
    assert PASSWORD not in everything


async def _start_fails(server: TlsRedisServer, pool: str, **tls: Any) -> BaseException:
    coordinator = RedisCoordinator.from_url(_url(server), pool=pool, capacity=1, **tls)
    manager = _manager(coordinator)
    with pytest.raises(CoordinatorUnavailableError) as caught:
        await manager.start()
    assert PASSWORD not in repr(coordinator)
    assert PASSWORD not in str(manager.stats())
    return caught.value


@pytest.mark.parametrize("trust", ["other CA", "system CAs"])
async def test_a_server_certificate_that_does_not_verify(
    tls_server: TlsRedisServer, certs: Certs, pool_name: str, trust: str
) -> None:
    tls = {"ssl_ca_certs": certs.other_ca} if trust == "other CA" else {}
    exc = await _start_fails(tls_server, pool_name, **tls)
    _assert_clean(exc, tls_server)
    assert "certificate verify failed" in str(exc).lower()


async def test_no_client_certificate_when_the_server_asks_for_one(
    mtls_server: TlsRedisServer, certs: Certs, pool_name: str
) -> None:
    exc = await _start_fails(mtls_server, pool_name, ssl_ca_certs=certs.ca)
    _assert_clean(exc, mtls_server)


async def test_plain_redis_url_against_a_tls_port(
    tls_server: TlsRedisServer, pool_name: str
) -> None:
    url = f"redis://default:{PASSWORD}@127.0.0.1:{tls_server.port}/0"
    coordinator = RedisCoordinator.from_url(url, pool=pool_name, capacity=1)
    with pytest.raises(CoordinatorUnavailableError) as caught:
        await _manager(coordinator).start()
    assert type(caught.value) is CoordinatorUnavailableError
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))
    assert f"redis://default:***@127.0.0.1:{tls_server.port}/0" in str(caught.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEASEPOOL_")}
    return subprocess.run(
        [sys.executable, "-m", "leasepool", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


async def test_cli_takes_the_ca_as_a_url_query_parameter(
    tls_server: TlsRedisServer, certs: Certs, pool_name: str
) -> None:
    """The documented way to give TLS settings to the command line."""
    coordinator = RedisCoordinator.from_url(
        _url(tls_server), pool=pool_name, capacity=1, ssl_ca_certs=certs.ca
    )
    manager = _manager(coordinator)
    await manager.start()  # creates the pool
    try:
        url = f"{_url(tls_server)}?ssl_ca_certs={certs.ca}"
        done = await asyncio.to_thread(_cli, "pools", "--url", url)
    finally:
        await manager.stop()
    assert done.returncode == 0, done.stderr
    assert pool_name in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    failed = _cli("pools", "--url", f"{_url(tls_server)}?ssl_ca_certs={certs.other_ca}")
    assert failed.returncode != 0
    assert "certificate verify failed" in failed.stderr.lower()
    assert "Traceback" not in failed.stderr
    assert PASSWORD not in failed.stdout + failed.stderr
