"""Soft and hard expiry, renew, and the injectable clock. No sleeping: ManualClock."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable

import pytest
from _unit_helpers import StalledClock, settle, wait_until

from leasepool import (
    ExecutorLease,
    LeasedExecutorManager,
    LeaseExpiredError,
    ReleaseOutcome,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


def soft_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "soft expiry" in r.getMessage()
    ]


def hard_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "passed its hard expiry" in r.getMessage()
    ]


# -- soft expiry ----------------------------------------------------------------------


async def test_soft_expiry_logs_counts_and_keeps_the_lease(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    manager = make_manager(lease_grace_seconds=10)
    await manager.start()
    lease = await manager.acquire(lease_seconds=30, owner="slow-job")

    clock.advance(29.9)
    assert soft_warnings(caplog) == []
    assert manager.stats()["counters"]["soft_expiries"] == 0

    clock.advance(0.1)
    (record,) = soft_warnings(caplog)
    assert lease.lease_id in record.getMessage()
    assert "slow-job" in record.getMessage()
    assert record.name == "leasepool"
    assert manager.stats()["counters"]["soft_expiries"] == 1
    # Soft expiry is a warning only: the lease still works until the hard expiry.
    assert lease.active
    assert await lease.run(pow, 2, 2) == 4
    assert manager.stats()["counters"]["hard_expiries"] == 0


async def test_soft_expiry_fires_once(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    manager = make_manager(lease_grace_seconds=100)
    await manager.start()
    await manager.acquire(lease_seconds=5)
    for _ in range(10):
        clock.advance(5)
    assert len(soft_warnings(caplog)) == 1
    assert manager.stats()["counters"]["soft_expiries"] == 1


async def test_soft_expiry_uses_the_managers_logger(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("my.app.pool")
    caplog.set_level(logging.WARNING, logger="my.app.pool")
    manager = make_manager(logger=logger)
    await manager.start()
    await manager.acquire(lease_seconds=1)
    clock.advance(1)
    assert [r.name for r in soft_warnings(caplog)] == ["my.app.pool"]


async def test_sync_soft_expiry_callback(make_manager: Factory, clock: ManualClock) -> None:
    seen: list[tuple[str, bool]] = []

    def on_soft(lease: ExecutorLease) -> None:
        seen.append((lease.lease_id, lease.active))

    manager = make_manager(on_soft_expiry=on_soft)
    await manager.start()
    lease = await manager.acquire(lease_seconds=2)
    clock.advance(1.9)
    assert seen == []
    clock.advance(0.1)
    assert seen == [(lease.lease_id, True)]
    clock.advance(100)
    assert len(seen) == 1


async def test_async_soft_expiry_callback(make_manager: Factory, clock: ManualClock) -> None:
    seen: list[str] = []

    async def on_soft(lease: ExecutorLease) -> None:
        await asyncio.sleep(0)
        seen.append(lease.lease_id)

    manager = make_manager(on_soft_expiry=on_soft)
    await manager.start()
    lease = await manager.acquire(lease_seconds=2)
    clock.advance(2)
    await settle()
    assert seen == [lease.lease_id]


async def test_failing_sync_callback_is_logged_and_harmless(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def on_soft(lease: ExecutorLease) -> None:
        raise ValueError("callback bug")

    manager = make_manager(on_soft_expiry=on_soft)
    await manager.start()
    lease = await manager.acquire(lease_seconds=2)
    clock.advance(2)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "on_soft_expiry" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
    assert lease.active
    assert manager.stats()["counters"]["soft_expiries"] == 1


async def test_failing_async_callback_is_logged_and_harmless(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_soft(lease: ExecutorLease) -> None:
        raise ValueError("async callback bug")

    manager = make_manager(on_soft_expiry=on_soft)
    await manager.start()
    lease = await manager.acquire(lease_seconds=2)
    clock.advance(2)
    await settle()
    errors = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "on_soft_expiry" in r.getMessage()
    ]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
    assert lease.active
    await lease.release()


# -- hard expiry ----------------------------------------------------------------------


async def test_hard_expiry_rejects_new_work(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    manager = make_manager(lease_grace_seconds=5)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10, owner="late")
    executor = lease.executor
    clock.advance(14.9)
    assert lease.active
    assert executor.submit(abs, -1).result(timeout=10) == 1

    clock.advance(0.1)
    assert not lease.active
    assert lease.state == "expired"
    with pytest.raises(LeaseExpiredError, match="hard expiry"):
        executor.submit(abs, -1)
    with pytest.raises(LeaseExpiredError):
        await lease.run(abs, -1)
    (record,) = hard_warnings(caplog)
    assert lease.lease_id in record.getMessage()
    stats = manager.stats()
    assert stats["counters"]["hard_expiries"] == 1
    assert stats["leases"] == []
    # The executor (idle: nothing running) went back to the pool.
    assert (stats["available"], stats["leased"]) == (1, 0)
    assert await lease.release() is ReleaseOutcome.EXPIRED
    assert manager.stats()["counters"]["releases"] == 0


async def test_expired_executor_is_leasable_again(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=1, lease_grace_seconds=1)
    await manager.start()
    old = await manager.acquire(lease_seconds=1)
    waiter = asyncio.create_task(manager.acquire(owner="next"))
    await settle()
    clock.advance(2)
    new = await waiter
    assert new.owner == "next"
    assert new.fencing_token > old.fencing_token
    assert await new.run(len, "ab") == 2
    with pytest.raises(LeaseExpiredError):
        old.executor.submit(len, "ab")


async def test_lazy_deadline_check_on_submit_when_timer_did_not_run(
    make_manager: Factory,
) -> None:
    stalled = StalledClock()
    manager = make_manager(clock=stalled, lease_grace_seconds=5)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    stalled.now += 14.999
    assert lease.executor.submit(abs, -2).result(timeout=10) == 2
    stalled.now += 0.001  # exactly the hard deadline; no timer has run
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(abs, -2)
    assert lease.state == "expired"
    assert manager.stats()["counters"]["hard_expiries"] == 1
    assert manager.available_count == 1


async def test_lazy_deadline_check_on_run(make_manager: Factory) -> None:
    stalled = StalledClock()
    manager = make_manager(clock=stalled, lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    stalled.now += 10
    with pytest.raises(LeaseExpiredError):
        await lease.run(abs, -2)
    assert lease.state == "expired"


async def test_lazy_deadline_check_from_another_thread(make_manager: Factory) -> None:
    stalled = StalledClock()
    manager = make_manager(clock=stalled, lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    stalled.now += 11

    def submit() -> BaseException | None:
        try:
            lease.executor.submit(abs, -2)
        except BaseException as exc:
            return exc
        return None

    error = await asyncio.to_thread(submit)
    assert isinstance(error, LeaseExpiredError)
    await settle()  # the revocation is applied on the loop
    assert lease.state == "expired"
    assert manager.available_count == 1


async def test_release_after_deadline_reports_expired(make_manager: Factory) -> None:
    stalled = StalledClock()
    manager = make_manager(clock=stalled, lease_grace_seconds=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=1)
    stalled.now += 2
    assert await lease.release() is ReleaseOutcome.EXPIRED
    assert lease.state == "expired"
    assert manager.available_count == 1


async def test_zero_grace_expires_hard_at_lease_seconds(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    called: list[str] = []
    manager = make_manager(lease_grace_seconds=0, on_soft_expiry=lambda lease: called.append("s"))
    await manager.start()
    lease = await manager.acquire(lease_seconds=3)
    assert lease.grace_seconds == 0.0
    assert lease.soft_expires_at == lease.hard_expires_at
    clock.advance(2.999)
    assert lease.active
    clock.advance(0.001)
    assert lease.state == "expired"
    counters = manager.stats()["counters"]
    assert (counters["soft_expiries"], counters["hard_expiries"]) == (1, 1)
    assert called == ["s"]
    assert len(soft_warnings(caplog)) == 1
    assert len(hard_warnings(caplog)) == 1


async def test_expiries_follow_each_leases_own_deadline(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(max_pools=3, lease_grace_seconds=0)
    await manager.start()
    short = await manager.acquire(lease_seconds=5)
    long = await manager.acquire(lease_seconds=50)
    middle = await manager.acquire(lease_seconds=20)
    clock.advance(5)
    assert [short.active, middle.active, long.active] == [False, True, True]
    clock.advance(15)
    assert [middle.active, long.active] == [False, True]
    clock.advance(30)
    assert not long.active
    assert manager.stats()["counters"]["hard_expiries"] == 3


async def test_queued_work_is_cancelled_at_hard_expiry_running_work_finishes(
    make_manager: Factory, clock: ManualClock, gate: threading.Event
) -> None:
    manager = make_manager(max_pools=1, workers_per_pool=1, lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=5)
    started = threading.Event()

    def blocking() -> str:
        started.set()
        gate.wait(30)
        return "finished"

    running = lease.executor.submit(blocking)
    queued = lease.executor.submit(abs, -1)
    assert await asyncio.to_thread(started.wait, 10)
    clock.advance(5)
    assert lease.state == "expired"
    assert queued.cancelled()
    # Still draining: the executor is not back yet.
    assert manager.available_count == 0
    assert manager.leased_count == 1
    gate.set()
    assert await asyncio.wrap_future(running) == "finished"
    await wait_until(lambda: manager.available_count == 1, message="executor returned")


async def test_timers_after_release_do_not_fire(
    make_manager: Factory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool")
    called: list[object] = []
    manager = make_manager(max_pools=2, on_soft_expiry=called.append)
    await manager.start()
    lease = await manager.acquire(lease_seconds=5)
    await lease.release()
    clock.advance(1000)
    await settle()
    assert called == []
    assert soft_warnings(caplog) == [] and hard_warnings(caplog) == []
    counters = manager.stats()["counters"]
    assert (counters["soft_expiries"], counters["hard_expiries"]) == (0, 0)
    assert lease.state == "released"


async def test_timers_do_not_fire_after_stop(make_manager: Factory, clock: ManualClock) -> None:
    called: list[object] = []
    manager = make_manager(on_soft_expiry=called.append)
    await manager.start()
    await manager.acquire(lease_seconds=5)
    await manager.stop()
    clock.advance(1000)
    assert called == []
    assert manager.stats()["counters"]["soft_expiries"] == 0


async def test_many_released_leases_leave_no_work_for_the_timer(
    make_manager: Factory, clock: ManualClock
) -> None:
    called: list[object] = []
    manager = make_manager(max_pools=1, on_soft_expiry=called.append)
    await manager.start()
    for _ in range(300):
        lease = await manager.acquire(lease_seconds=5)
        await lease.release()
    keep = await manager.acquire(lease_seconds=5)
    clock.advance(5)
    assert called == [keep]


async def test_stats_report_time_left(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(lease_grace_seconds=5)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10, owner="o")
    clock.advance(4)
    (entry,) = manager.stats()["leases"]
    assert entry["lease_id"] == lease.lease_id
    assert entry["owner"] == "o"
    assert entry["seconds_until_soft_expiry"] == pytest.approx(6)
    assert entry["seconds_until_hard_expiry"] == pytest.approx(11)
    assert lease.seconds_left == pytest.approx(11)


# -- renew -----------------------------------------------------------------------------


async def test_renew_extends_from_now(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(lease_grace_seconds=5)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    clock.advance(8)
    await lease.renew(30)
    now = clock.monotonic()
    assert lease.soft_expires_at == now + 30
    assert lease.hard_expires_at == now + 35
    assert manager.stats()["counters"]["renewals"] == 1
    clock.advance(34.9)  # well past the original hard expiry
    assert lease.active
    assert await lease.run(abs, -3) == 3
    clock.advance(0.1)
    assert lease.state == "expired"


async def test_renew_defaults_to_lease_seconds(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    clock.advance(6)
    await lease.renew()
    assert lease.hard_expires_at == clock.monotonic() + 10


async def test_renew_never_shortens(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(lease_grace_seconds=5)
    await manager.start()
    lease = await manager.acquire(lease_seconds=100)
    soft, hard = lease.soft_expires_at, lease.hard_expires_at
    await lease.renew(1)
    assert (lease.soft_expires_at, lease.hard_expires_at) == (soft, hard)
    clock.advance(50)
    assert lease.active


async def test_renew_after_soft_expiry_extends(make_manager: Factory, clock: ManualClock) -> None:
    called: list[object] = []
    manager = make_manager(lease_grace_seconds=10, on_soft_expiry=called.append)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    clock.advance(12)  # soft expired, in grace
    assert called == [lease]
    await lease.renew(10)
    clock.advance(9)
    assert lease.active
    assert len(called) == 1
    clock.advance(1)  # the renewed soft deadline warns again
    assert len(called) == 2
    assert lease.active


async def test_renew_never_revives_an_expired_lease(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(lease_grace_seconds=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=1)
    clock.advance(2)
    assert lease.state == "expired"
    with pytest.raises(LeaseExpiredError):
        await lease.renew(100)
    assert lease.state == "expired"
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(abs, 1)
    assert manager.stats()["counters"]["renewals"] == 0


async def test_renew_at_the_deadline_before_the_timer_ran(make_manager: Factory) -> None:
    stalled = StalledClock()
    manager = make_manager(clock=stalled, lease_grace_seconds=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=1)
    hard = lease.hard_expires_at
    stalled.now += 2
    with pytest.raises(LeaseExpiredError):
        await lease.renew(100)
    assert lease.state == "expired"
    assert lease.hard_expires_at == hard


async def test_renew_after_release_raises(make_manager: Factory) -> None:
    manager = make_manager()
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    await lease.release()
    with pytest.raises(LeaseExpiredError, match="released"):
        await lease.renew(10)
    assert lease.state == "released"


async def test_renew_after_stop_raises(make_manager: Factory) -> None:
    manager = make_manager()
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    await manager.stop()
    with pytest.raises(LeaseExpiredError, match="released"):
        await lease.renew(10)
    assert not lease.active


# -- fencing ------------------------------------------------------------------------------


async def test_fencing_tokens_strictly_increase(make_manager: Factory) -> None:
    manager = make_manager(max_pools=2)
    await manager.start()
    tokens = []
    for _ in range(50):
        lease = await manager.acquire()
        tokens.append(lease.fencing_token)
        await lease.release()
    assert all(isinstance(token, int) for token in tokens)
    assert all(b > a for a, b in itertools.pairwise(tokens))
    a = await manager.acquire()
    b = await manager.acquire()
    assert b.fencing_token > a.fencing_token > tokens[-1]


async def test_renew_keeps_the_fencing_token(make_manager: Factory) -> None:
    manager = make_manager()
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    token = lease.fencing_token
    await lease.renew(20)
    assert lease.fencing_token == token


async def test_async_soft_callback_can_renew_the_lease(
    make_manager: Factory, clock: ManualClock
) -> None:
    async def extend(lease: ExecutorLease) -> None:
        await lease.renew(100)

    manager = make_manager(lease_grace_seconds=5, on_soft_expiry=extend)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    clock.advance(10)
    await settle()
    assert lease.hard_expires_at == clock.monotonic() + 105
    clock.advance(50)
    assert lease.active
    assert manager.stats()["counters"]["renewals"] == 1


async def test_context_manager_exit_after_hard_expiry_is_quiet(
    make_manager: Factory, clock: ManualClock
) -> None:
    manager = make_manager(lease_grace_seconds=0)
    await manager.start()
    async with await manager.acquire(lease_seconds=1) as lease:
        clock.advance(1)
        with pytest.raises(LeaseExpiredError):
            await lease.run(abs, 1)
    assert lease.state == "expired"
    assert manager.available_count == 1
