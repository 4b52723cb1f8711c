"""Direct hand-off: a release grants its slot to the oldest waiter in the same script.

Covers the waiter tickets in Redis, the claim of a handed-off grant, the local deadline
of a grant our process did not ask for (the anchor rule), fairness across coordinators,
dead waiters, lost grant messages, and the waiting counts of ``status()``/the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from _helpers import Worker, commandstats

import redis
from _redis_server import RedisServer
from leasepool import GrantRequest, LeaseUnavailableError, RedisCoordinator, ReleaseOutcome
from leasepool._cli import main as cli_main
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.deadlines import local_deadline
from leasepool.testing import ManualClock

pytestmark = pytest.mark.redis


def ignore(_: str) -> None:
    pass


@contextlib.asynccontextmanager
async def coordinators(
    url: str, pool: str, capacity: int, n: int = 2, clocks: Any = (), **kwargs: Any
) -> Any:
    """``n`` started coordinators, each with a client (and so an origin) of its own;
    ``clocks[i]`` (if given) is coordinator i's clock."""
    made = [
        RedisCoordinator.from_url(url, pool=pool, capacity=capacity, **kwargs) for _ in range(n)
    ]
    for i, c in enumerate(made):
        await c.start(clock=clocks[i] if i < len(clocks) else MONOTONIC_CLOCK, on_lost=ignore)
    try:
        yield made
    finally:
        for c in reversed(made):
            await c.close()


async def queued(c: RedisCoordinator, request: GrantRequest, **kw: Any) -> asyncio.Task[Any]:
    """A waiting acquire, returned once its ticket sits in Redis and ``c`` has read the
    reply that says so (its ``waits`` counter moved)."""
    waits = c.statistics()["waits"]
    task = asyncio.ensure_future(c.acquire(request, wait=True, deadline=kw.get("deadline")))
    for _ in range(500):
        if task.done() or (
            c.statistics()["waits"] > waits
            and await c.client.zscore(c.keys.queue, request.lease_id) is not None
        ):
            return task
        await asyncio.sleep(0.005)
    raise AssertionError("the waiter never queued")


def req(lease_id: str, seconds: float = 30.0, grace: float = 1.0) -> GrantRequest:
    return GrantRequest(lease_id, f"owner of {lease_id}", seconds, grace)


# -- the local deadline rule ---------------------------------------------------------


def test_local_deadline_is_never_later_than_the_server_instant() -> None:
    """Simulated clocks: whatever the delays and rate drift (within the bound), the local
    deadline computed from an anchor comes no later than the server instant itself."""
    rng = random.Random(7)
    for _ in range(20_000):
        drift = rng.choice([0.0, 0.001, 0.01, 0.1])
        rate = 1 + rng.uniform(-drift, drift)  # local seconds per server second
        t_sent = rng.uniform(0, 1000)
        delay = rng.expovariate(1 / 0.002)  # request in flight before the script ran
        s_anchor = rng.randrange(10**12, 2 * 10**12)
        target = s_anchor + rng.randrange(-5_000, 600_000)
        # The script ran `delay` after the send; server time then ran at `rate`.
        happens_at = t_sent + delay + (target - s_anchor) / 1000 * rate
        assert local_deadline(t_sent, s_anchor, target, drift) <= happens_at + 1e-9


