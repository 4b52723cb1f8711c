"""Adaptive sizing: max(min_pools, ceil(units / units_per_pool)), capped at max_pools."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest
from _unit_helpers import settle, wait_until

from leasepool import LeasedExecutorManager
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


class Units:
    """A size provider whose value the test sets."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def retirements(manager: LeasedExecutorManager) -> dict[str, int]:
    return dict(manager.stats()["counters"]["retirements"])


def test_desired_without_provider_is_min_pools() -> None:
    manager = LeasedExecutorManager(max_pools=5, min_pools=3)
    assert manager.desired_executor_count() == 3
    assert manager.stats()["desired"] == 3


@pytest.mark.parametrize(
    ("units", "per_pool", "min_pools", "max_pools", "expected"),
    [
        (0, 10, 1, 8, 1),
        (1, 10, 1, 8, 1),
        (10, 10, 1, 8, 1),
        (11, 10, 1, 8, 2),
        (25, 10, 1, 8, 3),
        (30, 10, 1, 8, 3),
        (31, 10, 1, 8, 4),
        (5, 1, 2, 8, 5),
        (5, 10, 3, 8, 3),  # min_pools wins
        (1000, 10, 1, 8, 8),  # capped at max_pools
        (81, 10, 1, 8, 8),
        (7, 3, 1, 8, 3),
    ],
)
def test_ceil_rule(
    units: int, per_pool: int, min_pools: int, max_pools: int, expected: int
) -> None:
    manager = LeasedExecutorManager(
        max_pools=max_pools,
        min_pools=min_pools,
        units_per_pool=per_pool,
        size_provider=Units(units),
    )
    assert manager.desired_executor_count() == expected
    assert expected == min(max_pools, max(min_pools, math.ceil(units / per_pool)))


@pytest.mark.parametrize("bad", [ZeroDivisionError, KeyError, RuntimeError])
def test_raising_provider_counts_as_zero(bad: type[Exception]) -> None:
    def provider() -> int:
        raise bad("provider down")

    manager = LeasedExecutorManager(max_pools=5, min_pools=2, size_provider=provider)
    assert manager.desired_executor_count() == 2
    assert manager.stats()["desired"] == 2


def test_negative_provider_counts_as_zero() -> None:
    manager = LeasedExecutorManager(max_pools=5, min_pools=1, size_provider=lambda: -50)
    assert manager.desired_executor_count() == 1


async def test_start_creates_the_desired_count(make_manager: Factory) -> None:
    manager = make_manager(max_pools=6, min_pools=1, units_per_pool=10, size_provider=Units(35))
    await manager.start()
    assert manager.total_count == 4
    assert manager.available_count == 4


async def test_raising_provider_at_start_uses_min_pools(make_manager: Factory) -> None:
    def provider() -> int:
        raise OSError("no signal")

    manager = make_manager(max_pools=4, min_pools=2, size_provider=provider)
    await manager.start()
    assert manager.total_count == 2
    manager.notify_scale_changed()
    await settle()
    assert manager.total_count == 2


async def test_notify_scale_changed_grows(make_manager: Factory) -> None:
    units = Units(5)
    manager = make_manager(max_pools=5, min_pools=1, units_per_pool=10, size_provider=units)
    await manager.start()
    assert manager.total_count == 1
    units.value = 42
    manager.notify_scale_changed()
    await settle()
    assert manager.total_count == 5
    assert manager.available_count == 5
    units.value = 10_000
    manager.notify_scale_changed()
    await settle()
    assert manager.total_count == 5  # capped


