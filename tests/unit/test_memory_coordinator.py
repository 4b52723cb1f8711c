"""InMemoryCoordinator: one capacity shared by several managers in a process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from _unit_helpers import settle

from leasepool import (
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseLostError,
    LeaseUnavailableError,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


async def pair(
    make_manager: Factory, capacity: int, **kwargs: object
) -> tuple[InMemoryCoordinator, LeasedExecutorManager, LeasedExecutorManager]:
    coordinator = InMemoryCoordinator(capacity=capacity, pool="shared")
    kwargs.setdefault("max_pools", 3)
    a = make_manager(coordinator=coordinator, **kwargs)
    b = make_manager(coordinator=coordinator, **kwargs)
    await a.start()
    await b.start()
    return coordinator, a, b


def held(coordinator: InMemoryCoordinator) -> int:
    count: int = coordinator.statistics()["held"]  # type: ignore[assignment]
    return count


async def test_default_coordinator_is_unbounded_memory(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    assert isinstance(manager.coordinator, InMemoryCoordinator)
    assert manager.coordinator.capacity is None
    await manager.start()
    leases = [await manager.acquire(wait=False) for _ in range(2)]
    with pytest.raises(LeaseUnavailableError):  # bounded by max_pools only
        await manager.acquire(wait=False)
    for lease in leases:
        await lease.release()


async def test_shared_capacity_caps_managers_together(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=2)
    first = await a.acquire(owner="a1")
    second = await b.acquire(owner="b1")
    assert held(coordinator) == 2
    for manager in (a, b):
        leased = manager.leased_count
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(wait=False)
        # The local executor taken for the attempt went back, unused and ready.
        assert manager.leased_count == leased
        assert manager.available_count >= 1
    status = await coordinator.status()
    assert status.capacity == 2
    assert sorted(record.owner for record in status.leases) == ["a1", "b1"]
    await first.release()
    third = await b.acquire(wait=False)
    assert held(coordinator) == 2
    await second.release()
    await third.release()
    assert held(coordinator) == 0


async def test_global_waiter_is_served_when_the_other_manager_releases(
    make_manager: Factory,
) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1)
    holder = await a.acquire()
    waiter = asyncio.create_task(b.acquire(owner="b-waiter"))
    await settle()
    assert not waiter.done()
    assert (await coordinator.status()).waiting == 1
    # Direct handoff: the freed slot is the waiter's; a newcomer cannot take it.
    await holder.release()
    with pytest.raises(LeaseUnavailableError):
        await a.acquire(wait=False)
    lease = await waiter
    assert lease.owner == "b-waiter"
    await lease.release()


async def test_global_waiters_are_fifo_across_managers(make_manager: Factory) -> None:
    _, a, b = await pair(make_manager, capacity=1, max_pools=3)
    holder = await a.acquire()
    order = ["b0", "a1", "b2"]
    tasks = []
    for owner in order:
        manager = a if owner.startswith("a") else b
        tasks.append(asyncio.create_task(manager.acquire(owner=owner)))
        await settle()
    served = []
    current = holder
    for task in tasks:
        await current.release()
        current = await task
        served.append(current.owner)
    assert served == order
    await current.release()


async def test_wait_false_newcomer_cannot_take_a_slot_freed_for_a_waiter(
    make_manager: Factory,
) -> None:
    coordinator, a, b = await pair(make_manager, capacity=2)
    x = await a.acquire()
    y = await a.acquire()
    waiter = asyncio.create_task(b.acquire(owner="queued"))
    await settle()
    await x.release()  # the freed slot is handed to the queued caller at once
    assert held(coordinator) == 2
    for manager in (a, b):
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(wait=False)
    lease = await waiter
    assert lease.owner == "queued"
    await lease.release()
    await y.release()


async def test_set_capacity_grows_and_serves_waiters(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1)
    holder = await a.acquire()
    waiter = asyncio.create_task(b.acquire())
    await settle()
    await coordinator.set_capacity(2)
    lease = await asyncio.wait_for(waiter, 5)
    assert coordinator.capacity == 2
    assert held(coordinator) == 2
    await lease.release()
    await holder.release()


async def test_set_capacity_shrink_never_revokes(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=3)
    leases = [await a.acquire(), await b.acquire(), await b.acquire()]
    await coordinator.set_capacity(1)
    assert all(lease.active for lease in leases)
    assert await leases[2].run(abs, -1) == 1
    await leases[0].release()
    await leases[1].release()
    with pytest.raises(LeaseUnavailableError):  # still 1 held == capacity
        await a.acquire(wait=False)
    await leases[2].release()
    lease = await a.acquire(wait=False)
    await lease.release()


async def test_revoke_makes_the_holders_next_submit_raise_lost(
    make_manager: Factory,
) -> None:
    coordinator, a, b = await pair(make_manager, capacity=2)
    victim = await a.acquire(owner="victim")
    bystander = await b.acquire(owner="bystander")
    assert await coordinator.revoke(victim.lease_id) is True
    assert await coordinator.revoke(victim.lease_id) is False
    assert await coordinator.revoke("never-granted") is False

    assert victim.state == "lost"
    with pytest.raises(LeaseLostError):
        victim.executor.submit(abs, 1)
    with pytest.raises(LeaseLostError):
        await victim.run(abs, 1)
    with pytest.raises(LeaseExpiredError):  # LeaseLostError is a LeaseExpiredError
        await victim.renew(10)
    assert a.stats()["counters"]["lost"] == 1
    assert a.available_count >= 1  # the executor came back
    # The other manager's lease is untouched.
    assert bystander.active
    assert await bystander.run(abs, -2) == 2
    assert b.stats()["counters"]["lost"] == 0
    assert held(coordinator) == 1
    await victim.release()  # harmless
    await bystander.release()


async def test_global_timeout_returns_the_local_executor(
    make_manager: Factory, clock: ManualClock
) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1, max_pools=1)
    holder = await a.acquire()
    assert b.available_count == 1
    waiter = asyncio.create_task(b.acquire(timeout=5))
    await settle()
    assert b.available_count == 0  # the local executor is taken first
    clock.advance(5)
    with pytest.raises(TimeoutError):
        await waiter
    assert b.available_count == 1
    assert b.stats()["counters"]["timeouts"] == 1
    assert held(coordinator) == 1
    await holder.release()
    lease = await b.acquire(wait=False)
    await lease.release()


async def test_cancelled_global_waiter_leaks_no_slot(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1, max_pools=1)
    holder = await a.acquire()
    waiter = asyncio.create_task(b.acquire())
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert b.available_count == 1
    await holder.release()
    assert held(coordinator) == 0
    assert (await coordinator.status()).waiting == 0


async def test_cancellation_right_after_global_handoff(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1, max_pools=2)
    holder = await a.acquire()
    first = asyncio.create_task(b.acquire(owner="first"))
    await settle()
    second = asyncio.create_task(a.acquire(owner="second"))
    await settle()
    await holder.release()  # the slot is granted to "first"...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    lease = await asyncio.wait_for(second, 5)
    assert lease.owner == "second"
    assert held(coordinator) == 1
    assert b.available_count == b.total_count  # b's executor went back
    await lease.release()
    assert held(coordinator) == 0


async def test_hard_expiry_frees_the_global_slot(make_manager: Factory, clock: ManualClock) -> None:
    _, a, b = await pair(make_manager, capacity=1, lease_grace_seconds=0)
    expiring = await a.acquire(lease_seconds=10)
    waiter = asyncio.create_task(b.acquire(owner="next"))
    await settle()
    clock.advance(10)
    lease = await asyncio.wait_for(waiter, 5)
    assert expiring.state == "expired"
    assert lease.owner == "next"
    await lease.release()


async def test_stopping_a_manager_frees_its_slots(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1)
    await a.acquire()
    waiter = asyncio.create_task(b.acquire())
    await settle()
    await a.stop()
    lease = await asyncio.wait_for(waiter, 5)
    assert held(coordinator) == 1
    await lease.release()


async def test_fencing_tokens_increase_across_managers(make_manager: Factory) -> None:
    _, a, b = await pair(make_manager, capacity=4)
    tokens = []
    for i in range(10):
        manager = (a, b)[i % 2]
        lease = await manager.acquire()
        tokens.append(lease.fencing_token)
        await lease.release()
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)


async def test_renew_extends_the_global_slot(make_manager: Factory, clock: ManualClock) -> None:
    coordinator, a, _ = await pair(make_manager, capacity=1, lease_grace_seconds=0)
    lease = await a.acquire(lease_seconds=10)
    status = await coordinator.status()
    assert status.leases[0].hard_ms - status.now_ms == pytest.approx(10_000, abs=50)
    clock.advance(5)
    await lease.renew(60)
    status = await coordinator.status()
    assert status.leases[0].hard_ms - status.now_ms == pytest.approx(60_000, abs=50)
    clock.advance(30)  # past the original deadline: still held, still counted
    assert lease.active
    assert held(coordinator) == 1
    await lease.release()


async def test_zero_timeout_on_a_full_pool_fails_at_once(make_manager: Factory) -> None:
    coordinator, a, b = await pair(make_manager, capacity=1, max_pools=1)
    holder = await a.acquire()
    attempt = asyncio.create_task(b.acquire(timeout=0))
    await settle()
    assert attempt.done(), "timeout=0 must not wait for the clock to move"
    with pytest.raises(TimeoutError):
        await attempt
    assert b.available_count == 1
    assert (await coordinator.status()).waiting == 0
    await holder.release()
