"""The no-wait fast path on the Coordinator interface, and the manager's use of it.

The manager calls ``acquire_nowait``/``release_nowait`` on every coordinator and
awaits ``acquire``/``release`` only when they raise ``WouldBlock``; it never asks
which coordinator it has. These tests drive it through the public API with real
coordinator subclasses (no mocks): one that never answers without waiting (the
interface's defaults), and the embedded one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from leasepool import (
    Coordinator,
    Grant,
    GrantRequest,
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeasePoolError,
    LeaseUnavailableError,
    ReleaseOutcome,
    WouldBlock,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


class AlwaysAsync(InMemoryCoordinator):
    """The embedded coordinator minus its fast path: the interface's default no-wait calls."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.awaited_acquires = 0
        self.awaited_releases = 0

    def acquire_nowait(self, request: GrantRequest, *, now: float) -> Grant:
        return Coordinator.acquire_nowait(self, request, now=now)

    def release_nowait(self, lease_id: str) -> ReleaseOutcome:
        return Coordinator.release_nowait(self, lease_id)

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        self.awaited_acquires += 1
        return await super().acquire(request, wait=wait, deadline=deadline)

    async def release(self, lease_id: str) -> ReleaseOutcome:
        self.awaited_releases += 1
        # The parent's release calls release_nowait, which this class refuses: free directly.
        return InMemoryCoordinator.release_nowait(self, lease_id)


