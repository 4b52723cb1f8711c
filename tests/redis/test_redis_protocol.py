"""Every script through the protocol, against a real server: ARGV in, typed reply out.

Each test sends what ``leasepool._redis.protocol`` encodes and reads what it decodes,
so the Lua side and the Python side are checked against each other: the status
values each script returns, ``now`` first in every reply (the server's clock),
own grants, and grants published to other processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from leasepool._redis import protocol as p
from leasepool._redis.keys import PoolKeys
from leasepool._redis.scripts import Scripts

pytestmark = pytest.mark.redis

A, B = "origin-a", "origin-b"


class Pool:
    """One pool's keys and scripts, called as process ``origin`` would call them."""

    def __init__(self, client: Any, name: str, capacity: int = 1) -> None:
        self.client = client
        self.keys = PoolKeys.of(name)
        self.scripts = Scripts.register(client)
        self.capacity = capacity

    def constants(self, origin: str) -> str:
        return p.encode_constants(
            capacity=self.capacity, claim_ms=5000, origin=origin, pid=7, host="h"
        )

    def lease_keys(self, ids: list[str]) -> list[str]:
        return [*self.keys.fixed, *(self.keys.lease(i) for i in ids)]

    async def server_ms(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def init(self, origin: str = A) -> p.InitReply:
        reply = await self.scripts.init(
            keys=list(self.keys.fixed), args=p.encode_init(self.constants(origin))
        )
        return p.decode_init(reply)

    async def acquire(
        self, ids: list[str], *, wait: bool, origin: str = A, lease_ms: int = 30_000
    ) -> p.AcquireReply:
        requests = [p.encode_acquire_request(wait, lease_ms, 0, i, "an owner") for i in ids]
        reply = await self.scripts.acquire(
            keys=self.lease_keys(ids), args=p.encode_acquire(self.constants(origin), requests)
        )
        return p.decode_acquire(reply, len(ids))

    async def release(
        self, ids: list[str], *, origin: str = A, mine: list[str] | None = None, tomb: int = 0
    ) -> p.ReleaseReply:
        mine = mine or []
        reply = await self.scripts.release(
            keys=self.lease_keys([*ids, *mine]),
            args=p.encode_release(self.constants(origin), [(i, tomb) for i in ids], mine),
        )
        return p.decode_release(reply, len(ids))

    async def heartbeat(self, flags: str, ids: list[str], origin: str = A) -> p.HeartbeatReply:
        reply = await self.scripts.heartbeat(
            keys=self.lease_keys(ids), args=p.encode_heartbeat(self.constants(origin), flags, ids)
        )
        return p.decode_heartbeat(reply, len(ids))

    async def renew(self, ids: list[str], lease_ms: int = 60_000) -> p.RenewReply:
        reply = await self.scripts.renew(
            keys=self.lease_keys(ids),
            args=p.encode_renew(self.constants(A), [(i, lease_ms) for i in ids]),
        )
        return p.decode_renew(reply, len(ids))


@pytest.fixture
async def pool(redis_client: Any, pool_name: str) -> Pool:
    pool = Pool(redis_client, pool_name)
    await pool.init()
    return pool


async def test_init_creates_once_and_reports_server_time(redis_client: Any, pool_name: str) -> None:
    pool = Pool(redis_client, pool_name, capacity=3)
    before = await pool.server_ms()
    first = await pool.init()
    assert first.capacity == 3 and first.created is True
    assert before <= first.now_ms <= await pool.server_ms()
    pool.capacity = 5
    second = await pool.init()
    assert second.capacity == 3 and second.created is False, "a stored capacity wins"


async def test_acquire_statuses(pool: Pool, redis_client: Any) -> None:
    before = await pool.server_ms()
    granted = await pool.acquire(["g"], wait=False)
    assert before <= granted.now_ms <= await pool.server_ms(), "now first, server time"
    (row,) = granted.rows
    assert row.status is p.AcquireStatus.GRANTED
    assert row.value == int(await redis_client.hget(pool.keys.lease("g"), "token"))
    assert row.soft_ms == row.hard_ms == granted.now_ms + 30_000
    assert granted.capacity == 1 and granted.own == ()

    retry = await pool.acquire(["g"], wait=False)
    assert retry.rows[0] == row, "a retry of a live lease gets the same grant"

    refused = await pool.acquire(["r"], wait=False)
    assert refused.rows[0].status is p.AcquireStatus.REFUSED
    assert refused.rows[0].value == 1, "value: live leases"

    queued = await pool.acquire(["q1", "q2"], wait=True)
    assert [r.status for r in queued.rows] == [p.AcquireStatus.QUEUED] * 2
    assert queued.rows[1].value == queued.rows[0].value + 1, "value: the enqueue sequence"
    assert queued.earliest_ms == row.hard_ms
    assert queued.revived is True, "the first enqueue of a process finds it not yet alive"
    again = await pool.acquire(["q1"], wait=True)
    assert again.rows[0].status is p.AcquireStatus.QUEUED and again.revived is False

    released = await pool.release(["never-sent"], tomb=60_000)
    assert released.statuses == (p.ReleaseStatus.UNKNOWN,)
    cancelled = await pool.acquire(["never-sent"], wait=True)
    assert cancelled.rows[0].status is p.AcquireStatus.CANCELLED


async def test_release_statuses_and_own_grants(pool: Pool) -> None:
    await pool.acquire(["held"], wait=False)
    await pool.acquire(["mine-1"], wait=True)
    await pool.acquire(["mine-2"], wait=True)
    released = await pool.release(["held"], mine=["mine-1"])
    assert released.statuses == (p.ReleaseStatus.RELEASED,)
    (grant,) = released.own
    assert grant.lease_id == "mine-1"
    assert grant.claim_ms == grant.hard_ms == released.now_ms + 30_000, "claimed at once"

    dequeued = await pool.release(["mine-2", "nothing"])
    assert dequeued.statuses == (p.ReleaseStatus.DEQUEUED, p.ReleaseStatus.UNKNOWN)
    assert dequeued.own == ()

    handed = await pool.release(["mine-1"])
    assert handed.statuses == (p.ReleaseStatus.RELEASED,)

    await pool.acquire(["short"], wait=False, lease_ms=1)
    await asyncio.sleep(0.05)
    expired = await pool.release(["short"])
    assert expired.statuses == (p.ReleaseStatus.EXPIRED,)


async def test_a_grant_to_another_process_is_published_then_claimed(
    pool: Pool, redis_client: Any
) -> None:
    await pool.acquire(["held"], wait=False, origin=A)
    await pool.acquire(["theirs"], wait=True, origin=B)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(pool.keys.events)
    try:
        released = await pool.release(["held"], origin=A)
        assert released.statuses == (p.ReleaseStatus.RELEASED,)
        assert released.own == (), "B's ticket: published, not in A's reply"
        message = None
        for _ in range(100):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
        assert message is not None
        kind, _, rest = message["data"].partition(" ")
        assert kind == "grant"
        (event,) = p.decode_grant_event(rest.split(" "), B)
        assert p.decode_grant_event(rest.split(" "), A) == []
        assert event.lease_id == "theirs"
        assert event.claim_ms == released.now_ms + 5000 < event.hard_ms, "a claim deadline"
    finally:
        await pubsub.aclose()

    beat = await pool.heartbeat("w", ["theirs", "gone"], origin=B)
    assert [r.status for r in beat.rows] == [p.TicketStatus.GRANTED, p.TicketStatus.GONE]
    claimed = beat.rows[0]
    assert (claimed.token, claimed.soft_ms, claimed.hard_ms) == (
        event.token,
        event.soft_ms,
        event.hard_ms,
    )
    assert int(await redis_client.zscore(pool.keys.leases, "theirs")) == event.hard_ms


async def test_heartbeat_reports_waiting_and_a_full_check(pool: Pool) -> None:
    await pool.acquire(["held"], wait=False)
    await pool.acquire(["w"], wait=True, origin=B)
    plain = await pool.heartbeat("w", ["w"], origin=B)
    assert plain.rows == (p.TicketRow(p.TicketStatus.WAITING, 0, 0, 0),)
    assert plain.alive is True
    assert (plain.queued, plain.capacity) == (-1, -1), "only a full check counts"
    full = await pool.heartbeat("wf", ["w"], origin=B)
    assert (full.queued, full.capacity) == (1, 1)
    assert full.earliest_ms > full.now_ms
    fresh = await pool.heartbeat("w", [], origin="origin-c")
    assert fresh.alive is False, "a process not counted alive before"


async def test_renew_statuses(pool: Pool) -> None:
    granted = await pool.acquire(["x"], wait=False)
    renewed = await pool.renew(["x", "unknown"])
    x, unknown = renewed.rows
    assert x.status is p.RenewStatus.RENEWED and x.token == granted.rows[0].value
    assert x.soft_ms == renewed.now_ms + 60_000 == x.hard_ms
    assert unknown == p.RenewRow(p.RenewStatus.GONE, 0, 0, 0)


async def test_operator_scripts(pool: Pool) -> None:
    await pool.acquire(["x"], wait=False)
    await pool.acquire(["w"], wait=True)
    operator = p.encode_constants()
    reply = await pool.scripts.set_capacity(
        keys=list(pool.keys.fixed), args=p.encode_set_capacity(operator, 2)
    )
    resized = p.decode_set_capacity(reply)
    assert (resized.old, resized.live) == (1, 1)
    assert resized.own == (), "the operator has no tickets: the grant to w is published"

    reply = await pool.scripts.revoke(
        keys=[*pool.keys.fixed, pool.keys.lease("x")], args=p.encode_revoke(operator, "x")
    )
    assert p.decode_revoke(reply).status is p.RevokeStatus.WAS_LIVE
    reply = await pool.scripts.revoke(
        keys=[*pool.keys.fixed, pool.keys.lease("x")], args=p.encode_revoke(operator, "x")
    )
    assert p.decode_revoke(reply).status is p.RevokeStatus.NOT_LIVE

    reply = await pool.scripts.reclaim(keys=list(pool.keys.fixed), args=p.encode_reclaim(operator))
    reclaimed = p.decode_reclaim(reply)
    assert (reclaimed.reclaimed, reclaimed.live, reclaimed.capacity) == (0, 1, 2)

    await pool.client.script_load(pool.scripts.status.script)  # (EVALSHA_RO does not load)
    raw = await pool.client.evalsha_ro(
        pool.scripts.status.sha, 5, *pool.keys.fixed, *p.encode_status(operator, 10)
    )
    status = p.decode_status(raw)
    assert status.capacity == "2" and status.live == 1
    assert status.present == 4, "every key but the queue, which went with its last ticket"
    assert [lease_id for lease_id, _ in status.leases] == ["w"]
    assert abs(status.now_ms - await pool.server_ms()) < 5000


async def test_every_reply_starts_with_server_time(pool: Pool) -> None:
    """``now`` is the first field of every script's reply, and it is the server's."""
    operator = p.encode_constants()
    calls = {
        "init": pool.scripts.init(keys=list(pool.keys.fixed), args=p.encode_init(operator)),
        "acquire": pool.scripts.acquire(
            keys=pool.lease_keys(["n"]),
            args=p.encode_acquire(operator, [p.encode_acquire_request(False, 10, 0, "n", "")]),
        ),
        "release": pool.scripts.release(
            keys=pool.lease_keys(["n"]), args=p.encode_release(operator, [("n", 0)])
        ),
        "heartbeat": pool.scripts.heartbeat(
            keys=list(pool.keys.fixed), args=p.encode_heartbeat(operator, "")
        ),
        "renew": pool.scripts.renew(keys=list(pool.keys.fixed), args=p.encode_renew(operator, [])),
        "reclaim": pool.scripts.reclaim(
            keys=list(pool.keys.fixed), args=p.encode_reclaim(operator)
        ),
        "revoke": pool.scripts.revoke(
            keys=pool.lease_keys(["n"]), args=p.encode_revoke(operator, "n")
        ),
        "set_capacity": pool.scripts.set_capacity(
            keys=list(pool.keys.fixed), args=p.encode_set_capacity(operator, 1)
        ),
    }
    for name, call in calls.items():
        before = await pool.server_ms()
        reply = await call
        assert isinstance(reply, str), (name, reply)
        assert before <= int(reply.split(" ")[0]) <= await pool.server_ms(), name


async def test_the_leases_zset_outlives_its_longest_live_lease(
    redis_client: Any, pool_name: str
) -> None:
    """A short grant after a long one never shortens the zset's TTL (lua/_shared.lua,
    set_expiry); with nothing live, a grant sets it afresh."""
    pool = Pool(redis_client, pool_name, capacity=2)
    await pool.init()
    long = await pool.acquire(["long"], wait=False, lease_ms=300_000)
    assert await redis_client.pttl(pool.keys.leases) > 300_000
    await pool.acquire(["short"], wait=False, lease_ms=1000)
    ttl = await redis_client.pttl(pool.keys.leases)
    assert ttl > long.rows[0].hard_ms - await pool.server_ms(), "covers the long lease"
    await pool.release(["long", "short"])
    assert await redis_client.exists(pool.keys.leases) == 0
    await pool.acquire(["again"], wait=False, lease_ms=1000)
    assert 0 < await redis_client.pttl(pool.keys.leases) <= 1000 + 60_000


async def test_an_empty_batch_still_decodes(pool: Pool) -> None:
    """No request (or id): the reply is the head and an own-grant count, nothing else."""
    acquired = await pool.acquire([], wait=False)
    assert (acquired.rows, acquired.own) == ((), ())
    assert (await pool.renew([])).rows == ()
    assert (await pool.release([])).statuses == ()
    beat = await pool.heartbeat("", [])
    assert (beat.rows, beat.own) == ((), ())
