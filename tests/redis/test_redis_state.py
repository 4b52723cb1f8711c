"""Bad state in Redis: clear errors naming the key and field, for every caller of a
batch; no slot left taken; a paused pool (capacity 0) says so (issue 8, item 5)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from leasepool import CoordinatorStateError, GrantRequest, LeaseUnavailableError, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK

pytestmark = pytest.mark.redis


def ignore(_: str) -> None:
    pass


def req(lease_id: str) -> GrantRequest:
    return GrantRequest(lease_id, "", 30.0, 0.0)


@contextlib.asynccontextmanager
async def started(url: str, pool: str, capacity: int = 3, **kw: Any) -> AsyncIterator[Any]:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=capacity, **kw)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        yield coordinator
    finally:
        await coordinator.close()


@pytest.mark.parametrize("bad", ["2.5", "inf", "nan", "1e14", "-1", "abc", "1000001"])
async def test_a_damaged_capacity_fails_every_caller_of_the_batch_and_takes_no_slot(
    redis_url: str, pool_name: str, redis_client: Any, bad: str
) -> None:
    async with started(redis_url, pool_name) as c:
        await redis_client.hset(c.keys.meta, "capacity", bad)
        calls = [
            c.acquire(req(f"a{i}"), wait=i > 0, deadline=time.monotonic() + 5) for i in range(6)
        ]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        for result in results:
            assert isinstance(result, CoordinatorStateError), result
            assert c.keys.meta in str(result) and "capacity" in str(result)
        assert await redis_client.zcard(c.keys.leases) == 0
        assert await redis_client.zcard(c.keys.queue) == 0
    with pytest.raises(CoordinatorStateError, match="capacity"):
        async with started(redis_url, pool_name):
            pass


@pytest.mark.parametrize(("field", "bad"), [("fence", "1e300"), ("fence", "x"), ("qseq", "1.5")])
async def test_a_damaged_counter_is_state_not_unavailability(
    redis_url: str, pool_name: str, redis_client: Any, field: str, bad: str
) -> None:
    async with started(redis_url, pool_name, capacity=1) as c:
        first = await c.acquire(req("first"), wait=False, deadline=None)
        await redis_client.hset(c.keys.meta, field, bad)
        with pytest.raises(CoordinatorStateError, match=field):
            await c.acquire(req("second"), wait=True, deadline=time.monotonic() + 5)
        assert await redis_client.zrange(c.keys.leases, 0, -1) == [first.lease_id]
        assert await redis_client.zcard(c.keys.queue) == 0


async def test_a_damaged_lease_hash_names_its_key(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with started(redis_url, pool_name) as c:
        await c.acquire(req("x"), wait=False, deadline=None)
        await redis_client.hset(c.keys.lease("x"), "hard_ms", "soon")
        with pytest.raises(CoordinatorStateError, match="hard_ms") as info:
            await c.renew({"x": 5.0})
        assert c.keys.lease("x") in str(info.value)
        with pytest.raises(CoordinatorStateError, match="hard_ms") as info:
            await c.acquire(req("x"), wait=False, deadline=None)  # (an acquire retry)
        assert c.keys.lease("x") in str(info.value)


@pytest.mark.parametrize("key", ["meta", "leases", "queue", "tickets", "waiters"])
async def test_a_key_of_the_wrong_type_is_named(
    redis_url: str, pool_name: str, redis_client: Any, key: str
) -> None:
    async with started(redis_url, pool_name, capacity=1) as c:
        await c.acquire(req("held"), wait=False, deadline=None)
        name = getattr(c.keys, key)
        await redis_client.delete(name)
        await redis_client.set(name, "garbage")
        with pytest.raises(CoordinatorStateError) as info:
            await asyncio.wait_for(
                c.acquire(req("w"), wait=True, deadline=time.monotonic() + 3), 10
            )
        assert name in str(info.value) or key == "meta"


async def test_capacity_zero_pauses_the_pool(redis_url: str, pool_name: str) -> None:
    async with started(redis_url, pool_name, capacity=0) as c:
        with pytest.raises(LeaseUnavailableError, match="paused"):
            await c.acquire(req("now"), wait=False, deadline=None)
        waiter = asyncio.ensure_future(c.acquire(req("w"), wait=True, deadline=None))
        await asyncio.sleep(0.2)
        assert not waiter.done(), "waiters wait while the pool is paused"
        await c.set_capacity(1)
        grant = await asyncio.wait_for(waiter, 5)
        assert grant.lease_id == "w"


@pytest.mark.parametrize("capacity", [-1, 1_000_001, 2.0, True])
def test_the_capacity_range_is_enforced_before_redis(capacity: object) -> None:
    with pytest.raises((TypeError, ValueError), match="capacity"):
        RedisCoordinator.from_url("redis://127.0.0.1:1/0", pool="p", capacity=capacity)  # type: ignore[arg-type]


async def test_set_capacity_repairs_a_damaged_capacity(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with started(redis_url, pool_name, capacity=1) as c:
        await redis_client.hset(c.keys.meta, "capacity", "1e14")
        with pytest.raises(CoordinatorStateError):
            await c.acquire(req("a"), wait=False, deadline=None)
        with pytest.raises(ValueError, match="capacity"):
            await c.set_capacity(10**14)
        await c.set_capacity(2)
        assert await redis_client.hget(c.keys.meta, "capacity") == "2"
        await c.acquire(req("b"), wait=False, deadline=None)