async def test_a_handed_off_grant_ends_locally_before_redis_drops_it(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """The grant message reaches a stalled event loop a second late. The deadline comes
    from our anchor, not from when the message arrived, so at the local hard deadline
    Redis still counts the lease (a deadline measured from arrival would be ~1 s late)."""
    blocker = Worker("block", redis_url, pool_name, 1, lease=60, grace=0)
    async with coordinators(redis_url, pool_name, 1, n=1) as (c,):
        try:
            assert "held" in blocker.read()
            task = await queued(c, req("late", seconds=1.5, grace=0.5))
            blocker.send("release")
            released_at = blocker.read()["released_at"]
            time.sleep(1.0)  # noqa: ASYNC251 - the stall: the message waits in the socket
            grant = await asyncio.wait_for(task, 5)
            assert time.monotonic() - released_at >= 0.9
            # The slot was handed to us in the blocker's release script.
            hard_ms = int(await redis_client.zscore(c.keys.leases, "late"))
            await asyncio.sleep(max(0.0, grant.hard_deadline - time.monotonic()))
            now_ms, score = await redis_client.eval(
                "local t = redis.call('TIME') return "
                "{t[1] * 1000 + math.floor(t[2] / 1000), redis.call('ZSCORE', KEYS[1], ARGV[1])}",
                1,
                c.keys.leases,
                "late",
            )
            assert score is not None and int(score) == hard_ms
            assert int(now_ms) < hard_ms, "the holder stopped after Redis dropped the lease"
        finally:
            blocker.close()


# -- hand-off ---------------------------------------------------------------------------


async def test_a_release_hands_its_slot_over_in_the_same_script(own_redis: RedisServer) -> None:
    stats = redis.Redis.from_url(own_redis.url, decode_responses=True)
    async with coordinators(own_redis.url, "p", 1, n=1) as (c,):
        try:
            held = await c.acquire(req("held"), wait=False, deadline=None)
            waiters = [await queued(c, req(f"w{i}")) for i in range(3)]
            assert await c.release("warm-up") is ReleaseOutcome.UNKNOWN  # loads the script
            stats.config_resetstat()
            assert await c.release(held.lease_id) is ReleaseOutcome.RELEASED
            await asyncio.sleep(0.2)
            assert [w.done() for w in waiters] == [True, False, False]
            sent = {k: v for k, v in commandstats(stats).items() if k in ("evalsha", "eval")}
            assert sent == {"evalsha": 1}, "release and grant in one call, nothing else"
            record = await c.client.hgetall(c.keys.lease("w0"))
            assert record[b"owner"] == b"owner of w0", "our own waiter's grant is complete"
            for w in waiters[1:]:
                w.cancel()
        finally:
            stats.close()


async def test_a_grant_to_another_process_is_claimed_off_the_latency_path(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with coordinators(redis_url, pool_name, 1, n=2) as (a, b):
        held = await a.acquire(req("held"), wait=False, deadline=None)
        task = await queued(b, req("next", seconds=30, grace=2))
        assert await a.release(held.lease_id) is ReleaseOutcome.RELEASED
        grant = await asyncio.wait_for(task, 5)
        assert b.statistics()["handoffs"] == 1
        # Confirmed soon after: the lease hash is written, the expiry is the full hard one.
        for _ in range(200):
            record = await redis_client.hgetall(b.keys.lease("next"))
            if record:
                break
            await asyncio.sleep(0.01)
        assert record["owner"] == "owner of next"
        assert record["host"] == socket.gethostname() and record["pid"] == str(os.getpid())
        assert int(record["token"]) == grant.fencing_token > held.fencing_token
        assert int(await redis_client.zscore(b.keys.leases, "next")) == int(record["hard_ms"])
        assert int(record["hard_ms"]) - int(record["soft_ms"]) == 2000
        assert await redis_client.hgetall(b.keys.tickets) == {}
        assert await redis_client.zcard(b.keys.queue) == 0
        assert b.statistics()["claims"] == 1 and b.statistics()["unclaimed"] == 0
        assert await b.release("next") is ReleaseOutcome.RELEASED


async def test_an_unclaimed_grant_to_a_dead_waiter_is_reclaimed_within_the_claim_window(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """A waiter process dies (kill -9) while queued; its grant is never claimed."""
    waiter = Worker("queue", redis_url, pool_name, 1, tasks=1, recheck=5.0, claim=1.0)
    async with coordinators(
        redis_url, pool_name, 1, n=2, claim_window=1.0, recheck_interval=1.0
    ) as (a, b):
        try:
            held = await a.acquire(req("held"), wait=False, deadline=None)
            assert waiter.read(timeout=30)["queued"] == 1
            task = await queued(b, req("survivor"))
            waiter.kill9()
            released = time.monotonic()
            await a.release(held.lease_id)  # handed to the dead waiter: first in line
            grant = await asyncio.wait_for(task, 10)
            waited = time.monotonic() - released
            # One claim window, then the next in line (at b's next heartbeat at the latest).
            assert 0.9 <= waited <= 1.0 + 1.0 + 1.0, waited
            assert grant.lease_id == "survivor"
            live = await redis_client.zrangebyscore(a.keys.leases, "(0", "+inf")
            assert live == ["survivor"]
        finally:
            waiter.close()


async def test_a_dead_processs_tickets_expire_with_its_heartbeat(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """Tickets of a killed process stop counting after three heartbeat intervals, and are
    then skipped: the next live waiter gets the slot without any claim window passing."""
    waiter = Worker("queue", redis_url, pool_name, 1, tasks=5, recheck=1.0, claim=30.0)
    async with coordinators(redis_url, pool_name, 1, n=2, recheck_interval=1.0) as (a, b):
        try:
            held = await a.acquire(req("held"), wait=False, deadline=None)
            assert waiter.read(timeout=30)["queued"] == 5
            task = await queued(b, req("survivor"))
            assert (await a.status()).waiting == 6
            waiter.kill9()
            await asyncio.sleep(3.5)  # its process stops counting as alive after 3 s
            status = await a.status()
            assert status.waiting == 1
            assert [(w.pid, w.count) for w in status.waiters] == [(os.getpid(), 1)]
            await a.release(held.lease_id)
            grant = await asyncio.wait_for(task, 2)  # no 30 s claim window in between
            assert grant.lease_id == "survivor"
            assert await redis_client.zcard(a.keys.queue) == 0
        finally:
            waiter.close()


async def test_a_lost_grant_message_is_found_at_once_after_the_subscriber_reconnects(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with coordinators(redis_url, pool_name, 1, n=2, recheck_interval=30.0) as (a, b):
        held = await a.acquire(req("held"), wait=False, deadline=None)
        task = await queued(b, req("next"))
        # Cut b's subscriber off, then release while it is gone: the grant message is lost.
        names = [c for c in await redis_client.client_list() if c.get("sub") not in ("0", 0)]
        assert names, "a subscriber is connected"
        await redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await a.release(held.lease_id)
        grant = await asyncio.wait_for(task, 5)  # well before the 30 s heartbeat
        assert grant.lease_id == "next"
        for _ in range(200):
            if await redis_client.hget(b.keys.lease("next"), "token"):
                break
            await asyncio.sleep(0.01)
        assert int(await redis_client.hget(b.keys.lease("next"), "token")) == grant.fencing_token


async def test_a_late_copy_of_a_grant_already_found_does_not_release_it(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    """A grant found by a heartbeat, then its message delivered late: the holder keeps it.

    (A regression test: such a message once made the coordinator release the lease as an
    orphan while its holder used it, and the slot went to a second holder.)
    """
    async with coordinators(redis_url, pool_name, 1, n=2, recheck_interval=30.0) as (a, b):
        held = await a.acquire(req("held"), wait=False, deadline=None)
        task = await queued(b, req("next"))
        await redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await a.release(held.lease_id)  # b misses the message; its reconnect finds it
        grant = await asyncio.wait_for(task, 5)
        record = {}
        for _ in range(200):
            record = await redis_client.hgetall(b.keys.lease("next"))
            if record:
                break
            await asyncio.sleep(0.01)
        (origin,) = await redis_client.zrange(b.keys.waiters, 0, -1)  # b's, the one waiter
        late = (
            f"grant {origin} next {grant.fencing_token} {record['soft_ms']}"
            f" {record['hard_ms']} {int(record['acquired_ms']) + 5000}"
        )
        assert await redis_client.publish(b.keys.events, late) >= 1
        await asyncio.sleep(0.2)
        assert b.statistics()["orphans_released"] == 0
        assert await redis_client.zscore(b.keys.leases, "next") is not None
        assert await b.release("next") is ReleaseOutcome.RELEASED


async def test_a_cancelled_or_timed_out_waiter_removes_its_ticket(
    redis_url: str, pool_name: str, redis_client: Any
) -> None:
    async with coordinators(redis_url, pool_name, 1, n=1) as (c,):
        await c.acquire(req("held"), wait=False, deadline=None)
        cancelled = await queued(c, req("cancelled"))
        timed = await queued(c, req("timed"), deadline=time.monotonic() + 0.3)
        assert await redis_client.zcard(c.keys.queue) == 2
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        with pytest.raises(TimeoutError):
            await timed
        for _ in range(200):
            if await redis_client.zcard(c.keys.queue) == 0:
                break
            await asyncio.sleep(0.01)
        assert await redis_client.zcard(c.keys.queue) == 0
        assert await redis_client.hlen(c.keys.tickets) == 0
        assert c.statistics()["waiting"] == 0


# -- order -----------------------------------------------------------------------------


@pytest.mark.parametrize("fair", [False, True])
async def test_waiters_of_several_processes_are_served_in_enqueue_order(
    redis_url: str, pool_name: str, fair: bool
) -> None:
    async with coordinators(redis_url, pool_name, 1, n=3, fair=fair) as cs:
        held = await cs[0].acquire(req("held"), wait=False, deadline=None)
        order = []
        tasks = {}
        for i in range(9):
            c = cs[i % 3]
            tasks[f"w{i}"] = (c, await queued(c, req(f"w{i}")))
        current = (cs[0], held.lease_id)
        for _ in range(9):
            await current[0].release(current[1])
            done, _ = await asyncio.wait(
                [t for _, t in tasks.values() if not t.done()],
                timeout=5,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert len(done) == 1
            grant = done.pop().result()
            order.append(grant.lease_id)
            current = (tasks[grant.lease_id][0], grant.lease_id)
        assert order == [f"w{i}" for i in range(9)]
        await current[0].release(current[1])


async def test_fair_wait_false_never_jumps_the_queue_and_costs_one_round_trip(
    own_redis: RedisServer,
) -> None:
    """A slot frees by expiry while two tickets wait. A fair wait=False newcomer hands the
    slot to the first ticket (the waiters' own timers are kept away) and is refused, in
    one round trip, because a ticket still waits."""
    stats = redis.Redis.from_url(own_redis.url, decode_responses=True)
    # b's timers run on a clock that stands still: they are kept away.
    async with coordinators(
        own_redis.url, "p", 2, n=2, clocks=[MONOTONIC_CLOCK, ManualClock()], fair=True
    ) as (a, b):
        try:
            await a.acquire(req("h1"), wait=False, deadline=None)
            await a.acquire(req("h2", seconds=0.3, grace=0), wait=False, deadline=None)
            with pytest.raises(LeaseUnavailableError):  # (loads the script)
                await a.acquire(req("warm"), wait=False, deadline=None)
            first = await queued(b, req("first"))
            second = await queued(b, req("second"))
            await asyncio.sleep(0.5)  # h2 has expired: one slot is free, two tickets wait
            stats.config_resetstat()
            with pytest.raises(LeaseUnavailableError, match="waiting"):
                await a.acquire(req("newcomer"), wait=False, deadline=None)
            sent = {k: v for k, v in commandstats(stats).items() if k in ("evalsha", "eval")}
            assert sent == {"evalsha": 1}
            assert (await asyncio.wait_for(first, 5)).lease_id == "first"
            assert not second.done()
            second.cancel()
        finally:
            stats.close()


async def test_without_fair_a_newcomer_may_take_a_slot_nobody_handed_off(
    redis_url: str, pool_name: str
) -> None:
    """An expired (not released) slot: a waiter in another process still sleeps until
    its expiry timer; a non-fair newcomer takes the slot at once, a fair one queues."""
    # b's timers run on a clock that stands still, so the newcomer is first to notice.
    clocks = [MONOTONIC_CLOCK, ManualClock()]
    async with coordinators(redis_url, pool_name, 1, n=2, clocks=clocks) as (a, b):
        await a.acquire(req("expiring", seconds=0.3, grace=0), wait=False, deadline=None)
        task = await queued(b, req("waiter"))
        await asyncio.sleep(0.5)
        newcomer = await a.acquire(req("newcomer"), wait=False, deadline=None)
        assert newcomer.lease_id == "newcomer" and not task.done()
        await a.release("newcomer")  # a release serves the queue: no starving
        assert (await asyncio.wait_for(task, 5)).lease_id == "waiter"


# -- waiting counts ------------------------------------------------------------------------


async def test_status_and_the_cli_show_who_waits(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    waiter = Worker("queue", redis_url, pool_name, 1, tasks=3)
    async with coordinators(redis_url, pool_name, 1, n=1) as (c,):
        try:
            await c.acquire(req("held"), wait=False, deadline=None)
            other = waiter.read(timeout=30)
            mine = [await queued(c, req(f"mine{i}")) for i in range(2)]
            status = await c.status()
            assert status.waiting == 5
            host = socket.gethostname()
            assert {(w.host, w.pid, w.count) for w in status.waiters} == {
                (host, other["pid"], 3),
                (host, os.getpid(), 2),
            }
            assert c.statistics()["waiting"] == 2
            assert c.statistics()["process"] == f"{host}:{os.getpid()}"
            code = await asyncio.to_thread(cli_main, ["status", pool_name, "--url", redis_url])
            out = capsys.readouterr().out
            assert code == 0
            assert "5 waiting" in out
            assert f"{host}:{other['pid']} 3" in out and f"{host}:{os.getpid()} 2" in out
            code = await asyncio.to_thread(
                cli_main, ["status", pool_name, "--url", redis_url, "--json"]
            )
            (row,) = json.loads(capsys.readouterr().out)
            assert row["waiting"] == 5
            assert {(w["pid"], w["count"]) for w in row["waiters"]} == {
                (other["pid"], 3),
                (os.getpid(), 2),
            }
            for task in mine:
                task.cancel()
        finally:
            waiter.close()


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fair": 1}, TypeError, "fair.*1"),
        ({"fair": "yes"}, TypeError, "fair.*'yes'"),
        ({"claim_window": 0}, ValueError, "claim_window.*0"),
        ({"claim_window": 61}, ValueError, "claim_window.*61"),
        ({"claim_window": True}, TypeError, "claim_window.*True"),
        ({"recheck_interval": 0.5}, ValueError, "recheck_interval.*0.5"),
        ({"recheck_interval": 120}, ValueError, "recheck_interval.*120"),
        ({"recheck_interval": float("nan")}, ValueError, "recheck_interval.*nan"),
    ],
)
def test_new_options_are_validated(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        RedisCoordinator.from_url("redis://127.0.0.1:1/0", pool="p", capacity=1, **kwargs)
    with pytest.raises(error, match=match):
        RedisCoordinator(aioredis.Redis(), pool="p", capacity=1, **kwargs)
