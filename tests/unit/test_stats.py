"""stats(): the 0.1.3 keys, one entry per lease, and the counters we add."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from _unit_helpers import settle

from leasepool import LeasedExecutorManager, LeaseUnavailableError
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]

ORIGINAL_KEYS = {
    "backend",
    "desired",
    "max_pools",
    "min_pools",
    "available",
    "leased",
    "total",
    "workers_per_pool",
    "leases",
}
COUNTER_KEYS = {
    "acquires",
    "waits",
    "timeouts",
    "rejections",
    "soft_expiries",
    "hard_expiries",
    "renewals",
    "retirements",
    "kills",
}


def test_stats_before_start_has_the_original_keys() -> None:
    manager = LeasedExecutorManager(max_pools=3, min_pools=2, workers_per_pool=5)
    stats = manager.stats()
    assert stats.keys() >= ORIGINAL_KEYS
    assert stats["backend"] == "thread"
    assert (stats["max_pools"], stats["min_pools"], stats["desired"]) == (3, 2, 2)
    assert (stats["available"], stats["leased"], stats["total"]) == (0, 0, 0)
    assert stats["workers_per_pool"] == 5
    assert stats["leases"] == []
    assert stats["counters"].keys() >= COUNTER_KEYS
    assert all(v == 0 for k, v in stats["counters"].items() if k != "retirements")
    assert stats["counters"]["retirements"] == {}


async def test_stats_track_leases_and_properties(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(max_pools=3, min_pools=2, lease_grace_seconds=5)
    await manager.start()
    stats = manager.stats()
    assert (stats["available"], stats["leased"], stats["total"]) == (2, 0, 2)

    first = await manager.acquire(owner="one", lease_seconds=10)
    second = await manager.acquire(owner="two", lease_seconds=20)
    third = await manager.acquire(owner=None, lease_seconds=30)
    stats = manager.stats()
    assert (stats["available"], stats["leased"], stats["total"]) == (0, 3, 3)
    assert (manager.available_count, manager.leased_count, manager.total_count) == (0, 3, 3)
    assert isinstance(stats["leases"], list)
    assert [entry["lease_id"] for entry in stats["leases"]] == [
        first.lease_id,
        second.lease_id,
        third.lease_id,
    ]
    assert [entry["owner"] for entry in stats["leases"]] == ["one", "two", None]
    assert [entry["fencing_token"] for entry in stats["leases"]] == [
        first.fencing_token,
        second.fencing_token,
        third.fencing_token,
    ]
    assert stats["leases"][1]["seconds_until_soft_expiry"] == pytest.approx(20)
    assert stats["leases"][1]["seconds_until_hard_expiry"] == pytest.approx(25)

    await second.release()
    stats = manager.stats()
    assert [entry["owner"] for entry in stats["leases"]] == ["one", None]
    assert stats["leased"] == 2
    json.dumps(stats)  # a plain, serialisable snapshot


async def test_counters(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(max_pools=1, lease_grace_seconds=5)
    await manager.start()

    lease = await manager.acquire(lease_seconds=10)  # acquires 1
    with pytest.raises(LeaseUnavailableError):
        await manager.acquire(wait=False)  # rejections 1
    timed_out = asyncio.create_task(manager.acquire(timeout=1))  # waits 1
    await settle()
    clock.advance(1)  # timeouts 1
    with pytest.raises(TimeoutError):
        await timed_out
    await lease.renew(10)  # renewals 1
    waiter = asyncio.create_task(manager.acquire(lease_seconds=2))  # waits 2
    await settle()
    await lease.release()  # releases 1
    second = await waiter  # acquires 2
    clock.advance(2)  # soft expiry of second (and lease had soft at +10: released)
    clock.advance(5)  # hard expiry of second
    assert second.state == "expired"

    counters = manager.stats()["counters"]
    assert counters["acquires"] == 2
    assert counters["waits"] == 2
    assert counters["timeouts"] == 1
    assert counters["rejections"] == 1
    assert counters["releases"] == 1
    assert counters["renewals"] == 1
    assert counters["soft_expiries"] == 1
    assert counters["hard_expiries"] == 1
    assert counters["kills"] == 0
    assert counters["retirements"] == {}


async def test_stats_snapshot_is_a_copy(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    snapshot = manager.stats()
    snapshot["counters"]["acquires"] = 99
    snapshot["counters"]["retirements"]["made-up"] = 1
    snapshot["leases"].append({"lease_id": "fake"})
    fresh = manager.stats()
    assert fresh["counters"]["acquires"] == 0
    assert fresh["counters"]["retirements"] == {}
    assert fresh["leases"] == []


async def test_stats_report_waiting_callers(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    waiters = [asyncio.create_task(manager.acquire()) for _ in range(3)]
    await settle()
    assert manager.stats()["waiting"] == 3
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert manager.stats()["waiting"] == 0
    await lease.release()


async def test_stats_name_the_coordinator(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    coordinator = manager.stats()["coordinator"]
    assert coordinator["kind"] == "memory"
    assert coordinator["capacity"] is None


def test_process_backend_stats_before_start() -> None:
    manager = LeasedExecutorManager(backend="PROCESS", max_pools=2)
    assert manager.stats()["backend"] == "process"
    assert manager.backend.value == "process"


# -- the typed shapes (ManagerStats and friends) match what is returned -------------


def keys_of(typed: type) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)  # type: ignore[attr-defined]


async def test_stats_match_their_typed_dicts(make_manager: Factory) -> None:
    from leasepool import (
        CoordinatorStatistics,
        LeaseStats,
        ManagerCounters,
        ManagerStats,
        MemoryCoordinatorStatistics,
    )

    manager = make_manager(max_pools=2)
    await manager.start()
    lease = await manager.acquire(owner="typed")
    stats = manager.stats()
    # A plain dict at runtime, as in 0.1.3 (json-serialisable, no custom types).
    assert type(stats) is dict
    json.dumps(stats)
    assert set(stats) == keys_of(ManagerStats)
    assert set(stats["counters"]) == keys_of(ManagerCounters)
    assert [set(row) for row in stats["leases"]] == [keys_of(LeaseStats)]
    coordinator = stats["coordinator"]
    assert set(coordinator) == keys_of(MemoryCoordinatorStatistics)
    assert keys_of(CoordinatorStatistics) <= set(coordinator)
    assert coordinator["kind"] == "memory"
    assert (coordinator["held"], coordinator["grants"]) == (1, 1)
    await lease.release()
    assert manager.stats()["counters"]["releases"] == 1


async def test_redis_statistics_match_their_typed_dict() -> None:
    # statistics() does no I/O, so an unstarted coordinator (no server needed) answers.
    from leasepool import CoordinatorStatistics, RedisCoordinator, RedisCoordinatorStatistics

    coordinator = RedisCoordinator.from_url("redis://127.0.0.1:9", pool="typed", capacity=2)
    try:
        statistics = coordinator.statistics()
        assert type(statistics) is dict
        assert set(statistics) == keys_of(RedisCoordinatorStatistics)
        assert keys_of(CoordinatorStatistics) <= set(statistics)
        assert (statistics["kind"], statistics["pool"], statistics["capacity"]) == (
            "redis",
            "typed",
            2,
        )
    finally:
        await coordinator.close()
