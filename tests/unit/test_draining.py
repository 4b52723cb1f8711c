"""Draining: a released lease gives its executor (and its global slot) back only once
the work submitted through it has finished."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from _unit_helpers import settle, wait_until

from leasepool import (
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseUnavailableError,
    ReleaseOutcome,
)

Factory = Callable[..., LeasedExecutorManager]


def blocker(gate: threading.Event, started: threading.Event) -> Callable[[], str]:
    def work() -> str:
        started.set()
        if not gate.wait(30):
            raise RuntimeError("gate never opened")
        return "done"

    return work


async def test_released_executor_returns_only_after_submitted_work(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    future = lease.executor.submit(blocker(gate, started))
    assert await asyncio.to_thread(started.wait, 10)

    assert await lease.release() is ReleaseOutcome.RELEASED  # returns at once
    assert not lease.active
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(abs, 1)
    stats = manager.stats()
    assert (stats["available"], stats["leased"]) == (0, 1)
    assert stats["leases"] == []
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(wait=False)

    gate.set()
    assert await asyncio.wrap_future(future) == "done"
    await wait_until(lambda: manager.available_count == 1, message="drained executor back")
    assert manager.leased_count == 0
    lease2 = await manager.acquire(wait=False)
    await lease2.release()


async def test_waiter_gets_the_executor_after_the_drain(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    lease.executor.submit(blocker(gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    waiter = asyncio.create_task(manager.acquire(owner="next"))
    await settle()
    await lease.release()
    await settle()
    assert not waiter.done()
    gate.set()
    nxt = await asyncio.wait_for(waiter, 10)
    assert nxt.owner == "next"
    await nxt.release()


async def test_release_with_finished_work_returns_executor_at_once(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    future = lease.executor.submit(sum, [1, 2, 3])
    assert await asyncio.wrap_future(future) == 6
    await settle()
    await lease.release()
    await wait_until(lambda: manager.available_count == 1)


async def test_global_slot_is_held_while_draining(
    make_manager: Factory, gate: threading.Event
) -> None:
    coordinator = InMemoryCoordinator(capacity=1)
    manager = make_manager(max_pools=2, min_pools=2, coordinator=coordinator)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    future = lease.executor.submit(blocker(gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    await lease.release()

    # A second executor is idle locally, but the only global slot is still held.
    assert manager.available_count == 1
    assert coordinator.statistics()["held"] == 1
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(wait=False)
    assert manager.available_count == 1  # the refused call gave its executor back

    gate.set()
    await asyncio.wrap_future(future)
    await wait_until(lambda: coordinator.statistics()["held"] == 0, message="slot released")
    lease2 = await manager.acquire(wait=False)
    assert coordinator.statistics()["held"] == 1
    await lease2.release()
    assert coordinator.statistics()["held"] == 0


async def test_global_waiter_is_served_after_the_drain(
    make_manager: Factory, gate: threading.Event
) -> None:
    coordinator = InMemoryCoordinator(capacity=1)
    manager = make_manager(max_pools=2, min_pools=2, coordinator=coordinator)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    lease.executor.submit(blocker(gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    waiter = asyncio.create_task(manager.acquire(owner="global-waiter"))
    await settle()
    await lease.release()
    await settle()
    assert not waiter.done()
    gate.set()
    got = await asyncio.wait_for(waiter, 10)
    assert got.owner == "global-waiter"
    await got.release()


async def test_cancelled_run_still_drains(make_manager: Factory, gate: threading.Event) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    running = asyncio.create_task(lease.run(blocker(gate, started)))
    assert await asyncio.to_thread(started.wait, 10)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await lease.release()
    await settle()
    assert manager.available_count == 0  # the work is still running in the thread
    gate.set()
    await wait_until(lambda: manager.available_count == 1, message="drained after cancel")


async def test_run_in_progress_during_release_keeps_executor(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    running = asyncio.create_task(lease.run(blocker(gate, started)))
    assert await asyncio.to_thread(started.wait, 10)
    await lease.release()
    assert manager.available_count == 0
    gate.set()
    assert await running == "done"  # work submitted before the release finishes normally
    await wait_until(lambda: manager.available_count == 1)


async def test_many_submissions_all_drain(make_manager: Factory, gate: threading.Event) -> None:
    manager = make_manager(max_pools=1, workers_per_pool=2)
    await manager.start()
    lease = await manager.acquire()
    futures = [lease.executor.submit(gate.wait, 30) for _ in range(6)]
    await lease.release()
    assert manager.available_count == 0
    gate.set()
    results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    assert results == [True] * 6
    await wait_until(lambda: manager.available_count == 1)
