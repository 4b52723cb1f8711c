"""The Redis coordinator keeps the cap through stalls, latency, hangs and churn (issue 8).

Each test names the rule it guards; each one fails when that rule is broken:

* a stale grant message never activates a lease (a waiter stalled past its claim window),
  nor does a grant message Redis never sent;
* local deadlines are timed from the send, never the reply (a proxy delays replies);
* ``timeout``, ``wait=False`` and ``timeout=0`` bound the whole acquire when Redis hangs;
* nothing grows: the held table, the waiters entry of a closed process, a dead waiter's
  grant, and every bookkeeping key has a TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from _helpers import Worker

from _netproxy import NetProxy
from _redis_server import RedisServer
from leasepool import CoordinatorUnavailableError, GrantRequest, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK

pytestmark = pytest.mark.redis


def ignore(_: str) -> None:
    pass


def req(lease_id: str, seconds: float = 30.0, grace: float = 0.0) -> GrantRequest:
    return GrantRequest(lease_id, f"owner of {lease_id}", seconds, grace)


@contextlib.asynccontextmanager
async def started(url: str, pool: str, capacity: int = 1, **kw: Any) -> AsyncIterator[Any]:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=capacity, **kw)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        yield coordinator
    finally:
        await coordinator.close()


async def test_a_waiter_stalled_past_its_claim_window_never_uses_the_stale_grant(
    redis_url: str, pool_name: str
) -> None:
    """The waiter's process is frozen (SIGSTOP) while its slot is handed to it, past the
    claim window; the slot goes to another holder. Resumed, the waiter reads the old
    grant message: it must not get the slot while the other holder has it."""
    async with started(redis_url, pool_name, claim_window=0.3) as c:
        await c.acquire(req("first"), wait=False, deadline=None)
        worker = Worker("queue", redis_url, pool_name, 1, tasks=1, hold=0.0, lease=30)
        try:
            assert worker.read()["queued"] == 1
            os.kill(worker.process.pid, signal.SIGSTOP)
            await c.release("first")  # handed to the frozen waiter, claim window 0.3 s
            await asyncio.sleep(1.0)
            grant = await c.acquire(req("second"), wait=True, deadline=time.monotonic() + 10)
            os.kill(worker.process.pid, signal.SIGCONT)
            await asyncio.sleep(1.5)  # the waiter reads the stale message meanwhile
            released_at = time.monotonic()
            await c.release("second")
            got = worker.read(timeout=20)
            assert got["start"] >= released_at, (
                f"the waiter used a stale grant {released_at - got['start']:.3f} s before"
                " the slot's holder released it"
            )
            assert got["token"] > grant.fencing_token
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
            worker.close()


async def test_a_grant_message_alone_never_activates_a_lease(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """A ``grant`` message for a queued waiter that Redis never made (a forged or stale
    copy): the waiter claims it, the claim finds nothing to claim, and the waiter keeps
    waiting. It gets its slot from a real hand-off, with the token Redis gave it."""
    async with started(redis_url, pool_name) as holder, started(redis_url, pool_name) as b:
        held = await holder.acquire(req("held"), wait=False, deadline=None)
        waits = b.statistics()["waits"]
        task = asyncio.ensure_future(b.acquire(req("next"), wait=True, deadline=None))
        for _ in range(500):
            if b.statistics()["waits"] > waits:
                break
            await asyncio.sleep(0.005)
        (origin,) = await redis_client.zrange(b.keys.waiters, 0, -1)
        now_ms = int((await redis_client.time())[0]) * 1000
        hard = now_ms + 60_000
        forged = f"grant {origin} next 999999 {hard} {hard} {now_ms + 5000}"
        assert await redis_client.publish(b.keys.events, forged) >= 1
        for _ in range(200):  # read, claimed, and the claim found the ticket still waiting
            stats = b.statistics()
            if (stats["events"] and not stats["unclaimed"]) or task.done():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert not task.done(), "a grant message alone activated a lease"
        assert b.statistics()["events"] == 1 and b.statistics()["unclaimed"] == 0
        assert await redis_client.zscore(b.keys.leases, "next") is None
        await holder.release(held.lease_id)
        grant = await asyncio.wait_for(task, 5)
        assert grant.fencing_token != 999999
        assert int(await redis_client.hget(b.keys.lease("next"), "token")) == grant.fencing_token


async def test_local_deadlines_come_from_the_send_even_when_replies_are_late(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """Replies reach the client 0.3 s after the script ran. The local hard deadline must
    still come no later than Redis's hard expiry (timed from the reply it would be
    ~0.3 s late)."""
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    with NetProxy(host, int(port)) as proxy:
        async with started(proxy.url_for(), pool_name, clock_drift=0.0, nowait_timeout=30.0) as c:
            proxy.set_latency(0.3, direction="to_client")
            grant = await c.acquire(req("late", seconds=2.0), wait=False, deadline=None)
            proxy.set_latency(0.0)
            hard_ms = int(await redis_client.hget(c.keys.lease("late"), "hard_ms"))
            sec, usec = await redis_client.time()
            t_after = time.monotonic()
            # The latest local time at which Redis can reach hard_ms.
            redis_expires_by = t_after + (hard_ms * 1000 - (sec * 1_000_000 + usec)) / 1e6
            assert grant.hard_deadline <= redis_expires_by, (
                f"local hard deadline {grant.hard_deadline - redis_expires_by:.4f} s after"
                " Redis's hard expiry"
            )
            await c.release("late")
        await asyncio.sleep(0.5)  # (the proxy thread closes its upstream sockets)


async def test_a_hung_redis_cannot_stretch_timeouts(own_redis: RedisServer, pool_name: str) -> None:
    """Against a frozen server: wait=False and timeout=0 answer within nowait_timeout,
    timeout=t within max(t, nowait_timeout); afterwards nothing is left taken."""
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    async with started(own_redis.url, pool_name, capacity=2, nowait_timeout=0.5) as c:
        own_redis.pause()
        try:
            took = []
            for i, (wait, timeout, error) in enumerate(
                [(False, None, CoordinatorUnavailableError), (True, 0.0, TimeoutError),
                 (True, 0.8, TimeoutError)]
            ):  # fmt: skip
                start = time.monotonic()
                deadline = None if timeout is None else start + timeout
                with pytest.raises(error):
                    await c.acquire(req(f"hung{i}"), wait=wait, deadline=deadline)
                took.append(time.monotonic() - start)
            assert took[0] < 2.0 and took[1] < 2.0 and took[2] < 2.5, took
        finally:
            own_redis.resume()
        # The scripts sent meanwhile ran late; their grants were taken back (tombstones).
        for _ in range(100):
            live = await client.zcount(c.keys.leases, "(0", "+inf")
            if live == 0:
                break
            await asyncio.sleep(0.1)
        assert await client.zcard(c.keys.leases) == 0
        assert (await c.acquire(req("after"), wait=False, deadline=None)).fencing_token > 0
    await client.aclose()


async def test_queued_waiters_learn_of_a_hung_redis_within_the_bound(
    own_redis: RedisServer, pool_name: str
) -> None:
    async with started(own_redis.url, pool_name, recheck_interval=1.0) as c:
        await c.acquire(req("held"), wait=False, deadline=None)
        waiter = asyncio.ensure_future(c.acquire(req("w"), wait=True, deadline=None))
        for _ in range(100):
            if c.statistics()["waits"]:
                break
            await asyncio.sleep(0.02)
        own_redis.pause()
        try:
            start = time.monotonic()
            with pytest.raises(CoordinatorUnavailableError):
                await asyncio.wait_for(waiter, 15)
            # recheck_interval (1 s) + the heartbeat bound (2 s), not + the 5 s socket timeout
            assert time.monotonic() - start < 4.5
        finally:
            own_redis.resume()


async def test_a_renewal_reply_after_the_release_leaves_no_held_entry(
    redis_url: str, pool_name: str
) -> None:
    async with started(redis_url, pool_name, capacity=3) as c:
        for i in range(20):
            await c.acquire(req(f"r{i}", seconds=5), wait=False, deadline=None)
            renewal = asyncio.ensure_future(c.renew({f"r{i}": 5}))
            await asyncio.sleep(0)  # the renewal is sent first, its reply comes later
            await c.release(f"r{i}")
            await renewal
        assert c.statistics()["held"] == 0


async def test_close_takes_the_process_out_of_the_waiters(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with started(redis_url, pool_name) as holder:
        await holder.acquire(req("held"), wait=False, deadline=None)
        async with started(redis_url, pool_name) as c:
            with pytest.raises(TimeoutError):
                await c.acquire(req("w"), wait=True, deadline=time.monotonic() + 0.3)
            assert await redis_client.zcard(holder.keys.waiters) == 1
        assert await redis_client.zcard(holder.keys.waiters) == 0
        assert await redis_client.hlen(holder.keys.tickets) == 0


async def test_bookkeeping_keys_expire_when_nobody_uses_the_pool(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """What a dead process leaves goes away by itself: every key but meta has a TTL."""
    async with started(redis_url, pool_name, recheck_interval=1.0) as c:
        await c.acquire(req("held", seconds=2.0), wait=False, deadline=None)
        waiter = asyncio.ensure_future(c.acquire(req("w"), wait=True, deadline=None))
        for _ in range(100):
            if await redis_client.zcard(c.keys.queue):
                break
            await asyncio.sleep(0.02)
        for key in (c.keys.leases, c.keys.queue, c.keys.tickets, c.keys.waiters):
            ttl = await redis_client.pttl(key)
            # leases: past its last expiry (2 s) by at most 60 s of slack; the others:
            # past the liveness window (3 s) or claim window (5 s), by at most 60 s.
            assert 0 < ttl <= 66_000, (key, ttl)
        assert await redis_client.pttl(c.keys.meta) == -1, "capacity persists"
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
