"""Redis unreachable, killed, paused, restarted empty, or holding foreign data.

Every test that kills or pauses a server uses ``own_redis``, a server of its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from _redis_server import RedisServer, free_port
from leasepool import (
    CoordinatorStateError,
    CoordinatorUnavailableError,
    GrantRequest,
    LeasedExecutorManager,
    LeaseExpiredError,
    RedisCoordinator,
    ReleaseOutcome,
)
from leasepool._clock import MONOTONIC_CLOCK

pytestmark = pytest.mark.redis

SECRET = "s3cr3t-Pa55word"


def ignore(_: str) -> None:
    pass


async def test_unreachable_at_start_raises_without_the_password(pool_name: str) -> None:
    url = f"redis://operator:{SECRET}@127.0.0.1:{free_port()}/0"
    coordinator = RedisCoordinator.from_url(url, pool=pool_name, capacity=1)
    assert SECRET not in repr(coordinator)
    started = time.monotonic()
    with pytest.raises(CoordinatorUnavailableError) as info:
        await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    assert time.monotonic() - started < 5, "an unreachable server is reported fast"
    assert "operator:***@127.0.0.1" in str(info.value)
    assert info.value.__cause__ is not None, "raised from the redis-py error"
    for text in (str(info.value), repr(info.value), str(info.value.__cause__)):
        assert SECRET not in text
    with pytest.raises(Exception, match="not started"):
        await coordinator.acquire(GrantRequest("x", "", 1, 0), wait=False, deadline=None)


async def test_manager_start_fails_when_redis_is_down(pool_name: str) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    manager = LeasedExecutorManager(
        max_pools=1, coordinator=RedisCoordinator.from_url(url, pool=pool_name, capacity=1)
    )
    with pytest.raises(CoordinatorUnavailableError) as info:
        await manager.start()
    assert SECRET not in str(info.value)


async def test_redis_killed_mid_lease(own_redis: RedisServer, pool_name: str) -> None:
    """Held leases run on to their local deadline; acquire fails loudly; all recovers."""
    coordinator = RedisCoordinator.from_url(own_redis.url, pool=pool_name, capacity=2)
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=2,
        workers_per_pool=1,
        coordinator=coordinator,
        lease_grace_seconds=0.5,
    )
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=1.5)
        own_redis.kill()
        assert await lease.run(sum, [2, 3]) == 5, "a held lease keeps working"
        with pytest.raises(CoordinatorUnavailableError):
            await manager.acquire(lease_seconds=1, wait=False)
        with pytest.raises(CoordinatorUnavailableError):
            await manager.acquire(lease_seconds=1, timeout=1)
        await asyncio.sleep(max(0.0, lease.hard_expires_at + 0.05 - time.monotonic()))
        with pytest.raises(LeaseExpiredError):
            lease.executor.submit(int)
        own_redis.restart()
        fresh = await manager.acquire(lease_seconds=5, wait=False)
        assert await fresh.run(int) == 0
        await fresh.release()
    finally:
        await manager.stop()


async def test_waiters_fail_when_redis_dies_and_recover_after(
    own_redis: RedisServer, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(
        own_redis.url, pool=pool_name, capacity=1, recheck_interval=1.0
    )
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        await coordinator.acquire(GrantRequest("holder", "", 30, 0), wait=False, deadline=None)
        waiter = asyncio.ensure_future(
            coordinator.acquire(GrantRequest("waiter", "", 30, 0), wait=True, deadline=None)
        )
        await asyncio.sleep(0.2)
        assert not waiter.done()
        own_redis.kill()
        with pytest.raises(CoordinatorUnavailableError):
            await asyncio.wait_for(waiter, 10)
        own_redis.restart()
        grant = await coordinator.acquire(
            GrantRequest("after", "", 30, 0), wait=False, deadline=None
        )
        assert await coordinator.release(grant.lease_id) is ReleaseOutcome.RELEASED
        # The data was lost with the old server: the old lease is unknown now.
        assert await coordinator.renew({"holder": 30}) == {"holder": None}
    finally:
        await coordinator.close()


async def test_paused_redis_times_out_as_unavailable(
    own_redis: RedisServer, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(
        own_redis.url, pool=pool_name, capacity=1, socket_timeout=0.5
    )
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        own_redis.pause()
        try:
            with pytest.raises(CoordinatorUnavailableError):
                await coordinator.acquire(GrantRequest("p", "", 5, 0), wait=False, deadline=None)
        finally:
            own_redis.resume()
        grant = await coordinator.acquire(GrantRequest("q", "", 5, 0), wait=False, deadline=None)
        await coordinator.release(grant.lease_id)
    finally:
        await coordinator.close()


async def test_scripts_reload_after_script_flush(redis_url: str, pool_name: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    coordinator = RedisCoordinator(client, pool=pool_name, capacity=1)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        await client.script_flush()
        grant = await coordinator.acquire(GrantRequest("a", "", 5, 0), wait=False, deadline=None)
        await client.script_flush()
        assert await coordinator.release(grant.lease_id) is ReleaseOutcome.RELEASED
    finally:
        await coordinator.close()
        await client.aclose()


@pytest.mark.parametrize("which", ["meta", "leases"])
async def test_wrong_key_type_is_a_state_error_naming_the_key(
    redis_client: Any, redis_url: str, pool_name: str, which: str
) -> None:
    coordinator = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1)
    key = getattr(coordinator.keys, which)
    await redis_client.set(key, "not leasepool's")
    with pytest.raises(CoordinatorStateError, match=key.replace("{", r"\{").replace("}", r"\}")):
        await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    # Broken after start: the acquire names the key too.
    await redis_client.delete(key)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        await redis_client.delete(key)
        await redis_client.set(key, "not leasepool's")
        with pytest.raises(CoordinatorStateError, match=which):
            await coordinator.acquire(GrantRequest("a", "", 5, 0), wait=False, deadline=None)
    finally:
        await redis_client.delete(key)
        await coordinator.close()


async def test_corrupt_capacity_is_a_state_error(
    redis_client: Any, redis_url: str, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1)
    await redis_client.hset(coordinator.keys.meta, "capacity", "lots")
    with pytest.raises(CoordinatorStateError, match="capacity"):
        await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)


async def test_subscriber_reconnect_rechecks_at_once(
    own_redis: RedisServer, pool_name: str
) -> None:
    """No event and no timer is due, yet the waiter is served as soon as Redis is back."""
    coordinator = RedisCoordinator.from_url(
        own_redis.url, pool=pool_name, capacity=1, recheck_interval=30.0
    )
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        await coordinator.acquire(GrantRequest("holder", "", 60, 0), wait=False, deadline=None)
        waiter = asyncio.ensure_future(
            coordinator.acquire(GrantRequest("waiter", "", 60, 0), wait=True, deadline=None)
        )
        await asyncio.sleep(0.2)
        own_redis.restart()  # empty again: the holder's slot is gone with the data
        started = time.monotonic()
        grant = await asyncio.wait_for(waiter, 15)
        assert time.monotonic() - started < 10, "served on reconnect, not by the 30 s timer"
        assert grant.lease_id == "waiter"
    finally:
        await coordinator.close()
