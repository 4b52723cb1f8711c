"""WorkGrinder: batching on threshold or age, one lease per batch, thread APIs, stop."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _unit_helpers import settle, wait_until

from leasepool import LeasedExecutorManager, WorkGrinder
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]


@pytest.fixture
async def grind(
    make_manager: Factory,
) -> AsyncIterator[Callable[..., Any]]:
    """Build a started manager + started grinder; stops the grinders at teardown."""
    grinders: list[WorkGrinder] = []

    async def factory(
        manager: LeasedExecutorManager | None = None, **kwargs: Any
    ) -> tuple[LeasedExecutorManager, WorkGrinder]:
        if manager is None:
            manager = make_manager(max_pools=2)
            await manager.start()
        kwargs.setdefault("max_wait_seconds", 10.0)
        kwargs.setdefault("batch_size_threshold", 3)
        grinder = WorkGrinder(executor_manager=manager, **kwargs)
        await grinder.start()
        grinders.append(grinder)
        return manager, grinder

    yield factory
    for grinder in grinders:
        await grinder.stop(cancel_pending=True)


def acquires(manager: LeasedExecutorManager) -> int:
    count: int = manager.stats()["counters"]["acquires"]
    return count


# -- batching ---------------------------------------------------------------------


async def test_batches_on_threshold(grind: Callable[..., Any]) -> None:
    manager, grinder = await grind(batch_size_threshold=3)
    first = await grinder.enqueue(pow, 2, 1)
    second = await grinder.enqueue(pow, 2, 2)
    await settle()
    assert not first.done() and not second.done()
    assert grinder.stats()["pending"] == 2
    assert acquires(manager) == 0

    third = await grinder.enqueue(pow, 2, 3)
    assert await asyncio.gather(first, second, third) == [2, 4, 8]
    stats = grinder.stats()
    assert (stats["pending"], stats["batches"], stats["completed"]) == (0, 1, 3)
    assert acquires(manager) == 1


async def test_batches_when_oldest_waited_max_wait_seconds(
    grind: Callable[..., Any], clock: ManualClock
) -> None:
    manager, grinder = await grind(batch_size_threshold=100, max_wait_seconds=10)
    first = await grinder.enqueue(abs, -1)
    clock.advance(6)
    second = await grinder.enqueue(abs, -2)
    await settle()
    assert grinder.stats()["oldest_wait_seconds"] == pytest.approx(6)
    clock.advance(3.9)
    await settle()
    assert not first.done()
    clock.advance(0.1)  # the oldest has now waited 10 s: both go in one batch
    assert await asyncio.gather(first, second) == [1, 2]
    assert acquires(manager) == 1
    assert grinder.stats()["batches"] == 1


async def test_single_item_waits_for_max_wait(
    grind: Callable[..., Any], clock: ManualClock
) -> None:
    _, grinder = await grind(batch_size_threshold=5, max_wait_seconds=2)
    task = asyncio.create_task(grinder.submit(str.upper, "late"))
    await settle()
    clock.advance(1.999)
    await settle()
    assert not task.done()
    clock.advance(0.001)
    assert await task == "LATE"


async def test_one_lease_per_batch(grind: Callable[..., Any], gate: threading.Event) -> None:
    manager, grinder = await grind(batch_size_threshold=3, lease_seconds=42, owner_prefix="grind")
    running = threading.Semaphore(0)

    def work(i: int) -> tuple[int, str]:
        running.release()
        gate.wait(30)
        return i, threading.current_thread().name

    futures = [await grinder.enqueue(work, i) for i in range(3)]
    for _ in range(3):
        assert await asyncio.to_thread(running.acquire, True, 10)
    (lease_entry,) = manager.stats()["leases"]
    assert lease_entry["owner"] == "grind-batch-1"
    assert lease_entry["seconds_until_soft_expiry"] == pytest.approx(42)
    gate.set()
    results = await asyncio.gather(*futures)
    assert [i for i, _ in results] == [0, 1, 2]
    # All three ran on the same executor (thread names share its prefix).
    prefixes = {name.rsplit("_", 1)[0] for _, name in results}
    assert len(prefixes) == 1
    assert acquires(manager) == 1
    await wait_until(lambda: manager.stats()["leases"] == [])


async def test_several_batches_take_several_leases(grind: Callable[..., Any]) -> None:
    manager, grinder = await grind(batch_size_threshold=2)
    for batch in range(3):
        pair = [await grinder.enqueue(pow, batch, e) for e in (1, 2)]
        assert await asyncio.gather(*pair) == [batch, batch * batch]
    stats = grinder.stats()
    assert stats["batches"] == acquires(manager) == 3
    assert stats["completed"] == 6


async def test_everything_queued_goes_in_one_batch(grind: Callable[..., Any]) -> None:
    # As in 0.1.3: when the batch goes out it takes every queued item, even past
    # the threshold (callers that queued in the same loop turn share one lease).
    manager, grinder = await grind(batch_size_threshold=2)
    results = await asyncio.gather(*(grinder.submit(pow, i, 2) for i in range(6)))
    assert results == [i * i for i in range(6)]
    assert grinder.stats()["batches"] == acquires(manager) == 1


async def test_kwargs_reach_the_function_and_owner_does_not(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=1)

    def describe(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return args, kwargs

    result = await grinder.submit(describe, 1, 2, owner="caller", key="value")
    assert result == ((1, 2), {"key": "value"})


async def test_partial_batch_failure_gives_each_item_its_own_outcome(
    grind: Callable[..., Any],
) -> None:
    _, grinder = await grind(batch_size_threshold=4)

    def maybe_fail(i: int) -> int:
        if i % 2:
            raise ValueError(f"item {i} failed")
        return i * 10

    futures = [await grinder.enqueue(maybe_fail, i) for i in range(4)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes[0] == 0 and outcomes[2] == 20
    assert isinstance(outcomes[1], ValueError) and "item 1" in str(outcomes[1])
    assert isinstance(outcomes[3], ValueError) and "item 3" in str(outcomes[3])
    assert grinder.stats()["completed"] == 4


async def test_submit_raises_the_items_own_error(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=1)
    with pytest.raises(ZeroDivisionError):
        await grinder.submit(divmod, 1, 0)
    assert await grinder.submit(divmod, 7, 2) == (3, 1)


async def test_enqueue_rejects_non_callables(grind: Callable[..., Any]) -> None:
    _, grinder = await grind()
    with pytest.raises(TypeError, match="fn"):
        await grinder.enqueue(42)
    assert grinder.stats()["pending"] == 0


# -- cancellation -------------------------------------------------------------------------


async def test_cancelled_pending_item_leaves_the_queue_at_once(
    grind: Callable[..., Any],
) -> None:
    _, grinder = await grind(batch_size_threshold=3)
    first = await grinder.enqueue(abs, -1)
    second = await grinder.enqueue(abs, -2)
    first.cancel()
    await asyncio.sleep(0)
    assert grinder.stats()["pending"] == 1
    third = await grinder.enqueue(abs, -3)
    await settle()
    assert not third.done()  # the cancelled item does not count towards the threshold
    fourth = await grinder.enqueue(abs, -4)
    assert await asyncio.gather(second, third, fourth) == [2, 3, 4]
    assert grinder.stats()["completed"] == 3


async def test_cancelled_submit_call_leaves_the_queue(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=3)
    task = asyncio.create_task(grinder.submit(abs, -1))
    await settle()
    assert grinder.stats()["pending"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert grinder.stats()["pending"] == 0


async def test_stop_cancel_pending_true_cancels_queued_work(grind: Callable[..., Any]) -> None:
    manager, grinder = await grind(batch_size_threshold=10)
    futures = [await grinder.enqueue(abs, -i) for i in range(3)]
    await grinder.stop(cancel_pending=True)
    assert all(future.cancelled() for future in futures)
    stats = grinder.stats()
    assert (stats["started"], stats["pending"]) == (False, 0)
    assert acquires(manager) == 0


async def test_stop_cancel_pending_true_while_waiting_for_a_lease(
    make_manager: Factory, grind: Callable[..., Any]
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    held = await manager.acquire()
    _, grinder = await grind(manager, batch_size_threshold=2)
    futures = [await grinder.enqueue(abs, -i) for i in range(2)]
    await settle()
    assert manager.stats()["waiting"] == 1  # the batch is blocked on acquire
    await asyncio.wait_for(grinder.stop(cancel_pending=True), 10)
    assert all(future.cancelled() for future in futures)
    assert manager.stats()["waiting"] == 0
    await held.release()
    assert manager.available_count == 1  # the cancelled acquire leaked nothing


async def test_stop_cancel_pending_false_drains(
    grind: Callable[..., Any], clock: ManualClock
) -> None:
    _, grinder = await grind(batch_size_threshold=100, max_wait_seconds=1000)
    futures = [await grinder.enqueue(pow, i, 3) for i in range(4)]
    await settle()
    assert not any(future.done() for future in futures)
    await grinder.stop(cancel_pending=False)
    assert [future.result() for future in futures] == [0, 1, 8, 27]
    assert grinder.stats()["started"] is False


async def test_stop_default_drains(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=100)
    future = await grinder.enqueue(abs, -9)
    await grinder.stop()
    assert future.result() == 9


async def test_enqueue_after_stop_and_before_start_raises(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager)
    with pytest.raises(RuntimeError):
        await grinder.enqueue(abs, 1)
    await grinder.start()
    await grinder.stop()
    with pytest.raises(RuntimeError):
        await grinder.submit(abs, 1)
    await grinder.stop()  # idempotent


async def test_grinder_restarts(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=1)
    assert await grinder.submit(abs, -1) == 1
    await grinder.stop()
    await grinder.start()
    assert await grinder.submit(abs, -2) == 2


async def test_batch_fails_when_manager_is_stopped(grind: Callable[..., Any]) -> None:
    manager, grinder = await grind(batch_size_threshold=1)
    await manager.stop()
    with pytest.raises(Exception, match="start"):
        await grinder.submit(abs, -1)


# -- stats --------------------------------------------------------------------------------


async def test_stats_and_astats(grind: Callable[..., Any], clock: ManualClock) -> None:
    _, grinder = await grind(batch_size_threshold=5, max_wait_seconds=7, lease_seconds=9)
    await grinder.enqueue(abs, 1)
    clock.advance(2)
    stats = grinder.stats()
    assert stats["started"] is True
    assert stats["pending"] == 1
    assert stats["batch_size_threshold"] == 5
    assert stats["max_wait_seconds"] == 7.0
    assert stats["lease_seconds"] == 9.0
    assert stats["oldest_wait_seconds"] == pytest.approx(2)
    assert await grinder.astats() == stats


def test_stats_before_start() -> None:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    stats = grinder.stats()
    assert (stats["started"], stats["pending"], stats["batches"]) == (False, 0, 0)


# -- threads and loops ---------------------------------------------------------------------


async def test_submit_from_thread(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=1)

    def from_thread() -> Any:
        return grinder.submit_from_thread(pow, 3, 3).result(timeout=10)

    assert await asyncio.to_thread(from_thread) == 27


async def test_submit_from_many_threads(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=8)
    results: dict[int, Any] = {}

    def from_thread(i: int) -> None:
        results[i] = grinder.submit_from_thread(pow, i, 2).result(timeout=20)

    # Plain threads, not to_thread: all 8 must block at once to reach the threshold.
    threads = [threading.Thread(target=from_thread, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    await wait_until(lambda: not any(thread.is_alive() for thread in threads), within=30)
    assert results == {i: i * i for i in range(8)}
    assert grinder.stats()["batches"] == 1


async def test_stats_from_thread(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=10)
    await grinder.enqueue(abs, 1)
    stats = await asyncio.to_thread(grinder.stats_from_thread, 10)
    assert stats["pending"] == 1
    assert stats["started"] is True


async def test_thread_apis_refuse_on_the_owner_loop_thread(grind: Callable[..., Any]) -> None:
    _, grinder = await grind()
    with pytest.raises(RuntimeError, match="loop"):
        grinder.submit_from_thread(abs, 1)
    with pytest.raises(RuntimeError, match="loop"):
        grinder.stats_from_thread()
    assert grinder.stats()["pending"] == 0


async def test_thread_apis_refuse_before_start(make_manager: Factory) -> None:
    grinder = WorkGrinder(executor_manager=make_manager())

    def call() -> BaseException | None:
        try:
            grinder.submit_from_thread(abs, 1)
        except RuntimeError as exc:
            return exc
        return None

    assert isinstance(await asyncio.to_thread(call), RuntimeError)


async def test_async_apis_refuse_another_loop(grind: Callable[..., Any]) -> None:
    _, grinder = await grind(batch_size_threshold=1)

    def other_loop() -> list[str]:
        errors = []

        async def main() -> None:
            for call in (
                lambda: grinder.enqueue(abs, 1),
                lambda: grinder.submit(abs, 1),
                lambda: grinder.astats(),
                lambda: grinder.stop(),
            ):
                try:
                    await call()
                except RuntimeError as exc:
                    errors.append(str(exc))

        asyncio.run(main())
        return errors

    errors = await asyncio.to_thread(other_loop)
    assert len(errors) == 4
    stats = grinder.stats()
    assert (stats["started"], stats["pending"]) == (True, 0)
    assert await grinder.submit(abs, -5) == 5


async def test_submission_failure_fails_only_that_item(
    make_manager: Factory, grind: Callable[..., Any]
) -> None:
    # serializer="cloudpickle" pickles in the caller, so an unpicklable argument
    # fails inside submit(): that item alone gets the error, its neighbours run.
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    manager = make_manager(
        backend="process",
        max_pools=1,
        workers_per_pool=1,
        serializer="cloudpickle",
        mp_context=context,
    )
    await manager.start()
    _, grinder = await grind(manager, batch_size_threshold=4)
    futures = [
        await grinder.enqueue(abs, -1),
        await grinder.enqueue(abs, threading.Lock()),  # cannot be pickled
        await grinder.enqueue(abs, -3),
        await grinder.enqueue(divmod, 1, 0),
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 30)
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], TypeError) and "pickle" in str(outcomes[1])
    assert outcomes[2] == 3
    assert isinstance(outcomes[3], ZeroDivisionError)
    assert grinder.stats()["batches"] == 1
