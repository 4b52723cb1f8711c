"""The coordinator and the admin run as an ACL user limited to the documented rules."""

from __future__ import annotations

import asyncio

import pytest

import redis
from _redis_server import RedisServer
from leasepool import CoordinatorUnavailableError, GrantRequest, RedisCoordinator, ReleaseOutcome
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.admin import RedisAdmin

pytestmark = pytest.mark.redis

# The minimal rules for the default key prefix "leasepool" (keep in sync with the docs).
MINIMAL_ACL = (
    "~leasepool:* &leasepool:* -@all "
    "+evalsha +script|load +subscribe +ping +time +type "
    "+zrangebyscore +zrange +zscore +zcount +zcard +zadd +zrem +zremrangebyscore "
    "+hget +hmget +hset +hsetnx +hdel +hincrby +hgetall +del +exists +pexpire +pexpireat +pttl "
    "+publish "
    "+scan"
)


async def test_minimal_acl_user_can_do_everything(own_redis: RedisServer) -> None:
    admin_client = redis.Redis(port=own_redis.port)
    admin_client.execute_command(
        "ACL", "SETUSER", "lp", "on", ">lp-secret-pw", "resetkeys", "resetchannels",
        *MINIMAL_ACL.split(),
    )  # fmt: skip
    admin_client.close()
    url = f"redis://lp:lp-secret-pw@127.0.0.1:{own_redis.port}/0"
    a = RedisCoordinator.from_url(url, pool="acl", capacity=1)
    b = RedisCoordinator.from_url(url, pool="acl", capacity=1, recheck_interval=1.0)
    lost: list[str] = []
    await a.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    await b.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    try:
        held = await a.acquire(GrantRequest("one", "o", 30, 1), wait=False, deadline=None)
        waiter = asyncio.ensure_future(
            b.acquire(GrantRequest("two", "o", 30, 1), wait=True, deadline=None)
        )
        await asyncio.sleep(0.2)
        assert await a.release(held.lease_id) is ReleaseOutcome.RELEASED
        await asyncio.wait_for(waiter, 5)
        assert (await b.renew({"two": 30}))["two"] is not None
        assert [r.lease_id for r in (await a.status()).leases] == ["two"]
        admin = RedisAdmin(a.client)
        assert await admin.pools() == ["acl"]
        await admin.set_capacity("acl", 2)
        assert await admin.revoke("acl", "two") is True
        for _ in range(200):
            if lost:
                break
            await asyncio.sleep(0.01)
        assert lost == ["two"]
        outside = RedisCoordinator.from_url(url, pool="x", capacity=1, key_prefix="other")
        with pytest.raises(CoordinatorUnavailableError, match=r"NOPERM|permission"):
            await outside.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    finally:
        await b.close()
        await a.close()
