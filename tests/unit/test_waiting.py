"""FIFO waiting with direct handoff, wait=False, timeouts, and cancellation safety."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from _unit_helpers import settle

from leasepool import (
    ExecutorLease,
    LeasedExecutorManager,
    LeaseUnavailableError,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


async def queue_waiters(
    manager: LeasedExecutorManager, owners: list[str], **kwargs: object
) -> list[asyncio.Task[ExecutorLease]]:
    """Start one waiting acquire per owner, in order, each queued before the next starts."""
    tasks = []
    for owner in owners:
        tasks.append(asyncio.create_task(manager.acquire(owner=owner, **kwargs)))  # type: ignore[arg-type]
        await settle()
    assert manager.stats()["waiting"] == len(owners)
    return tasks


async def test_waiters_are_served_first_in_first_out(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire(owner="holder")
    owners = [f"w{i}" for i in range(5)]
    tasks = await queue_waiters(manager, owners)

    served = []
    current = holder
    for task in tasks:
        await current.release()
        current = await task
        served.append(current.owner)
    assert served == owners
    await current.release()
    assert manager.available_count == 1


async def test_release_wakes_exactly_one_waiter(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    tasks = await queue_waiters(manager, ["a", "b", "c"])
    await holder.release()
    await settle()
    assert [task.done() for task in tasks] == [True, False, False]
    assert manager.stats()["waiting"] == 2
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks[1:], return_exceptions=True)
    await (await tasks[0]).release()


async def test_direct_handoff_newcomer_cannot_barge(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    (waiter,) = await queue_waiters(manager, ["waiter"])

    await holder.release()
    # The executor went straight to the waiter, before the waiter even ran:
    # it is not "available", and a newcomer that will not wait is refused.
    assert not waiter.done() or waiter.result().owner == "waiter"
    assert manager.available_count == 0
    assert manager.leased_count == 1
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(owner="newcomer", wait=False)
    # A newcomer that waits queues behind.
    newcomer = asyncio.create_task(manager.acquire(owner="newcomer"))
    got = await waiter
    assert got.owner == "waiter"
    await settle()
    assert not newcomer.done()
    await got.release()
    assert (await newcomer).owner == "newcomer"
    await (await newcomer).release()


async def test_wait_false_fails_while_others_are_queued(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    (waiter,) = await queue_waiters(manager, ["queued"])
    rejections = manager.stats()["counters"]["rejections"]
    with pytest.raises(LeaseUnavailableError, match="waiting"):
        await manager.acquire(wait=False)
    assert manager.stats()["counters"]["rejections"] == rejections + 1
    assert manager.stats()["waiting"] == 1  # the refused call did not queue
    await holder.release()
    await (await waiter).release()


async def test_wait_false_with_free_capacity_succeeds(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2, min_pools=1)
    await manager.start()
    first = await manager.acquire(wait=False)
    second = await manager.acquire(wait=False)  # created on demand up to max_pools
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(wait=False)
    counters = manager.stats()["counters"]
    assert (counters["acquires"], counters["rejections"], counters["waits"]) == (2, 1, 0)
    await first.release()
    await second.release()


async def test_timeout_raises_builtin_timeout_error(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    waiter = asyncio.create_task(manager.acquire(timeout=5))
    await settle()
    clock.advance(4.9)
    await settle()
    assert not waiter.done()
    clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await waiter
    stats = manager.stats()
    assert stats["counters"]["timeouts"] == 1
    assert stats["waiting"] == 0
    # The timed-out waiter holds nothing: the executor comes back on release.
    await holder.release()
    assert manager.available_count == 1
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_timeout_is_not_waited_when_capacity_is_free(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(timeout=0.001)
    await lease.release()


async def test_zero_timeout_with_no_capacity_fails_at_once(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    attempt = asyncio.create_task(manager.acquire(timeout=0))
    await settle()
    assert attempt.done(), "timeout=0 must not wait for the clock to move"
    with pytest.raises(TimeoutError):
        await attempt
    assert manager.stats()["waiting"] == 0
    await holder.release()
    assert manager.available_count == 1


async def test_timed_out_waiter_does_not_block_wait_false(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    waiter = asyncio.create_task(manager.acquire(timeout=1))
    await settle()
    clock.advance(1)
    await asyncio.gather(waiter, return_exceptions=True)
    await holder.release()
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_cancelled_waiter_leaks_nothing(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    a, b = await queue_waiters(manager, ["a", "b"])
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert manager.stats()["waiting"] == 1
    await holder.release()
    assert (await b).owner == "b"
    await (await b).release()
    assert manager.available_count == 1
    assert manager.leased_count == 0


async def test_cancellation_right_after_handoff_passes_executor_on(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    first, second = await queue_waiters(manager, ["first", "second"])
    await holder.release()  # handed to "first", which has not run yet
    first.cancel()  # ... and is cancelled before it can use it
    with pytest.raises(asyncio.CancelledError):
        await first
    lease = await second
    assert lease.owner == "second"
    assert manager.leased_count == 1
    await lease.release()
    assert manager.available_count == 1


async def test_cancellation_right_after_handoff_with_no_other_waiter(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    (waiter,) = await queue_waiters(manager, ["only"])
    await holder.release()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = manager.stats()
    assert (stats["available"], stats["leased"], stats["total"]) == (1, 0, 1)
    assert stats["leases"] == []
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_handoff_before_deadline_wins_over_timeout(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    waiter = asyncio.create_task(manager.acquire(owner="w", timeout=5))
    await settle()
    await holder.release()  # handed over first...
    clock.advance(10)  # ...then the deadline passes before the waiter runs
    lease = await waiter
    assert lease.owner == "w"
    assert manager.stats()["counters"]["timeouts"] == 0
    await lease.release()


async def test_many_waiters_with_cancellations_and_timeouts_balance_out(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=2, min_pools=2)
    await manager.start()
    holders = [await manager.acquire(), await manager.acquire()]
    tasks = []
    for i in range(12):
        timeout = 3.0 if i % 3 == 1 else None
        tasks.append(asyncio.create_task(manager.acquire(owner=f"w{i}", timeout=timeout)))
        await settle(2)
    for i in range(0, 12, 3):
        tasks[i].cancel()
    clock.advance(3)  # every third (i % 3 == 1) times out
    await settle()
    for holder in holders:
        await holder.release()
    served = []
    for i, task in enumerate(tasks):
        if i % 3 == 0:
            with pytest.raises(asyncio.CancelledError):
                await task
        elif i % 3 == 1:
            with pytest.raises(TimeoutError):
                await task
        else:
            lease = await task
            served.append(lease.owner)
            await lease.release()
    assert served == ["w2", "w5", "w8", "w11"]
    stats = manager.stats()
    assert stats["waiting"] == 0
    assert stats["leased"] == 0
    assert stats["available"] == stats["total"] == 2
    assert stats["counters"]["timeouts"] == 4
    # Nothing leaked: both executors can be leased at once again.
    a = await manager.acquire(wait=False)
    b = await manager.acquire(wait=False)
    await a.release()
    await b.release()


async def test_waits_counter_counts_callers_that_queued(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    holder = await manager.acquire()
    (waiter,) = await queue_waiters(manager, ["w"])
    await holder.release()
    await (await waiter).release()
    counters = manager.stats()["counters"]
    assert (counters["acquires"], counters["waits"]) == (2, 1)
