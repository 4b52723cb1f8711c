"""Property-based checks of the local core's invariants under random interleavings.

Hypothesis drives random sequences of acquires (waiting, fail-fast, with
timeouts), releases, cancellations, clock advances and capacity changes
against a manager on a ManualClock whose embedded coordinator has a small
capacity. After every step, and at the end, the invariants must hold:

* live global slots never exceed the capacity, and live leases never exceed
  ``max_pools`` (the cap holds whatever the interleaving);
* executors (idle + busy + retiring) never exceed ``max_pools``;
* once everything is released or cancelled and time has passed, nothing is
  held, nobody waits, and every executor is back (no leaked slot).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leasepool import (
    ExecutorLease,
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeaseUnavailableError,
)
from leasepool.testing import ManualClock

MAX_POOLS = 3

operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from([None, 0.0, 1.0, 5.0])),
        st.tuples(st.just("acquire_nowait"), st.none()),
        st.tuples(st.just("release"), st.integers(0, 20)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 2.0, 7.0, 40.0])),
        st.tuples(st.just("capacity"), st.integers(1, 4)),
    ),
    max_size=40,
)


@dataclass
class Run:
    manager: LeasedExecutorManager
    coordinator: InMemoryCoordinator
    clock: ManualClock
    pending: list[asyncio.Task[ExecutorLease]] = field(default_factory=list)
    leases: list[ExecutorLease] = field(default_factory=list)
    # Shrinking capacity never revokes: until those leases end, what is held
    # may exceed the new capacity, but never what was held at the shrink.
    high_water_at_shrink: int = 0


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def check_invariants(run: Run) -> None:
    stats = run.manager.stats()
    held = run.coordinator.statistics()["held"]
    capacity = run.coordinator.capacity
    assert capacity is not None
    live = len(stats["leases"])
    assert live <= MAX_POOLS
    assert held <= max(capacity, run.high_water_at_shrink)
    assert stats["total"] <= MAX_POOLS


async def step(run: Run, op: str, arg: float | int | None) -> None:
    manager = run.manager
    if op == "acquire":
        run.pending.append(asyncio.ensure_future(manager.acquire(timeout=arg)))
    elif op == "acquire_nowait":
        with contextlib.suppress(LeaseUnavailableError):
            run.leases.append(await manager.acquire(wait=False))
    elif op == "release" and run.leases:
        lease = run.leases.pop(int(arg or 0) % len(run.leases))
        await lease.release()
    elif op == "cancel" and run.pending:
        run.pending[int(arg or 0) % len(run.pending)].cancel()
    elif op == "advance":
        run.clock.advance(float(arg or 0))
    elif op == "capacity":
        held = int(run.coordinator.statistics()["held"])  # type: ignore[call-overload]
        run.high_water_at_shrink = max(held, run.high_water_at_shrink)
        await run.coordinator.set_capacity(int(arg or 1))
    await settle()
    for task in [t for t in run.pending if t.done()]:
        run.pending.remove(task)
        if not task.cancelled() and task.exception() is None:
            run.leases.append(task.result())
    check_invariants(run)


async def scenario(ops: list[tuple[str, float | int | None]]) -> None:
    clock = ManualClock()
    coordinator = InMemoryCoordinator(capacity=2, pool="property")
    manager = LeasedExecutorManager(
        max_pools=MAX_POOLS,
        workers_per_pool=1,
        default_lease_seconds=10.0,
        lease_grace_seconds=5.0,
        coordinator=coordinator,
        clock=clock,
    )
    await manager.start()
    run = Run(manager, coordinator, clock)
    try:
        for op, arg in ops:
            await step(run, op, arg)
        for task in run.pending:
            task.cancel()
        await settle()
        for lease in run.leases:
            await lease.release()
        clock.advance(100.0)  # past every hard expiry
        await settle()
        assert coordinator.statistics()["held"] == 0
        assert coordinator.statistics()["waiting"] == 0
        stats = manager.stats()
        assert stats["leases"] == []
        assert stats["waiting"] == 0
        assert stats["leased"] == 0, "an executor leaked"
    finally:
        await manager.stop()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operations)
def test_random_interleavings_keep_the_cap_and_leak_nothing(
    ops: list[tuple[str, float | int | None]],
) -> None:
    asyncio.run(scenario(ops))
