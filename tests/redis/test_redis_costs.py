"""What waiting and refusing cost on the server, counted by the server itself.

Each test uses a server of its own so that its command counters see nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _helpers import commandstats

import redis
from _redis_server import RedisServer
from leasepool import LeaseUnavailableError
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._coordinator import GrantRequest, ReleaseOutcome
from leasepool._redis_coordinator import RedisCoordinator

pytestmark = pytest.mark.redis


def ignore(_: str) -> None:
    pass


@pytest.fixture
def server_stats(own_redis: RedisServer) -> Any:
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    client.close()


# Commands our scripts run inside EVALSHA: the server counts those too.
INSIDE_SCRIPTS = {
    "time", "zrangebyscore", "zrem", "zscore", "hmget", "hget", "hset", "hsetnx", "zcount",
    "zadd", "del", "pexpireat", "pexpire", "publish", "type", "hexists", "zremrangebyscore",
    "zrange",
}  # fmt: skip
HOUSEKEEPING = {"config|resetstat", "info"}


def top_level(stats: dict[str, int]) -> dict[str, int]:
    """The commands clients sent (not the ones scripts ran), without our own counters."""
    return {k: v for k, v in stats.items() if k not in INSIDE_SCRIPTS | HOUSEKEEPING}


async def started(url: str, pool: str, capacity: int, **kwargs: Any) -> RedisCoordinator:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=capacity, **kwargs)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    return coordinator


async def test_wait_false_costs_exactly_one_round_trip(
    own_redis: RedisServer, server_stats: Any
) -> None:
    c = await started(own_redis.url, "p", 1)
    try:
        await c.acquire(GrantRequest("warm", "", 30, 0), wait=False, deadline=None)
        server_stats.config_resetstat()
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(GrantRequest("refused", "", 30, 0), wait=False, deadline=None)
        assert top_level(commandstats(server_stats)) == {"evalsha": 1}
    finally:
        await c.close()


async def test_a_blocked_waiter_costs_at_most_one_command_per_second(
    own_redis: RedisServer, server_stats: Any
) -> None:
    holder = await started(own_redis.url, "p", 1)
    waiting = await started(own_redis.url, "p", 1, recheck_interval=1.0)
    try:
        await holder.acquire(GrantRequest("held", "", 60, 0), wait=False, deadline=None)
        waiters = [
            asyncio.ensure_future(
                waiting.acquire(GrantRequest(f"w{i}", "", 60, 0), wait=True, deadline=None)
            )
            for i in range(5)
        ]
        await asyncio.sleep(0.3)
        server_stats.config_resetstat()
        await asyncio.sleep(3.0)
        sent = top_level(commandstats(server_stats))
        assert set(sent) <= {"evalsha"}, sent
        assert sent.get("evalsha", 0) <= 4, sent  # 3 s at one recheck a second, at most
        assert not any(w.done() for w in waiters)
        for w in waiters:
            w.cancel()
    finally:
        await waiting.close()
        await holder.close()


async def test_waiters_share_connections(own_redis: RedisServer, server_stats: Any) -> None:
    holder = await started(own_redis.url, "p", 1)
    waiting = await started(own_redis.url, "p", 1)
    try:
        await holder.acquire(GrantRequest("held", "", 60, 0), wait=False, deadline=None)
        first = asyncio.ensure_future(
            waiting.acquire(GrantRequest("w0", "", 60, 0), wait=True, deadline=None)
        )
        await asyncio.sleep(0.2)
        before = len(server_stats.client_list())
        more = [
            asyncio.ensure_future(
                waiting.acquire(GrantRequest(f"w{i}", "", 60, 0), wait=True, deadline=None)
            )
            for i in range(1, 50)
        ]
        await asyncio.sleep(0.3)
        assert len(server_stats.client_list()) == before, "no connection per waiter"
        for w in [first, *more]:
            w.cancel()
    finally:
        await waiting.close()
        await holder.close()


async def test_a_release_wakes_one_waiter_with_one_try(
    own_redis: RedisServer, server_stats: Any
) -> None:
    c = await started(own_redis.url, "p", 2)
    try:
        held = [
            await c.acquire(GrantRequest(f"h{i}", "", 60, 0), wait=False, deadline=None)
            for i in range(2)
        ]
        waiters = [
            asyncio.ensure_future(
                c.acquire(GrantRequest(f"w{i}", "", 60, 0), wait=True, deadline=None)
            )
            for i in range(10)
        ]
        await asyncio.sleep(0.3)
        assert await c.release("warm-up") is ReleaseOutcome.UNKNOWN  # loads the script
        server_stats.config_resetstat()
        await c.release(held[0].lease_id)
        await asyncio.sleep(0.5)
        assert [w.done() for w in waiters] == [True] + [False] * 9
        sent = top_level(commandstats(server_stats))
        assert sent == {"evalsha": 2}, ("one release, one grant", str(c.statistics()))
        for w in waiters:
            w.cancel()
    finally:
        await c.close()


@pytest.mark.parametrize("spin", [0, 1, 2, 3, 4, 6, 9, 15])
async def test_cancelling_the_first_try_leaks_no_slot(
    redis_url: str, pool_name: str, spin: int
) -> None:
    c = await started(redis_url, pool_name, 1)
    try:
        task = asyncio.ensure_future(
            c.acquire(GrantRequest("first", "", 60, 0), wait=True, deadline=None)
        )
        for _ in range(spin):
            await asyncio.sleep(0)
        task.cancel()
        try:
            grant = await task
        except asyncio.CancelledError:
            grant = None
        for _ in range(100):
            live = {r.lease_id for r in (await c.status()).leases}
            if live == ({grant.lease_id} if grant else set()):
                break
            await asyncio.sleep(0.01)
        assert live == ({grant.lease_id} if grant else set())
    finally:
        await c.close()
