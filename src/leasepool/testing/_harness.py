"""The harness under :mod:`leasepool.testing.contract`: builds coordinators, moves time.

Invariants:

* Every contract test runs in an event loop of its own (``asyncio.run``), so the
  suite needs pytest and nothing else: no asyncio plugin, whatever its mode.
* The coordinator factory is called inside that loop, and every coordinator the
  harness started is closed before the loop ends, even when the test fails.
* On manual time the harness owns a :class:`~leasepool.testing.ManualClock` and time
  moves only in :meth:`Harness.pass_time`; on real time it sleeps, and every wait
  for something to happen is bounded by ``eventually_seconds``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias

from leasepool._clock import MONOTONIC_CLOCK, Clock
from leasepool._coordinator import Coordinator, Grant, GrantRequest, PoolStatus, ReleaseOutcome
from leasepool._errors import WouldBlock
from leasepool.testing import ManualClock

CoordinatorFactory: TypeAlias = Callable[[int], "Coordinator | Awaitable[Coordinator]"]
"""``factory(capacity)``: a new, unstarted coordinator of one pool (or an awaitable of one)."""

_ids = itertools.count(1)


class Harness:
    """Builds started coordinators of one kind and moves time for them."""

    def __init__(
        self,
        factory: CoordinatorFactory,
        *,
        real_time: bool,
        unit: float,
        settle_seconds: float,
        eventually_seconds: float,
    ) -> None:
        self.factory = factory
        self.real_time = real_time
        self.unit = unit
        """Seconds of one 'time unit': leases in the tests last a few units."""
        self.settle_seconds = settle_seconds
        self.eventually_seconds = eventually_seconds
        self.manual: ManualClock | None = None if real_time else ManualClock()
        self.clock: Clock = self.manual if self.manual is not None else MONOTONIC_CLOCK
        self.lost: list[str] = []
        self._started: list[Coordinator] = []

    async def build(self, capacity: int) -> Coordinator:
        """A new coordinator from the factory, not started."""
        made = self.factory(capacity)
        coordinator = await made if inspect.isawaitable(made) else made
        if not isinstance(coordinator, Coordinator):
            raise TypeError(
                f"make_coordinator must return a leasepool.Coordinator, got {coordinator!r}"
            )
        return coordinator

    async def start(self, coordinator: Coordinator) -> Coordinator:
        """Start ``coordinator`` on the harness clock; :meth:`close` will close it."""
        await coordinator.start(clock=self.clock, on_lost=self.lost.append)
        self._started.append(coordinator)
        return coordinator

    async def make(self, capacity: int) -> Coordinator:
        """A started coordinator of a fresh pool of ``capacity`` slots."""
        return await self.start(await self.build(capacity))

    def request(self, lease_units: float = 100.0, grace_units: float = 0.0) -> GrantRequest:
        """A request with an id no other request of the run has."""
        n = next(_ids)
        return GrantRequest(
            f"lease-{n}-{time.monotonic_ns()}",
            f"owner-{n}",
            lease_units * self.unit,
            grace_units * self.unit,
        )

    def deadline(self, units: float) -> float:
        """``units`` from now, on the harness clock."""
        return self.clock.monotonic() + units * self.unit

    async def settle(self) -> None:
        """Let in-flight work (events, handoffs) finish."""
        if self.real_time:
            await asyncio.sleep(self.settle_seconds)
        else:
            for _ in range(10):
                await asyncio.sleep(0)

    async def pass_time(self, units: float) -> None:
        """Let ``units`` of time pass (advance the manual clock, or sleep)."""
        if self.manual is None:
            await asyncio.sleep(units * self.unit)
            return
        await self.settle()
        self.manual.advance(units * self.unit)
        await self.settle()

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds; fail with ``what`` if it does not in time."""
        await self.settle()
        deadline = time.monotonic() + self.eventually_seconds
        while not predicate():
            assert self.real_time and time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def eventually_async(self, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        """As :meth:`eventually`, for a predicate that must await (``status()``)."""
        await self.settle()
        deadline = time.monotonic() + self.eventually_seconds
        while not await predicate():
            assert self.real_time and time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close every coordinator this harness started, newest first."""
        while self._started:
            await self._started.pop().close()


async def start_waiter(
    h: Harness, coordinator: Coordinator, request: GrantRequest, deadline: float | None = None
) -> asyncio.Task[Grant]:
    """Start a waiting acquire and return once the pool counts it as waiting."""
    before = (await coordinator.status()).waiting
    task = asyncio.ensure_future(coordinator.acquire(request, wait=True, deadline=deadline))

    async def queued() -> bool:
        return task.done() or (await coordinator.status()).waiting > before

    await h.eventually_async(queued, "the waiter never queued")
    return task


def live_ids(status: PoolStatus) -> set[str]:
    """The ids of the live leases in ``status``."""
    return {record.lease_id for record in status.leases}


async def grant_either(h: Harness, coordinator: Coordinator, request: GrantRequest) -> Grant:
    """Grant as the manager does: ``acquire_nowait`` first, else ``acquire(wait=False)``."""
    try:
        return coordinator.acquire_nowait(request, now=h.clock.monotonic())
    except WouldBlock:
        return await coordinator.acquire(request, wait=False, deadline=None)


async def release_either(coordinator: Coordinator, lease_id: str) -> ReleaseOutcome:
    """Release as the manager does: ``release_nowait`` first, else ``release``."""
    try:
        return coordinator.release_nowait(lease_id)
    except WouldBlock:
        return await coordinator.release(lease_id)


ContractBody = Callable[..., Coroutine[Any, Any, None]]


def in_own_loop(body: ContractBody) -> Callable[..., None]:
    """Turn ``async def test_x(self, contract_harness, ...)`` into a plain pytest test.

    The returned function has the body's name, docstring and signature (so pytest
    still passes fixtures and parameters by name) and runs the body with
    ``asyncio.run``, closing the harness's coordinators in that same loop.
    """

    def test(self: object, contract_harness: Harness, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await body(self, contract_harness, **kwargs)
            finally:
                await contract_harness.close()

        asyncio.run(main())

    test.__name__ = body.__name__
    test.__qualname__ = body.__qualname__
    test.__doc__ = body.__doc__
    test.__module__ = body.__module__
    test.__signature__ = inspect.signature(body)  # type: ignore[attr-defined]
    return test


async def live_count(coordinator: Coordinator) -> int:
    """How many leases ``coordinator`` counts live now."""
    return len((await coordinator.status()).leases)
