"""Broken executors are retired, never reused, and replaced; the error reaches the caller."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool

import pytest
from _unit_helpers import settle, wait_until

from leasepool import LeasedExecutorManager, LeaseExpiredError
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


class FailFirstInitializer:
    """A ThreadPoolExecutor initializer that raises for the first ``failures`` calls."""

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("initializer failed")


def thread_name() -> str:
    return threading.current_thread().name


def retirements(manager: LeasedExecutorManager) -> dict[str, int]:
    counters = manager.stats()["counters"]
    return dict(counters["retirements"])


async def test_broken_executor_error_reaches_run_and_is_replaced(
    make_manager: Factory,
) -> None:
    manager = make_manager(
        max_pools=1, workers_per_pool=1, name_prefix="lp-broken", initializer=FailFirstInitializer()
    )
    await manager.start()
    lease = await manager.acquire()
    with pytest.raises(BrokenThreadPool):
        await lease.run(thread_name)
    await lease.release()

    await wait_until(lambda: manager.available_count == 1, message="replacement created")
    assert retirements(manager) == {"broken": 1}
    assert manager.stats()["counters"]["executors_created"] == 2
    assert manager.total_count == 1

    lease = await manager.acquire(wait=False)
    name = await lease.run(thread_name)
    # A different executor: the replacement's threads carry the next sequence number.
    assert name.startswith("lp-broken-2"), name
    await lease.release()


async def test_broken_executor_error_reaches_submitted_future(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1, workers_per_pool=1, initializer=FailFirstInitializer())
    await manager.start()
    lease = await manager.acquire()
    future = lease.executor.submit(thread_name)
    with pytest.raises(BrokenThreadPool):
        await asyncio.wrap_future(future)
    # The executor itself now refuses work, and says why.
    with pytest.raises(BrokenThreadPool):
        lease.executor.submit(thread_name)
    await lease.release()
    await wait_until(lambda: retirements(manager) == {"broken": 1})
    await wait_until(lambda: manager.available_count == 1)
    async with await manager.acquire() as fresh:
        assert await fresh.run(pow, 2, 3) == 8


async def test_broken_executor_is_never_handed_to_a_waiter(make_manager: Factory) -> None:
    manager = make_manager(
        max_pools=1, workers_per_pool=1, name_prefix="lp-w", initializer=FailFirstInitializer()
    )
    await manager.start()
    lease = await manager.acquire()
    with pytest.raises(BrokenThreadPool):
        await lease.run(thread_name)
    waiter = asyncio.create_task(manager.acquire(owner="waiter"))
    await settle()
    await lease.release()
    fresh = await asyncio.wait_for(waiter, 10)
    assert (await fresh.run(thread_name)).startswith("lp-w-2")
    await fresh.release()
    assert retirements(manager) == {"broken": 1}


async def test_retiring_broken_executor_counts_against_max_pools(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2, min_pools=2, initializer=FailFirstInitializer())
    await manager.start()
    leases = [await manager.acquire(), await manager.acquire()]
    runs = (lease.run(abs, -1) for lease in leases)
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    assert sum(isinstance(o, BrokenThreadPool) for o in outcomes) == 1
    for lease in leases:
        await lease.release()
    # Never more than max_pools executors exist, counting the one being retired.
    assert manager.total_count <= 2
    await wait_until(lambda: manager.available_count == 2, message="replaced")
    assert manager.total_count == 2
    assert retirements(manager) == {"broken": 1}


async def test_broken_executor_at_hard_expiry_is_retired(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=1, lease_grace_seconds=0, initializer=FailFirstInitializer())
    await manager.start()
    lease = await manager.acquire(lease_seconds=5)
    with pytest.raises(BrokenThreadPool):
        await lease.run(abs, 1)
    clock.advance(5)
    assert lease.state == "expired"
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(abs, 1)
    await wait_until(lambda: retirements(manager) == {"broken": 1})
    await wait_until(lambda: manager.available_count == 1)
    async with await manager.acquire() as fresh:
        assert await fresh.run(abs, -5) == 5


async def test_healthy_executor_is_reused(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1, workers_per_pool=1, name_prefix="lp-ok")
    await manager.start()
    names = set()
    for _ in range(5):
        async with await manager.acquire() as lease:
            names.add(await lease.run(thread_name))
    assert len(names) == 1 and names.pop().startswith("lp-ok-1")
    assert manager.stats()["counters"]["executors_created"] == 1
    assert retirements(manager) == {}


async def test_broken_process_pool_is_retired_and_replaced(make_manager: Factory) -> None:
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    manager = make_manager(backend="process", max_pools=1, workers_per_pool=1, mp_context=context)
    await manager.start()
    lease = await manager.acquire()
    first_pid = await lease.run(os.getpid)
    with pytest.raises(BrokenProcessPool):
        await lease.run(os._exit, 3)  # the worker dies
    await lease.release()
    await wait_until(lambda: retirements(manager) == {"broken": 1}, within=30)
    await wait_until(lambda: manager.available_count == 1, within=30)
    async with await manager.acquire() as fresh:
        pid = await fresh.run(os.getpid)
    assert pid != first_pid
    assert pid != os.getpid()
