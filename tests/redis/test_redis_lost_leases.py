"""A holder learns that Redis no longer knows its lease, and stops using it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from _redis_server import RedisServer
from leasepool import GrantRequest, LeasedExecutorManager, LeaseLostError, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.admin import RedisAdmin

pytestmark = pytest.mark.redis


def manager_for(url: str, pool: str, **kwargs: Any) -> LeasedExecutorManager:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=2)
    return LeasedExecutorManager(
        backend="thread", max_pools=2, workers_per_pool=1, coordinator=coordinator, **kwargs
    )


async def submit_fails_within(lease: Any, seconds: float) -> float:
    """Seconds until ``lease.executor.submit`` raises LeaseLostError (fails after ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            lease.executor.submit(int).result()
        except LeaseLostError:
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError(f"submit still worked {seconds}s later")


async def test_operator_revoke_reaches_the_holder_by_event(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    manager = manager_for(redis_url, pool_name)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=60)
        assert await lease.run(sum, [1, 2]) == 3
        admin = RedisAdmin(redis_client)
        assert await admin.revoke(pool_name, lease.lease_id) is True
        # No renewal is due for a minute: only the event can tell the holder this fast.
        assert await submit_fails_within(lease, 3.0) < 3.0
        with pytest.raises(LeaseLostError):
            await lease.run(int)
        assert await admin.revoke(pool_name, lease.lease_id) is False
        again = await manager.acquire(lease_seconds=60, wait=False)
        await again.release()
    finally:
        await manager.stop()


async def test_flushall_is_found_at_the_next_renewal(
    own_redis: RedisServer, pool_name: str
) -> None:
    redis_client = aioredis.Redis.from_url(own_redis.url)
    manager = manager_for(own_redis.url, pool_name, auto_renew=True, lease_grace_seconds=1.0)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=0.9)  # renewed every 0.3 s
        token = lease.fencing_token
        await asyncio.sleep(1.2)
        assert lease.executor.submit(int).result() == 0, "auto-renew kept it alive"
        await redis_client.flushall()
        assert await submit_fails_within(lease, 3.0) < 3.0
        fresh = await manager.acquire(lease_seconds=5, wait=False)
        assert fresh.fencing_token > token, "tokens still increase after the data was lost"
        await fresh.release()
    finally:
        await manager.stop()
        await redis_client.aclose()


async def test_fencing_tokens_increase_across_flushall_and_follow_server_time(
    own_redis: RedisServer, pool_name: str
) -> None:
    redis_client = aioredis.Redis.from_url(own_redis.url)
    coordinator = RedisCoordinator.from_url(own_redis.url, pool=pool_name, capacity=1)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=lambda _: None)
    try:
        tokens = []
        for i in range(3):
            grant = await coordinator.acquire(
                GrantRequest(f"before-{i}", "", 5, 0), wait=False, deadline=None
            )
            tokens.append(grant.fencing_token)
            await coordinator.release(grant.lease_id)
        await redis_client.flushall()
        for i in range(3):
            grant = await coordinator.acquire(
                GrantRequest(f"after-{i}", "", 5, 0), wait=False, deadline=None
            )
            tokens.append(grant.fencing_token)
            await coordinator.release(grant.lease_id)
        assert tokens == sorted(set(tokens))
        seconds, micros = await redis_client.time()
        assert tokens[-1] <= int(seconds) * 1_000_000 + int(micros) < 2**53
        assert tokens[-1] > (int(seconds) - 60) * 1_000_000, "seeded from server time in µs"
    finally:
        await coordinator.close()
        await redis_client.aclose()
