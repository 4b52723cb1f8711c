"""Sentinel failover to a replica that missed the last grants: real servers, real time.

A master, a replica and one ``redis-sentinel`` (tests/redis/_servers_extra.py).
Coordinators reach the master through redis-py's asyncio Sentinel client. One
grant is replicated; then the replica is frozen and cut off, so the next grants
reach the master only; the master is killed, and the sentinel promotes the
replica. The docs (docs/distributed.md, "Redis restart with data loss" and
"Sentinel failover") promise, and this test checks:

- fencing tokens after the failover are strictly greater than every token
  before it, although the new master's ``fence`` is older than the last grant;
- the new master counts only the leases it knows, so the cap can be exceeded
  until the lost leases are renewed (and found gone) or reach their local
  deadlines; a lease it knows is renewed as usual;
- a holder that never renews keeps its lease until its local deadline, and not
  a moment past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _servers_extra import SentinelGroup

import redis
from leasepool import (
    CoordinatorUnavailableError,
    ExecutorLease,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseLostError,
    LeaseUnavailableError,
    RedisCoordinator,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SERVICE = "leasepool-test"
CAPACITY = 3
UNRENEWED_SECONDS = 10.0
"""Long enough to outlive a slow failover, short enough to keep the test under 20 s."""


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    found = SentinelGroup(SERVICE)
    try:
        yield found.start()
    finally:
        found.stop()


@pytest.fixture
async def hosts(group: SentinelGroup, pool_name: str) -> AsyncIterator[list[Any]]:
    """Three managers, each with its own Sentinel client (three hosts), in a pool of 3.

    Host B renews automatically (every 3 s); hosts A and C never do."""
    from redis.asyncio.sentinel import Sentinel

    clients: list[Any] = []
    managers = []
    try:
        for auto_renew in (False, True, False):
            sentinel = Sentinel(
                [("127.0.0.1", group.sentinel_port)],
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
            )
            client = sentinel.master_for(SERVICE, socket_timeout=2.0, socket_connect_timeout=2.0)
            clients += [client, *sentinel.sentinels]  # the sentinel clients need closing too
            coordinator = RedisCoordinator(client, pool=pool_name, capacity=CAPACITY)
            manager = LeasedExecutorManager(
                max_pools=3,
                workers_per_pool=1,
                coordinator=coordinator,
                lease_grace_seconds=0.0,
                auto_renew=auto_renew,
            )
            await manager.start()
            managers.append(manager)
        yield managers
    finally:
        for manager in managers:
            await manager.stop()
        for client in clients:
            await client.aclose()


def _cut_off_replica(group: SentinelGroup) -> None:
    """Freeze the replica and drop its link: it cannot reconnect (and fetch what it
    missed) before the master dies, because it does not run until then."""
    group.replica.pause()
    master = redis.Redis(port=group.master.port, socket_timeout=5)
    try:
        assert master.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
    finally:
        master.close()


def _replicate(group: SentinelGroup) -> None:
    master = redis.Redis(port=group.master.port, socket_timeout=5)
    try:
        assert master.wait(1, 5000) == 1, "the replica did not acknowledge the first grant"
    finally:
        master.close()


def _fail_over(group: SentinelGroup) -> float:
    """Kill the master, let the replica run again, and wait for its promotion."""
    started = time.monotonic()
    group.master.kill()
    group.replica.resume()
    deadline = started + 15.0
    while group.master_port() != group.replica.port:
        assert time.monotonic() < deadline, f"no failover in 15 s: {group.sentinel_log()}"
        time.sleep(0.05)
    return time.monotonic() - started


async def _acquire_after_failover(manager: LeasedExecutorManager) -> ExecutorLease:
    """The first acquire on the new master: clients may still hold a dead connection."""
    deadline = time.monotonic() + 15.0
    while True:
        try:
            return await manager.acquire(lease_seconds=30, wait=False)
        except CoordinatorUnavailableError:
            assert time.monotonic() < deadline, "the new master never answered"
            await asyncio.sleep(0.1)


def _stored_fence(port: int, pool: str) -> int:
    """The pool's ``fence`` (last fencing token) on the server at ``port``."""
    client = redis.Redis(port=port, socket_timeout=5, decode_responses=True)
    try:
        return int(client.hget(f"leasepool:{{{pool}}}:meta", "fence") or 0)
    finally:
        client.close()


def _work() -> str:
    return "ran"


async def test_failover_to_a_replica_that_missed_grants(
    group: SentinelGroup, hosts: list[LeasedExecutorManager], pool_name: str
) -> None:
    host_a, host_b, host_c = hosts
    kept = await host_a.acquire(lease_seconds=30)
    _replicate(group)
    _cut_off_replica(group)
    renewing = await host_b.acquire(lease_seconds=9)
    unrenewed = await host_c.acquire(lease_seconds=UNRENEWED_SECONDS)
    before = [kept.fencing_token, renewing.fencing_token, unrenewed.fencing_token]
    assert before == sorted(set(before))
    with pytest.raises(LeaseUnavailableError):  # the cap holds before the failover
        await host_a.acquire(wait=False)

    took = await asyncio.to_thread(_fail_over, group)  # the holders' loop keeps running

    # The new master really missed the last two grants: its fence is the first token.
    fence = _stored_fence(group.replica.port, pool_name)
    assert fence == kept.fencing_token < max(before), (fence, before, took)

    # It counts only `kept`: two new grants fit, a third does not. Five leases are now
    # active locally at capacity 3: the documented excess after data loss.
    first = await _acquire_after_failover(host_a)
    second = await host_a.acquire(lease_seconds=30, wait=False)
    with pytest.raises(LeaseUnavailableError):
        await host_a.acquire(lease_seconds=30, wait=False)
    assert min(first.fencing_token, second.fencing_token) > max(before)
    assert first.fencing_token < second.fencing_token
    assert unrenewed.active, f"failover took {took:.1f} s, longer than the lease"
    assert await unrenewed.run(_work) == "ran"

    # A lease the new master knows renews as usual.
    await kept.renew()
    assert kept.active

    # The auto-renewed lost lease learns at its next renewal (every 3 s).
    deadline = time.monotonic() + 12.0
    while renewing.state == "active":
        assert time.monotonic() < deadline, "the lost lease was never found gone"
        await asyncio.sleep(0.05)
    assert renewing.state == "lost"
    with pytest.raises(LeaseLostError):
        await renewing.run(_work)

    # The holder that never renews keeps going until its local deadline, then stops.
    assert unrenewed.hard_expires_at <= unrenewed.leased_at + UNRENEWED_SECONDS
    while unrenewed.state == "active":
        late = time.monotonic() - unrenewed.hard_expires_at
        assert late < 5.0, "the local deadline never fired"
        await asyncio.sleep(0.05)
    assert time.monotonic() >= unrenewed.hard_expires_at
    assert unrenewed.state == "expired"
    with pytest.raises(LeaseExpiredError):
        await unrenewed.run(_work)
