"""stop() while work runs: a global slot is freed only when no work of its lease can still run.

Two managers share one ``InMemoryCoordinator`` of capacity 1, the way two hosts
share a Redis pool: manager ``a`` holds the slot and has work running when it
is stopped, manager ``b`` waits for the slot. The work records its own end
time; ``b``'s grant must come after it. Where the stop bound matters, the
managers run on a ``ManualClock`` and the test moves time itself. The work is
real (threads and worker processes), released by the test through an event or
a file, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest
from _unit_helpers import settle, wait_until

from leasepool import (
    Clock,
    Coordinator,
    Grant,
    GrantRequest,
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    PoolStatus,
    ReleaseOutcome,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]

# Process work gives up on its own after this long, so a failing test never leaves
# a worker behind for long.
WORK_LIMIT = 20.0


# -- work (module level, so worker processes can unpickle it) ----------------------------


def wait_for_file(go: str, pid_file: str) -> float:
    """Write our pid, run until ``go`` exists; return the end time (wall clock)."""
    Path(pid_file).write_text(str(os.getpid()))
    deadline = time.monotonic() + WORK_LIMIT
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    return time.time()


def wait_for_event(gate: threading.Event, started: threading.Event) -> float:
    started.set()
    gate.wait(WORK_LIMIT)
    return time.time()


def pid_exists(pid: int) -> bool:
    """True while ``pid`` exists, even as an unreaped zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class FailFirstInitializer:
    """A ThreadPoolExecutor initializer that raises on its first call only."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("initializer failed")


class SlowGrants(Coordinator):
    """An in-memory coordinator whose grants arrive only when the test opens ``gate``.

    It models a remote coordinator with a call in flight (one round trip of a
    ``wait=False`` acquire, which stop() does not cancel).
    """

    def __init__(self) -> None:
        self.inner = InMemoryCoordinator(capacity=1, pool="slow")
        self.gate = asyncio.Event()

    @property
    def pool(self) -> str:
        return self.inner.pool

    async def start(self, *, clock: Clock, on_lost: Callable[[str], None]) -> None:
        await self.inner.start(clock=clock, on_lost=on_lost)

    async def close(self) -> None:
        await self.inner.close()

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        await self.gate.wait()
        return await self.inner.acquire(request, wait=wait, deadline=deadline)

    async def release(self, lease_id: str) -> ReleaseOutcome:
        return await self.inner.release(lease_id)

    async def renew(self, renewals: Any) -> dict[str, Grant | None]:
        return await self.inner.renew(renewals)

    async def revoke(self, lease_id: str) -> bool:
        return await self.inner.revoke(lease_id)

    async def set_capacity(self, capacity: int) -> None:
        await self.inner.set_capacity(capacity)

    async def status(self) -> PoolStatus:
        return await self.inner.status()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def pair(
    make_manager: Factory,
) -> AsyncIterator[Callable[..., Any]]:
    """Make (coordinator, a, b): two started managers sharing a capacity-1 coordinator."""

    async def build(**kwargs: Any) -> tuple[InMemoryCoordinator, Any, Any]:
        coordinator = InMemoryCoordinator(capacity=1, pool="stop-drain")
        kwargs.setdefault("workers_per_pool", 2)
        a = make_manager(coordinator=coordinator, **kwargs)
        b = make_manager(coordinator=coordinator, **kwargs)
        await a.start()
        await b.start()
        return coordinator, a, b

    yield build


@pytest.fixture
def go_file(tmp_path: Path) -> Iterator[Path]:
    """The file that lets process work finish; always created at teardown."""
    go = tmp_path / "go"
    yield go
    go.touch()


async def holders(coordinator: InMemoryCoordinator) -> list[str]:
    return [lease.owner for lease in (await coordinator.status()).leases]


async def acquired_at(manager: LeasedExecutorManager, owner: str) -> tuple[Any, float]:
    lease = await manager.acquire(owner=owner)
    return lease, time.time()


# -- draining: the slot is freed after the work's own end ---------------------------------


async def test_stop_waits_for_running_thread_work_before_freeing_the_slot(
    pair: Callable[..., Any], gate: threading.Event
) -> None:
    coordinator, a, b = await pair()
    lease = await a.acquire(owner="a")
    started = threading.Event()
    running = asyncio.create_task(lease.run(wait_for_event, gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    waiter = asyncio.create_task(acquired_at(b, "b"))
    stopping = asyncio.create_task(a.stop())
    await asyncio.sleep(0.2)  # real time for a wrong stop() to free the slot
    assert not stopping.done()
    assert not waiter.done()
    assert await holders(coordinator) == ["a"]  # the slot is still a's
    with pytest.raises(LeasePoolNotStartedError):
        await a.acquire(wait=False)  # stopping: no new leases
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(abs, 1)  # and no new work

    gate.set()
    work_end = await asyncio.wait_for(running, 10)
    await asyncio.wait_for(stopping, 10)
    b_lease, b_granted = await asyncio.wait_for(waiter, 10)
    assert work_end <= b_granted
    assert await holders(coordinator) == ["b"]
    await b_lease.release()


async def test_stop_waits_for_running_process_work_before_freeing_the_slot(
    pair: Callable[..., Any], tmp_path: Path, go_file: Path
) -> None:
    coordinator, a, b = await pair(backend="process", workers_per_pool=1)
    lease = await a.acquire(owner="a")
    pid_file = tmp_path / "pid"
    running = asyncio.create_task(lease.run(wait_for_file, str(go_file), str(pid_file)))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 20, "started")
    waiter = asyncio.create_task(acquired_at(b, "b"))
    stopping = asyncio.create_task(a.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()
    assert not waiter.done()
    assert await holders(coordinator) == ["a"]

    await asyncio.to_thread(go_file.touch)
    work_end = await asyncio.wait_for(running, 20)
    await asyncio.wait_for(stopping, 30)
    b_lease, b_granted = await asyncio.wait_for(waiter, 20)
    assert work_end <= b_granted
    # stop() returned after its worker had exited and been reaped.
    assert not pid_exists(int(pid_file.read_text()))
    await b_lease.release()


async def test_a_released_lease_still_draining_keeps_its_slot_through_stop(
    pair: Callable[..., Any], gate: threading.Event
) -> None:
    coordinator, a, b = await pair()
    lease = await a.acquire(owner="a")
    started = threading.Event()
    future = lease.executor.submit(wait_for_event, gate, started)
    assert await asyncio.to_thread(started.wait, 10)
    await lease.release()  # draining: the slot waits for the work
    waiter = asyncio.create_task(acquired_at(b, "b"))
    stopping = asyncio.create_task(a.stop())
    await asyncio.sleep(0.2)
    assert not waiter.done()
    assert await holders(coordinator) == ["a"]
    gate.set()
    work_end = await asyncio.wrap_future(future)
    await asyncio.wait_for(stopping, 10)
    b_lease, b_granted = await asyncio.wait_for(waiter, 10)
    assert work_end <= b_granted
    await b_lease.release()


async def test_queued_work_is_cancelled_and_running_work_finishes(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager(workers_per_pool=1)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    running = asyncio.create_task(lease.run(wait_for_event, gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    queued = asyncio.create_task(lease.run(abs, -1))  # behind the only worker
    await settle()
    stopping = asyncio.create_task(manager.stop())
    with pytest.raises(LeaseExpiredError, match="released"):
        await asyncio.wait_for(queued, 10)
    assert not stopping.done()
    gate.set()
    assert isinstance(await asyncio.wait_for(running, 10), float)
    await asyncio.wait_for(stopping, 10)


# -- the bound -------------------------------------------------------------------------------


async def test_process_work_at_the_bound_is_killed_and_reaped_before_the_slot_is_freed(
    pair: Callable[..., Any], clock: ManualClock, tmp_path: Path, go_file: Path
) -> None:
    _, a, b = await pair(backend="process", workers_per_pool=1, stop_timeout=5)
    lease = await a.acquire(owner="a", lease_seconds=100)
    pid_file = tmp_path / "pid"
    running = asyncio.create_task(lease.run(wait_for_file, str(go_file), str(pid_file)))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 20, "started")
    pid = int(pid_file.read_text())
    seen_at_grant: list[bool] = []

    async def b_acquires() -> Any:
        granted = await b.acquire(owner="b")
        seen_at_grant.append(pid_exists(pid))  # at the very moment b gets the slot
        return granted

    waiter = asyncio.create_task(b_acquires())
    stopping = asyncio.create_task(a.stop())
    await asyncio.sleep(0.2)
    clock.advance(4.9)
    await asyncio.sleep(0.2)
    assert not stopping.done() and not waiter.done()
    assert pid_exists(pid)
    clock.advance(0.1)  # the bound: kill
    await asyncio.wait_for(stopping, 30)
    b_lease = await asyncio.wait_for(waiter, 10)
    assert seen_at_grant == [False]  # the worker was dead and reaped before the release
    with pytest.raises(LeaseExpiredError, match="stop"):
        await running
    assert a.stats()["counters"]["kills"] == 1
    await b_lease.release()


async def test_thread_work_at_the_bound_keeps_its_slot_until_hard_expiry(
    pair: Callable[..., Any],
    clock: ManualClock,
    gate: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    coordinator, a, b = await pair(stop_timeout=5, lease_grace_seconds=0)
    lease = await a.acquire(owner="a", lease_seconds=60)
    started = threading.Event()
    running = asyncio.create_task(lease.run(wait_for_event, gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    stopping = asyncio.create_task(a.stop())
    await settle()
    assert not stopping.done()
    clock.advance(5)  # the bound: threads cannot be killed
    await asyncio.wait_for(stopping, 10)  # stop() returns at the bound
    assert lease.lease_id in caplog.text and "stays taken" in caplog.text
    # The slot is kept: nobody else gets it while the thread may still run.
    assert await holders(coordinator) == ["a"]
    with pytest.raises(LeaseUnavailableError):
        await b.acquire(wait=False)
    waiter = asyncio.create_task(b.acquire(owner="b"))
    clock.advance(54.9)
    await settle()
    assert not waiter.done()
    clock.advance(0.1)  # its hard expiry, on the coordinator: now the slot is free
    b_lease = await asyncio.wait_for(waiter, 10)
    assert await holders(coordinator) == ["b"]
    gate.set()
    await asyncio.wait_for(running, 10)
    await b_lease.release()


async def test_stop_timeout_zero_does_not_wait(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager(stop_timeout=0)
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    running = asyncio.create_task(lease.run(wait_for_event, gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.wait_for(manager.stop(), 10)
    assert (await manager.coordinator.status()).leases != ()  # kept: the thread runs on
    gate.set()
    await asyncio.wait_for(running, 10)


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (float("inf"), ValueError), (float("nan"), ValueError), ("5", TypeError)],
)
def test_stop_timeout_is_validated(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="stop_timeout"):
        LeasedExecutorManager(max_pools=1, stop_timeout=value)  # type: ignore[arg-type]


# -- lifecycle while draining ----------------------------------------------------------------


async def test_concurrent_stops_both_wait_for_the_drain_and_restart_works(
    make_manager: Factory, gate: threading.Event
) -> None:
    manager = make_manager()
    await manager.start()
    lease = await manager.acquire()
    started = threading.Event()
    running = asyncio.create_task(lease.run(wait_for_event, gate, started))
    assert await asyncio.to_thread(started.wait, 10)
    first = asyncio.create_task(manager.stop())
    second = asyncio.create_task(manager.stop())
    await asyncio.sleep(0.1)
    assert not first.done() and not second.done()
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert isinstance(await asyncio.wait_for(running, 10), float)
    await manager.start()
    async with await manager.acquire() as again:
        assert await again.run(abs, -3) == 3


async def test_a_grant_that_arrives_after_stop_began_is_given_back(
    make_manager: Factory,
) -> None:
    coordinator = SlowGrants()
    manager = make_manager(coordinator=coordinator)
    await manager.start()
    acquiring = asyncio.create_task(manager.acquire(wait=False))
    await settle()
    stopping = asyncio.create_task(manager.stop())
    await settle()
    coordinator.gate.set()  # the grant comes back while stop() runs
    with pytest.raises(LeasePoolNotStartedError):
        await asyncio.wait_for(acquiring, 10)
    await asyncio.wait_for(stopping, 10)
    assert (await coordinator.inner.status()).leases == ()  # no slot left behind


# -- a broken executor retires at once -------------------------------------------------------


async def test_executor_broken_by_its_initializer_retires_at_once_and_is_replaced(
    make_manager: Factory,
) -> None:
    manager = make_manager(max_pools=1, workers_per_pool=1, initializer=FailFirstInitializer())
    await manager.start()
    broken = await manager.acquire(owner="broken")
    with pytest.raises(BrokenThreadPool):
        await broken.run(abs, 1)
    # Still held (its global slot is the holder's), but its executor is no longer leased:
    # it is retired now and replaced, without waiting for the release.
    await wait_until(lambda: manager.available_count == 1, 10, "replacement made")
    assert manager.leased_count == 0
    assert manager.stats()["counters"]["retirements"] == {"broken": 1}
    assert [entry["owner"] for entry in manager.stats()["leases"]] == ["broken"]
    fresh = await manager.acquire(wait=False)  # max_pools=1: only the replacement fits
    assert await fresh.run(abs, -2) == 2
    with pytest.raises(BrokenThreadPool):
        broken.executor.submit(abs, 1)  # the broken one still says why
    await fresh.release()
    await broken.release()
    assert manager.stats()["leases"] == []
