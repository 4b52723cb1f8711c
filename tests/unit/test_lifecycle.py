"""start/stop/restart, acquire around the lifecycle, and the one-loop rule."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _unit_helpers import settle

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolNotStartedError,
    ReleaseOutcome,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


async def in_other_loop(call: Callable[[], Awaitable[Any]]) -> BaseException | Any:
    """Run ``call()`` on a fresh event loop in another thread; return its result or error."""

    def runner() -> BaseException | Any:
        async def main() -> Any:
            return await call()

        try:
            return asyncio.run(main())
        except BaseException as exc:
            return exc

    return await asyncio.to_thread(runner)


def state(manager: LeasedExecutorManager) -> dict[str, Any]:
    stats = manager.stats()
    return {
        "repr": repr(manager),
        "available": stats["available"],
        "leased": stats["leased"],
        "total": stats["total"],
        "leases": stats["leases"],
        "waiting": stats["waiting"],
        "counters": stats["counters"],
        "held": stats["coordinator"]["held"],
    }


# -- start / stop ------------------------------------------------------------------


async def test_acquire_before_start_raises_not_started(make_manager: Factory) -> None:
    manager = make_manager()
    with pytest.raises(LeasePoolNotStartedError, match="start"):
        await manager.acquire()
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire(wait=False)
    assert manager.total_count == 0


async def test_stop_before_start_does_nothing(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.stop()
    await manager.stop()
    assert manager.total_count == 0
    await manager.start()  # still startable
    assert manager.total_count == 1


async def test_start_creates_min_pools_and_is_idempotent(make_manager: Factory) -> None:
    manager = make_manager(max_pools=4, min_pools=2)
    await manager.start()
    assert (manager.total_count, manager.available_count, manager.leased_count) == (2, 2, 0)
    await manager.start()
    assert manager.total_count == 2
    assert manager.stats()["counters"]["executors_created"] == 2


async def test_acquire_after_stop_raises_not_started(make_manager: Factory) -> None:
    manager = make_manager()
    await manager.start()
    await manager.stop()
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    assert manager.available_count == 0


async def test_stop_ends_held_leases_and_their_proxies(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.start()
    lease = await manager.acquire(owner="holder")
    executor = lease.executor
    await manager.stop()
    assert not lease.active
    assert lease.state == "released"
    with pytest.raises(LeaseExpiredError):
        executor.submit(int, "1")
    with pytest.raises(LeaseExpiredError):
        await lease.run(int, "1")
    # Releasing after stop is harmless and idempotent.
    assert await lease.release() is ReleaseOutcome.UNKNOWN
    assert manager.stats()["leases"] == []


async def test_stop_wakes_waiters_with_not_started(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    await manager.acquire()
    waiter = asyncio.create_task(manager.acquire())
    await settle()
    assert manager.stats()["waiting"] == 1
    await manager.stop()
    with pytest.raises(LeasePoolNotStartedError):
        await waiter


async def test_acquire_during_stop_fails(make_manager: Factory, clock: ManualClock) -> None:
    # An async soft-expiry callback that we hold open keeps stop() in progress.
    release_callback = asyncio.Event()

    async def on_soft(lease: object) -> None:
        await release_callback.wait()

    manager = make_manager(max_pools=2, on_soft_expiry=on_soft)
    await manager.start()
    await manager.acquire(lease_seconds=5)
    clock.advance(5)  # soft expiry: the callback task starts and blocks
    await settle()
    stopping = asyncio.create_task(manager.stop())
    try:
        await settle()
        assert not stopping.done()
        assert "stopping" in repr(manager)
        with pytest.raises(LeasePoolNotStartedError, match="stopping"):
            await manager.acquire()
        with pytest.raises(LeasePoolNotStartedError):
            await manager.acquire(wait=False)
        with pytest.raises(LeasePoolNotStartedError):
            await manager.start()
    finally:
        release_callback.set()
        await stopping
    assert "stopped" in repr(manager)


async def test_restart_after_stop(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2, min_pools=1)
    await manager.start()
    old = await manager.acquire(owner="before")
    assert await old.run(sum, [1, 2]) == 3
    await manager.stop()
    assert manager.total_count == 0

    await manager.start()
    assert manager.total_count == 1
    assert not old.active
    new = await manager.acquire(owner="after")
    assert await new.run(sum, [3, 4]) == 7
    assert new.lease_id != old.lease_id
    assert new.fencing_token > old.fencing_token
    assert [entry["owner"] for entry in manager.stats()["leases"]] == ["after"]
    await new.release()
    await manager.stop()


async def test_context_manager_releases_on_exit_and_on_error(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    async with await manager.acquire(owner="ctx") as lease:
        assert manager.leased_count == 1
        assert await lease.run(len, "abc") == 3
    assert lease.state == "released"
    assert manager.available_count == 1

    with pytest.raises(ZeroDivisionError):
        async with await manager.acquire() as lease:
            await lease.run(divmod, 1, 0)
    assert lease.state == "released"
    assert manager.available_count == 1


async def test_release_is_idempotent(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    assert await lease.release() is ReleaseOutcome.RELEASED
    assert await lease.release() is ReleaseOutcome.UNKNOWN
    assert await manager.release(lease.lease_id) is ReleaseOutcome.UNKNOWN
    assert await manager.release("no-such-lease") is ReleaseOutcome.UNKNOWN
    assert manager.stats()["counters"]["releases"] == 1
    assert manager.available_count == 1


async def test_release_by_id(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    assert await manager.release(lease.lease_id) is ReleaseOutcome.RELEASED
    assert not lease.active
    with pytest.raises(LeaseExpiredError, match="released"):
        lease.executor.submit(int)


async def test_leased_executor_refuses_shutdown(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    with pytest.raises(RuntimeError, match="shut down"):
        lease.executor.shutdown()
    with pytest.raises(RuntimeError):
        lease.executor.shutdown(wait=False, cancel_futures=True)
    # The executor is untouched.
    assert lease.executor.submit(pow, 2, 5).result(timeout=10) == 32
    assert await lease.run(pow, 3, 2) == 9
    await lease.release()


async def test_lease_attributes(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(max_pools=1, lease_grace_seconds=7)
    await manager.start()
    lease = await manager.acquire(lease_seconds=30, owner="attrs")
    assert lease.owner == "attrs"
    assert lease.lease_seconds == 30.0
    assert lease.grace_seconds == 7.0
    assert lease.leased_at == clock.monotonic()
    assert lease.soft_expires_at == clock.monotonic() + 30
    assert lease.hard_expires_at == clock.monotonic() + 37
    assert isinstance(lease.lease_id, str) and lease.lease_id
    assert isinstance(lease.fencing_token, int)
    assert lease.active and lease.state == "active"
    assert lease.seconds_left == 37.0
    assert await lease.run(str.upper, "x") == "X"
    assert await lease.run(int, "ff", base=16) == 255  # kwargs reach the function
    await lease.release()
    assert lease.seconds_left == 0.0


async def test_default_lease_seconds_applies(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1, default_lease_seconds=12, lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire()
    assert lease.lease_seconds == 12.0
    assert lease.hard_expires_at - lease.leased_at == 12.0
    assert lease.owner is None


async def test_real_clock_by_default() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        loop_time = asyncio.get_running_loop().time()
        lease = await manager.acquire(lease_seconds=60)
        # The timestamps are on the monotonic clock (the default loop's clock too).
        assert abs(lease.leased_at - loop_time) < 5
        assert await lease.run(abs, -4) == 4
        await lease.release()
    finally:
        await manager.stop()


# -- the one-loop rule -------------------------------------------------------------


async def test_cross_loop_acquire_raises_and_changes_nothing(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.start()
    before = state(manager)
    result = await in_other_loop(lambda: manager.acquire())
    assert isinstance(result, RuntimeError), result
    assert "loop" in str(result)
    result = await in_other_loop(lambda: manager.acquire(wait=False))
    assert isinstance(result, RuntimeError)
    assert state(manager) == before
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_cross_loop_stop_raises_and_changes_nothing(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.start()
    lease = await manager.acquire(owner="keep")
    before = state(manager)
    result = await in_other_loop(lambda: manager.stop())
    assert isinstance(result, RuntimeError), result
    assert state(manager) == before
    assert lease.active
    assert "started" in repr(manager)
    # Not stuck in a stopping state: the owner loop can still use and stop it.
    assert await lease.run(max, 1, 2) == 2
    other = await manager.acquire(wait=False)
    await other.release()
    await manager.stop()
    assert not lease.active


async def test_cross_loop_start_raises(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.start()
    before = state(manager)
    result = await in_other_loop(lambda: manager.start())
    assert isinstance(result, RuntimeError), result
    assert state(manager) == before


async def test_cross_loop_release_raises_and_keeps_the_lease(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    before = state(manager)
    result = await in_other_loop(lambda: manager.release(lease.lease_id))
    assert isinstance(result, RuntimeError), result
    result = await in_other_loop(lambda: lease.release())
    assert isinstance(result, RuntimeError), result
    assert lease.active
    assert state(manager) == before
    assert await lease.release() is ReleaseOutcome.RELEASED


async def test_cross_loop_renew_raises_and_changes_nothing(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    hard = lease.hard_expires_at
    result = await in_other_loop(lambda: lease.renew(100))
    assert isinstance(result, RuntimeError), result
    assert lease.hard_expires_at == hard
    assert manager.stats()["counters"]["renewals"] == 0


async def test_submit_from_another_thread_is_allowed(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    result = await asyncio.to_thread(lambda: lease.executor.submit(pow, 2, 10).result(10))
    assert result == 1024
    await lease.release()


async def test_stopped_manager_can_start_on_another_loop(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    await manager.stop()

    async def use_elsewhere() -> int:
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                return await lease.run(pow, 2, 3)
        finally:
            await manager.stop()

    assert await in_other_loop(use_elsewhere) == 8
    # And back on this loop.
    await manager.start()
    async with await manager.acquire() as lease:
        assert await lease.run(pow, 2, 4) == 16


async def test_manager_started_elsewhere_rejects_this_loop(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    started = threading.Event()
    finish = threading.Event()

    def owner_thread() -> None:
        async def main() -> None:
            await manager.start()
            started.set()
            await asyncio.to_thread(finish.wait, 30)
            await manager.stop()

        asyncio.run(main())

    thread = threading.Thread(target=owner_thread)
    thread.start()
    try:
        assert await asyncio.to_thread(started.wait, 30)
        with pytest.raises(RuntimeError, match="loop"):
            await manager.acquire()
        with pytest.raises(RuntimeError, match="loop"):
            await manager.stop()
        with pytest.raises(RuntimeError, match="loop"):
            await manager.start()
        assert manager.total_count == 1
    finally:
        finish.set()
        await asyncio.to_thread(thread.join, 30)
    assert manager.total_count == 0


async def test_concurrent_stop_returns_when_stopped(
    make_manager: Factory, clock: ManualClock
) -> None:
    hold = asyncio.Event()

    async def on_soft(lease: object) -> None:
        await hold.wait()

    manager = make_manager(max_pools=2, on_soft_expiry=on_soft)
    await manager.start()
    await manager.acquire(lease_seconds=5)
    clock.advance(5)  # the callback keeps the first stop() busy
    await settle()
    first = asyncio.create_task(manager.stop())
    try:
        await settle()
        second = asyncio.create_task(manager.stop())
        await settle()
        # A second stop() does not claim success while the first is still stopping.
        assert not second.done()
    finally:
        hold.set()
    await asyncio.gather(first, second)
    assert "stopped" in repr(manager)
    await manager.start()  # and it can be started again at once
    assert manager.total_count == 1


async def test_leased_executor_supports_map(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    async with await manager.acquire() as lease:
        results = await asyncio.to_thread(lambda: list(lease.executor.map(abs, [-1, -2, 3])))
    assert results == [1, 2, 3]


async def test_failed_start_leaves_the_manager_stopped(make_manager: Factory) -> None:
    # An executor keyword the executor does not accept fails at start, cleanly.
    manager = make_manager(max_pools=1, not_an_executor_option=1)
    with pytest.raises(TypeError, match="not_an_executor_option"):
        await manager.start()
    assert "stopped" in repr(manager)
    assert manager.total_count == 0
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    await manager.stop()  # a no-op
    with pytest.raises(TypeError):
        await manager.start()  # still the same error, not "already started"