async def test_notify_scale_changed_shrinks_idle_only(make_manager: Factory) -> None:
    units = Units(40)
    manager = make_manager(max_pools=4, min_pools=1, units_per_pool=10, size_provider=units)
    await manager.start()
    assert manager.available_count == 4
    held = [await manager.acquire(owner=f"h{i}") for i in range(2)]

    units.value = 0
    manager.notify_scale_changed()
    await settle()
    # The two idle executors were shut down; the two leased ones were not touched.
    assert manager.available_count == 0
    assert manager.leased_count == 2
    assert all(lease.active for lease in held)
    assert await held[0].run(abs, -1) == 1
    assert retirements(manager) == {"shrink": 2}
    await wait_until(lambda: manager.total_count == 2, message="retired executors gone")

    # Released executors above the target are retired instead of kept idle.
    await held[0].release()
    await held[1].release()
    await wait_until(lambda: manager.total_count == 1, message="back to min_pools")
    assert manager.available_count == 1
    assert retirements(manager) == {"shrink": 3}


async def test_release_keeps_the_last_needed_executor_while_another_retires(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=2, min_pools=1)
    await manager.start()
    a = await manager.acquire()
    b = await manager.acquire()  # created on demand above min_pools
    assert manager.stats()["counters"]["executors_created"] == 2
    await b.release()  # above the target: retired
    await a.release()  # the target is 1, and only a is live: a must stay
    assert retirements(manager) == {"shrink": 1}
    assert manager.available_count == 1
    lease = await manager.acquire(wait=False)
    await lease.release()
    await wait_until(lambda: manager.total_count == 1)
    assert manager.stats()["counters"]["executors_created"] == 2


async def test_rescale_does_not_shrink_below_target_because_of_retiring(
    make_manager: Factory,
) -> None:
    units = Units(20)
    manager = make_manager(max_pools=3, min_pools=1, units_per_pool=10, size_provider=units)
    await manager.start()
    assert manager.available_count == 2
    units.value = 10
    manager.notify_scale_changed()
    await settle(1)
    assert manager.available_count == 1
    # Before the shrunk executor is fully gone, another re-check keeps the target.
    manager.notify_scale_changed()
    await asyncio.sleep(0)
    assert manager.available_count == 1
    assert retirements(manager) == {"shrink": 1}


async def test_periodic_check_rescales_on_check_interval(
    make_manager: Factory, clock: ManualClock
) -> None:
    units = Units(10)
    manager = make_manager(
        max_pools=5, min_pools=1, units_per_pool=10, size_provider=units, check_interval=30
    )
    await manager.start()
    assert manager.total_count == 1
    units.value = 30
    clock.advance(29)
    await settle()
    assert manager.total_count == 1
    clock.advance(1)
    await settle()
    assert manager.total_count == 3
    units.value = 0
    clock.advance(30)
    await settle()
    assert manager.available_count == 1
    # And it keeps checking.
    units.value = 50
    clock.advance(30)
    await settle()
    assert manager.available_count == 5


async def test_periodic_check_stops_with_the_manager(
    make_manager: Factory, clock: ManualClock
) -> None:
    units = Units(10)
    manager = make_manager(max_pools=5, size_provider=units, units_per_pool=10, check_interval=5)
    await manager.start()
    await manager.stop()
    calls = units.calls
    clock.advance(100)
    assert units.calls == calls


async def test_notify_from_another_thread(make_manager: Factory) -> None:
    units = Units(0)
    manager = make_manager(max_pools=3, units_per_pool=1, size_provider=units)
    await manager.start()
    units.value = 3
    await asyncio.to_thread(manager.notify_scale_changed)
    await wait_until(lambda: manager.total_count == 3)


async def test_notify_before_start_is_harmless(make_manager: Factory) -> None:
    manager = make_manager(max_pools=3, size_provider=Units(30), units_per_pool=10)
    manager.notify_scale_changed()
    assert manager.total_count == 0
    await manager.start()
    assert manager.total_count == 3


async def test_acquire_creates_beyond_target_up_to_max(make_manager: Factory) -> None:
    manager = make_manager(max_pools=3, min_pools=1)
    await manager.start()
    leases = [await manager.acquire(wait=False) for _ in range(3)]
    assert manager.total_count == 3
    assert manager.desired_executor_count() == 1
    for lease in leases:
        await lease.release()
    await wait_until(lambda: manager.total_count == 1)
    assert manager.available_count == 1
