"""One harness per coordinator kind, so the contract suite runs unchanged against each.

Memory runs on a :class:`ManualClock` (time moves only when the test says so, no
sleeping). Redis runs on real server time, so its time unit is short and every
wait has a wide margin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from leasepool import Coordinator, Grant, GrantRequest, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK, Clock
from leasepool._memory import InMemoryCoordinator
from leasepool.testing import ManualClock


class Harness:
    """Builds started coordinators of one kind and moves time for them."""

    kind: str
    clock: Clock
    unit: float
    """Seconds of one 'time unit' in the tests: leases last a few units."""

    def __init__(self) -> None:
        self.lost: list[str] = []
        self._started: list[Coordinator] = []
        self._seq = 0

    def _build(self, capacity: int) -> Coordinator:
        raise NotImplementedError

    async def make(self, capacity: int) -> Coordinator:
        coordinator = self._build(capacity)
        await coordinator.start(clock=self.clock, on_lost=self.lost.append)
        self._started.append(coordinator)
        return coordinator

    def request(self, lease_units: float = 100.0, grace_units: float = 0.0) -> GrantRequest:
        self._seq += 1
        return GrantRequest(
            f"lease-{self._seq}-{time.monotonic_ns()}",
            f"owner-{self._seq}",
            lease_units * self.unit,
            grace_units * self.unit,
        )

    def deadline(self, units: float) -> float:
        return self.clock.monotonic() + units * self.unit

    async def pass_time(self, units: float) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        """Let in-flight work (events, handoffs) finish."""
        raise NotImplementedError

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds (memory: after settling; Redis: within 5 s)."""
        raise NotImplementedError

    async def close(self) -> None:
        for coordinator in reversed(self._started):
            await coordinator.close()


class MemoryHarness(Harness):
    kind = "memory"
    unit = 10.0

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.manual = ManualClock()
        self.clock = self.manual

    def _build(self, capacity: int) -> Coordinator:
        return InMemoryCoordinator(capacity=capacity, pool=self.pool)

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    async def pass_time(self, units: float) -> None:
        await self.settle()
        self.manual.advance(units * self.unit)
        await self.settle()

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        await self.settle()
        assert predicate(), what


class RedisHarness(Harness):
    kind = "redis"
    unit = 0.25
    clock = MONOTONIC_CLOCK

    def __init__(self, url: str, pool: str) -> None:
        super().__init__()
        self.url = url
        self.pool = pool

    def _build(self, capacity: int) -> Coordinator:
        return RedisCoordinator.from_url(self.url, pool=self.pool, capacity=capacity)

    async def settle(self) -> None:
        await asyncio.sleep(0.05)

    async def pass_time(self, units: float) -> None:
        await asyncio.sleep(units * self.unit)

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 5.0
        while not predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def harness(request: pytest.FixtureRequest, pool_name: str) -> AsyncIterator[Harness]:
    h: Harness
    if request.param == "memory":
        h = MemoryHarness(pool_name)
    else:
        h = RedisHarness(request.getfixturevalue("redis_url"), pool_name)
    try:
        yield h
    finally:
        await h.close()


async def grant_task(
    coordinator: Coordinator, request: GrantRequest, deadline: float | None = None
) -> asyncio.Task[Grant]:
    """Start a waiting acquire and let it reach the queue."""
    task = asyncio.ensure_future(coordinator.acquire(request, wait=True, deadline=deadline))
    await asyncio.sleep(0)
    return task


def live_ids(status: Any) -> set[str]:
    return {record.lease_id for record in status.leases}