class CountingMemory(InMemoryCoordinator):
    """The embedded coordinator, counting which calls the manager makes."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.awaited_acquires = 0
        self.awaited_releases = 0

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        self.awaited_acquires += 1
        return await super().acquire(request, wait=wait, deadline=deadline)

    async def release(self, lease_id: str) -> ReleaseOutcome:
        self.awaited_releases += 1
        return await super().release(lease_id)


def request(lease_id: str, seconds: float = 10.0) -> GrantRequest:
    return GrantRequest(lease_id, "owner", seconds, 1.0)


def test_would_block_is_a_leasepool_error() -> None:
    assert issubclass(WouldBlock, LeasePoolError)


async def test_default_nowait_calls_always_would_block(clock: ManualClock) -> None:
    coordinator = AlwaysAsync(capacity=2)
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        with pytest.raises(WouldBlock):
            coordinator.acquire_nowait(request("a"), now=clock.monotonic())
        grant = await coordinator.acquire(request("a"), wait=False, deadline=None)
        with pytest.raises(WouldBlock):
            coordinator.release_nowait(grant.lease_id)
        # WouldBlock freed nothing: the slot is still held.
        assert coordinator.statistics()["held"] == 1
    finally:
        await coordinator.close()


async def test_memory_acquire_nowait_refuses_before_start_and_after_close(
    clock: ManualClock,
) -> None:
    coordinator = InMemoryCoordinator(capacity=1)
    with pytest.raises(WouldBlock):
        coordinator.acquire_nowait(request("early"), now=clock.monotonic())
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    grant = coordinator.acquire_nowait(request("a"), now=clock.monotonic())
    assert coordinator.release_nowait(grant.lease_id) is ReleaseOutcome.RELEASED
    await coordinator.close()
    with pytest.raises(WouldBlock):
        coordinator.acquire_nowait(request("late"), now=clock.monotonic())
    assert coordinator.statistics()["held"] == 0


async def test_memory_acquire_nowait_grants_on_the_callers_clock(clock: ManualClock) -> None:
    coordinator = InMemoryCoordinator(capacity=2)
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        clock.advance(5.0)
        first = coordinator.acquire_nowait(request("a", seconds=10.0), now=clock.monotonic())
        second = coordinator.acquire_nowait(request("b", seconds=10.0), now=clock.monotonic())
        assert first.lease_id == "a"
        assert first.soft_deadline == clock.monotonic() + 10.0
        assert first.hard_deadline == first.soft_deadline + 1.0
        assert second.fencing_token > first.fencing_token
        stats = coordinator.statistics()
        assert (stats["held"], stats["grants"]) == (2, 2)
    finally:
        await coordinator.close()


async def test_memory_acquire_nowait_would_block_when_full_and_changes_nothing(
    clock: ManualClock,
) -> None:
    coordinator = InMemoryCoordinator(capacity=1)
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        coordinator.acquire_nowait(request("a"), now=clock.monotonic())
        with pytest.raises(WouldBlock):
            coordinator.acquire_nowait(request("b"), now=clock.monotonic())
        stats = coordinator.statistics()
        assert (stats["held"], stats["grants"]) == (1, 1)
        # Past the hard deadline the slot is reclaimed, so the fast path grants again.
        clock.advance(11.0)
        grant = coordinator.acquire_nowait(request("b"), now=clock.monotonic())
        assert grant.lease_id == "b"
        assert coordinator.release_nowait("a") is ReleaseOutcome.UNKNOWN
    finally:
        await coordinator.close()


async def test_memory_acquire_nowait_never_jumps_the_queue(clock: ManualClock) -> None:
    coordinator = InMemoryCoordinator(capacity=1)
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        coordinator.acquire_nowait(request("a"), now=clock.monotonic())
        waiter = asyncio.ensure_future(coordinator.acquire(request("w"), wait=True, deadline=None))
        await asyncio.sleep(0)
        assert coordinator.statistics()["waiting"] == 1
        # The slot the release frees goes to the waiter, never to a newcomer.
        assert coordinator.release_nowait("a") is ReleaseOutcome.RELEASED
        with pytest.raises(WouldBlock):
            coordinator.acquire_nowait(request("late"), now=clock.monotonic())
        granted = await waiter
        assert granted.lease_id == "w"
    finally:
        await coordinator.close()


async def test_release_nowait_reports_an_expired_lease(clock: ManualClock) -> None:
    coordinator = InMemoryCoordinator()
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        coordinator.acquire_nowait(request("a", seconds=1.0), now=clock.monotonic())
        clock.advance(5.0)
        assert coordinator.release_nowait("a") is ReleaseOutcome.EXPIRED
        assert coordinator.release_nowait("a") is ReleaseOutcome.UNKNOWN
    finally:
        await coordinator.close()


# -- the manager on any coordinator ---------------------------------------------


async def test_manager_falls_back_to_the_async_calls(make_manager: Factory) -> None:
    coordinator = AlwaysAsync(capacity=1)
    manager = make_manager(max_pools=2, coordinator=coordinator)
    await manager.start()
    lease = await manager.acquire()
    assert (coordinator.awaited_acquires, coordinator.statistics()["held"]) == (1, 1)
    assert await lease.run(sum, [1, 2]) == 3
    assert await lease.release() is ReleaseOutcome.RELEASED
    assert (coordinator.awaited_releases, coordinator.statistics()["held"]) == (1, 0)
    assert await lease.release() is ReleaseOutcome.UNKNOWN
    assert coordinator.awaited_releases == 1
    counters = manager.stats()["counters"]
    assert (counters["acquires"], counters["releases"]) == (1, 1)


async def test_manager_uses_the_fast_path_when_it_grants(make_manager: Factory) -> None:
    coordinator = CountingMemory(capacity=1)
    manager = make_manager(max_pools=2, coordinator=coordinator)
    await manager.start()
    lease = await manager.acquire()
    assert await lease.release() is ReleaseOutcome.RELEASED
    # Neither call needed an await on the coordinator.
    assert (coordinator.awaited_acquires, coordinator.awaited_releases) == (0, 0)
    # Full: the fast path says WouldBlock and the manager falls back (and is refused).
    held = await manager.acquire()
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(wait=False)
    assert coordinator.awaited_acquires == 1
    assert manager.stats()["available"] == 1  # the executor went back to the pool
    await held.release()
    assert coordinator.statistics()["held"] == 0


class Broken(InMemoryCoordinator):
    """A fast path that fails with an error other than WouldBlock."""

    def acquire_nowait(self, request: GrantRequest, *, now: float) -> Grant:
        raise LeasePoolError("the fast path broke")


async def test_manager_puts_the_executor_back_when_the_fast_path_fails(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=1, coordinator=Broken())
    await manager.start()
    with pytest.raises(LeasePoolError, match="the fast path broke"):
        await manager.acquire()
    stats = manager.stats()
    assert (stats["available"], stats["leased"]) == (1, 0)


async def test_memory_acquire_nowait_never_jumps_waiters_even_with_room(
    clock: ManualClock,
) -> None:
    # The held slot is past its hard deadline, but its expiry timer has not run yet
    # (a busy loop): there is room, yet the waiter queued first must get it.
    coordinator = InMemoryCoordinator(capacity=1)
    await coordinator.start(clock=clock, on_lost=lambda _id: None)
    try:
        coordinator.acquire_nowait(request("a", seconds=10.0), now=clock.monotonic())
        waiter = asyncio.ensure_future(coordinator.acquire(request("w"), wait=True, deadline=None))
        await asyncio.sleep(0)
        late = clock.monotonic() + 20.0
        with pytest.raises(WouldBlock):
            coordinator.acquire_nowait(request("late"), now=late)
        assert coordinator.statistics()["grants"] == 1
        clock.advance(20.0)  # the expiry timer runs: the slot goes to the waiter
        await asyncio.sleep(0)
        assert (await waiter).lease_id == "w"
    finally:
        await coordinator.close()
