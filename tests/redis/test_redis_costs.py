"""What waiting and refusing cost on the server, counted by the server itself.

Each test uses a server of its own so that its command counters see nothing else.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from _helpers import Worker, commandstats

import redis
from _redis_server import RedisServer
from leasepool import GrantRequest, LeaseUnavailableError, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK

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
    "zadd", "del", "pexpireat", "pexpire", "publish", "type", "zcard", "hincrby", "hdel",
    "zremrangebyscore",
    "zrange", "pttl", "exists",
}  # fmt: skip
HOUSEKEEPING = {"config|resetstat"}


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


@pytest.mark.slow
def test_waiting_processes_cost_at_most_one_command_per_second_each(
    own_redis: RedisServer, server_stats: Any
) -> None:
    """Two processes, five waiters each, wait behind a held lease (default settings).

    ``total_commands_processed`` counts every command the server runs, including the
    ones our scripts run inside EVALSHA; the INFO calls of this test are left out.
    """
    blocker = Worker("block", own_redis.url, "p", 1, lease=300)
    waiters: list[Worker] = []
    try:
        assert "held" in blocker.read()
        waiters += [Worker("queue", own_redis.url, "p", 1, tasks=5) for _ in range(2)]
        for w in waiters:
            line = w.read(timeout=30)
            assert line.get("queued") == 5, line
        time.sleep(5.5)  # one heartbeat each first: the script is loaded by then
        server_stats.config_resetstat()
        before = int(server_stats.info("stats")["total_commands_processed"])
        started = time.monotonic()
        time.sleep(10.0)
        after = int(server_stats.info("stats")["total_commands_processed"])
        elapsed = time.monotonic() - started
        sent = top_level(commandstats(server_stats))
        processed = after - before - 1  # one INFO between the two readings
        per_process_per_second = processed / len(waiters) / elapsed
        assert per_process_per_second <= 1.0, (processed, sent)
        assert set(sent) <= {"evalsha", "info"}, sent
        # One heartbeat per process per recheck_interval (5 s by default).
        assert sent.get("evalsha", 0) <= len(waiters) * (elapsed / 5.0 + 1), sent
    finally:
        for w in [*waiters, blocker]:
            w.close()


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


# What a grant and a release run inside their scripts when nobody queues: the fast path,
# whose server time is measured in benchmarks/ (lua/acquire.lua and lua/release.lua
# headers state the same).
ACQUIRE_COMMANDS = {
    "time": 1, "hmget": 2, "zcount": 1, "zadd": 1, "pexpire": 1, "hset": 2, "pexpireat": 1,
}  # fmt: skip
RELEASE_COMMANDS = {"time": 1, "zscore": 1, "zrem": 1, "del": 1, "zrange": 1}


async def test_a_grant_and_a_release_with_nobody_queued_run_few_commands(
    own_redis: RedisServer, server_stats: Any
) -> None:
    c = await started(own_redis.url, "p", 2)
    try:
        await c.acquire(GrantRequest("warm", "", 30, 0), wait=False, deadline=None)
        await c.release("warm")
        server_stats.config_resetstat()
        await c.acquire(GrantRequest("a", "", 30, 0), wait=False, deadline=None)
        after_acquire = commandstats(server_stats)
        server_stats.config_resetstat()
        await c.release("a")
        after_release = commandstats(server_stats)
    finally:
        await c.close()
    for stats, expected in ((after_acquire, ACQUIRE_COMMANDS), (after_release, RELEASE_COMMANDS)):
        assert top_level(stats) == {"evalsha": 1}, stats
        assert {k: v for k, v in stats.items() if k in INSIDE_SCRIPTS} == expected
