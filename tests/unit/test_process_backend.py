"""The process backend with real worker processes: terminate, worker death, pre-warm, recycling.

Tests marked ``slow`` use real lease times with wide margins; everything else
runs without sleeping (validation) or only as long as a few real round trips.
Live worker processes are counted through ``/proc`` (direct children of this
process), never through leasepool itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from leasepool import LeasedExecutorManager, LeaseExpiredError, LeasePoolError
from leasepool._workers import WorkerDiedError
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]

HAS_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()
NON_FORK = "forkserver" if HAS_FORKSERVER else "spawn"
FORK = multiprocessing.get_context("fork")


# -- helpers ---------------------------------------------------------------------------


def child_pids() -> set[int]:
    """Direct children of this process (zombies included), from /proc."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry))
    return found


def helper_pids() -> set[int]:
    """multiprocessing's own helpers (resource tracker, fork server): not workers."""
    pids = set()
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        pid = resource_tracker._resource_tracker._pid  # type: ignore[attr-defined]
        if pid:
            pids.add(pid)
    with contextlib.suppress(Exception):
        from multiprocessing import forkserver

        pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
        if pid:
            pids.add(pid)
    return pids


def pid_exists(pid: int) -> bool:
    """True while ``pid`` exists, even as an unreaped zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until(predicate: Callable[[], bool], within: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)


def retirements(manager: LeasedExecutorManager) -> dict[str, int]:
    return dict(manager.stats()["counters"]["retirements"])


def worker_pids(manager: LeasedExecutorManager) -> set[int]:
    """Pids in the process tables of the manager's executors (white-box, for pre-warm)."""
    pool = manager._pool
    pids: set[int] = set()
    for member in [*pool.idle, *pool.busy]:
        pids.update(getattr(member.executor, "_processes", None) or {})
    return pids


# Work for the workers: module level, so stdlib pickle can send them.


def sleep_forever() -> None:
    time.sleep(1000)


def report_pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(1000)


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    faulthandler.disable()  # inherited from pytest: it would print a dump to the terminal
    ctypes.string_at(0)


def add(a: int, b: int = 0) -> int:
    return a + b


@pytest.fixture
async def make_manager() -> AsyncIterator[Factory]:
    managers: list[LeasedExecutorManager] = []

    def factory(**kwargs: Any) -> LeasedExecutorManager:
        kwargs.setdefault("backend", "process")
        kwargs.setdefault("max_pools", 1)
        kwargs.setdefault("workers_per_pool", 1)
        manager = LeasedExecutorManager(**kwargs)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        # Kill whatever a test left hanging, so interpreter exit never waits on it.
        pool = manager._pool
        members = [*pool.idle, *pool.busy]
        await manager.stop()
        for member in members:
            for process in list((getattr(member.executor, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    process.kill()


# -- validation (no processes) ---------------------------------------------------------


def test_serializer_defaults_to_pickle_and_validates() -> None:
    LeasedExecutorManager(backend="process", max_pools=1)
    LeasedExecutorManager(backend="process", max_pools=1, serializer="pickle")
    LeasedExecutorManager(backend="process", max_pools=1, serializer="cloudpickle")
    with pytest.raises(ValueError, match=r"serializer.*'json'"):
        LeasedExecutorManager(backend="process", max_pools=1, serializer="json")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"serializer.*None"):
        LeasedExecutorManager(backend="process", max_pools=1, serializer=None)  # type: ignore[arg-type]


def test_cloudpickle_with_threads_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"serializer='cloudpickle'.*backend='process'"):
        LeasedExecutorManager(backend="thread", max_pools=1, serializer="cloudpickle")
    LeasedExecutorManager(backend="thread", max_pools=1, serializer="pickle")


def test_cloudpickle_is_accepted_for_interpreters() -> None:
    LeasedExecutorManager(backend="interpreter", max_pools=1, serializer="cloudpickle")


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (True, TypeError), (1.5, TypeError), ("2", TypeError)],
)
def test_max_leases_per_executor_is_validated(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=rf"max_leases_per_executor.*{value!r}"):
        LeasedExecutorManager(max_pools=1, max_leases_per_executor=value)  # type: ignore[arg-type]
    LeasedExecutorManager(max_pools=1, max_leases_per_executor=None)
    LeasedExecutorManager(max_pools=1, max_leases_per_executor=3)


def test_prewarm_is_validated() -> None:
    with pytest.raises(TypeError, match=r"prewarm.*1"):
        LeasedExecutorManager(backend="process", max_pools=1, prewarm=1)  # type: ignore[arg-type]
    LeasedExecutorManager(backend="thread", max_pools=1, prewarm=False)  # accepted, no effect


def test_max_tasks_per_child_refuses_fork_up_front() -> None:
    with pytest.raises(ValueError, match=r"max_tasks_per_child=2.*'fork'"):
        LeasedExecutorManager(
            backend="process", max_pools=1, max_tasks_per_child=2, mp_context=FORK
        )
    LeasedExecutorManager(
        backend="process",
        max_pools=1,
        max_tasks_per_child=2,
        mp_context=multiprocessing.get_context(NON_FORK),
    )
    LeasedExecutorManager(backend="process", max_pools=1, max_tasks_per_child=2)  # spawn then
    LeasedExecutorManager(backend="process", max_pools=1, max_tasks_per_child=None, mp_context=FORK)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (True, TypeError), ("1", TypeError)])
def test_max_tasks_per_child_is_validated(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_tasks_per_child"):
        LeasedExecutorManager(backend="process", max_pools=1, max_tasks_per_child=value)


def test_max_tasks_per_child_needs_the_process_backend() -> None:
    with pytest.raises(ValueError, match=r"max_tasks_per_child.*backend='process'"):
        LeasedExecutorManager(backend="thread", max_pools=1, max_tasks_per_child=2)


def test_terminate_needs_the_process_backend() -> None:
    for backend in ("thread", "interpreter"):
        with pytest.raises(ValueError, match="hard_expiry_action='terminate'"):
            LeasedExecutorManager(backend=backend, max_pools=1, hard_expiry_action="terminate")


def test_worker_died_error_is_a_broken_process_pool_and_pickles() -> None:
    import pickle

    error = WorkerDiedError("worker 7 died", deaths=((7, -9),), executor_name="lp-1")
    assert isinstance(error, BrokenProcessPool)
    assert isinstance(error, LeasePoolError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.pid, copy.exitcode, copy.executor_name, str(copy)) == (7, -9, "lp-1", str(error))


# -- hard expiry: terminate --------------------------------------------------------------


@pytest.mark.slow
async def test_hung_task_is_killed_at_hard_expiry(make_manager: Factory) -> None:
    manager = make_manager(
        hard_expiry_action="terminate", lease_grace_seconds=0.2, workers_per_pool=1
    )
    await manager.start()
    lease = await manager.acquire(lease_seconds=0.3)
    pid = await lease.run(os.getpid)
    assert pid != os.getpid() and pid_exists(pid)

    hung = lease.executor.submit(sleep_forever)
    started = time.monotonic()
    with pytest.raises(LeaseExpiredError, match="worker processes were killed"):
        await asyncio.wrap_future(hung)
    assert time.monotonic() - started < 10  # about 0.5 s: the lease's own deadline
    assert not lease.active
    with pytest.raises(LeaseExpiredError):
        lease.executor.submit(add, 1)

    await wait_until(lambda: not pid_exists(pid), what=f"worker {pid} gone (reaped)")
    await wait_until(lambda: manager.stats()["retiring"] == 0, what="retirement finished")
    stats = manager.stats()
    assert stats["counters"]["kills"] == 1
    assert retirements(manager) == {"terminated": 1}
    assert stats["counters"]["worker_deaths"] == 0  # our own kill is not a "death"
    assert stats["overrunning"] == 0

    # A replacement serves the next lease, on a new worker.
    async with await manager.acquire() as fresh:
        assert await fresh.run(add, 2, b=3) == 5
        assert await fresh.run(os.getpid) != pid


@pytest.mark.slow
async def test_terminate_fails_running_and_queued_work_with_lease_expired(
    make_manager: Factory,
) -> None:
    manager = make_manager(
        hard_expiry_action="terminate", lease_grace_seconds=0, workers_per_pool=2
    )
    await manager.start()
    lease = await manager.acquire(lease_seconds=0.4)
    futures = [lease.executor.submit(sleep_forever) for _ in range(5)]
    runs = [asyncio.create_task(lease.run(sleep_forever)) for _ in range(2)]
    results = await asyncio.wait_for(
        asyncio.gather(*runs, *(asyncio.wrap_future(f) for f in futures), return_exceptions=True),
        timeout=20,
    )
    # lease.run never leaks a CancelledError; executor.submit futures that never
    # started may be cancelled (as with "reject"); none is a BrokenProcessPool.
    for outcome in results[:2]:
        assert isinstance(outcome, LeaseExpiredError), outcome
    for future in futures:
        assert future.cancelled() or isinstance(future.exception(), LeaseExpiredError)
    assert not any(isinstance(r, BrokenProcessPool) for r in results)
    assert sum(isinstance(r, LeaseExpiredError) for r in results[2:]) >= 2  # the running ones


@pytest.mark.slow
async def test_released_lease_work_is_killed_at_its_hard_expiry(make_manager: Factory) -> None:
    """Releasing does not unbound the work: draining ends at the lease's hard expiry."""
    manager = make_manager(hard_expiry_action="terminate", lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=0.4)
    pid = await lease.run(os.getpid)
    hung = lease.executor.submit(sleep_forever)
    await lease.release()
    assert manager.stats()["draining"] == 1
    with pytest.raises(LeaseExpiredError, match=r"was released.*killed"):
        await asyncio.wait_for(asyncio.wrap_future(hung), 20)
    await wait_until(lambda: not pid_exists(pid), what=f"worker {pid} gone")
    assert retirements(manager) == {"terminated": 1}
    async with await manager.acquire(timeout=30) as fresh:
        assert await fresh.run(add, 1, 2) == 3


@pytest.mark.slow
async def test_released_lease_that_drains_in_time_is_not_killed(make_manager: Factory) -> None:
    manager = make_manager(hard_expiry_action="terminate", lease_grace_seconds=0)
    await manager.start()
    lease = await manager.acquire(lease_seconds=0.5)
    quick = lease.executor.submit(time.sleep, 0.1)
    await lease.release()
    await asyncio.wrap_future(quick)
    await asyncio.sleep(0.6)  # past the released lease's hard expiry
    assert retirements(manager) == {}
    assert manager.stats()["counters"]["kills"] == 0


@pytest.mark.slow
async def test_live_workers_never_exceed_the_bound_in_a_terminate_storm(
    make_manager: Factory,
) -> None:
    max_pools, workers = 2, 2
    bound = max_pools * workers
    manager = make_manager(
        hard_expiry_action="terminate",
        max_pools=max_pools,
        min_pools=max_pools,
        workers_per_pool=workers,
        lease_grace_seconds=0,
        mp_context=FORK,  # workers are then direct children of this process
    )
    baseline = child_pids()
    samples: list[int] = []
    seen: set[int] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            live = child_pids() - baseline - helper_pids()
            seen.update(live)
            samples.append(len(live))
            time.sleep(0.002)

    # Also look at the moment a replacement is created: the workers of every
    # retired executor must be gone by then, not just soon after.
    at_creation: list[int] = []
    create = manager._pool._create

    def checked_create() -> Any:
        at_creation.append(len(child_pids() - baseline - helper_pids()))
        return create()

    manager._pool._create = checked_create  # type: ignore[method-assign]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        await manager.start()

        async def hog() -> str:
            lease = await manager.acquire(lease_seconds=0.25, timeout=30)
            futures = [lease.executor.submit(sleep_forever) for _ in range(workers + 1)]
            done = await asyncio.gather(
                *(asyncio.wrap_future(f) for f in futures), return_exceptions=True
            )
            assert all(isinstance(d, LeaseExpiredError | asyncio.CancelledError) for d in done), (
                done
            )
            return lease.lease_id

        leases = await asyncio.wait_for(asyncio.gather(*(hog() for _ in range(8))), 45)
        assert len(set(leases)) == 8
        await wait_until(lambda: manager.stats()["retiring"] == 0, what="all retired")
    finally:
        stop.set()
        sampler.join()
    assert max(samples) <= bound, f"{max(samples)} live workers > {bound}"
    assert len(at_creation) >= 8  # 2 at start, then one replacement per kill
    assert max(at_creation) <= bound - workers, at_creation
    assert max(samples) == bound  # the sampler did see full executors
    assert manager.stats()["counters"]["kills"] == 8
    assert retirements(manager) == {"terminated": 8}
    assert len(seen) >= 8 * workers  # every lease got fresh workers
    assert all(not pid_exists(pid) for pid in seen - worker_pids(manager))


# -- threads cannot be killed: over-running work is reported ---------------------------------


async def test_overrunning_thread_work_is_reported_until_it_finishes() -> None:
    clock = ManualClock()
    gate = threading.Event()
    manager = LeasedExecutorManager(max_pools=1, clock=clock, lease_grace_seconds=0)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=10)
        future = lease.executor.submit(gate.wait, 30)
        assert manager.stats()["overrunning"] == 0
        clock.advance(10)  # hard expiry: the thread cannot be stopped
        assert not lease.active
        stats = manager.stats()
        assert (stats["overrunning"], stats["draining"], stats["leased"]) == (1, 0, 1)
        gate.set()
        await asyncio.wrap_future(future)
        await wait_until(lambda: manager.stats()["overrunning"] == 0)
        await wait_until(lambda: manager.available_count == 1)
        # The executor is clean for the next holder.
        async with await manager.acquire() as again:
            again.executor.submit(gate.wait, 30)
            assert manager.stats()["overrunning"] == 0
    finally:
        gate.set()
        await manager.stop()


async def test_queued_lease_run_fails_with_lease_expired_not_cancelled_error() -> None:
    clock = ManualClock()
    gate = threading.Event()
    manager = LeasedExecutorManager(
        max_pools=1, workers_per_pool=1, clock=clock, lease_grace_seconds=0
    )
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=10)
        running = asyncio.create_task(lease.run(gate.wait, 30))
        queued = asyncio.create_task(lease.run(abs, -1))  # waits behind the first
        cancelled_by_caller = asyncio.create_task(lease.run(abs, -2))
        await asyncio.sleep(0.05)
        cancelled_by_caller.cancel()
        clock.advance(10)  # hard expiry cancels the queued work
        with pytest.raises(LeaseExpiredError, match="hard expiry"):
            await queued
        with pytest.raises(asyncio.CancelledError):
            await cancelled_by_caller  # a caller's own cancellation stays a cancellation
        gate.set()
        assert await running is True
    finally:
        gate.set()
        await manager.stop()


async def test_draining_after_release_is_not_overrunning() -> None:
    gate = threading.Event()
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        lease = await manager.acquire()
        future = lease.executor.submit(gate.wait, 30)
        await lease.release()
        stats = manager.stats()
        assert (stats["overrunning"], stats["draining"]) == (0, 1)
        gate.set()
        await asyncio.wrap_future(future)
        await wait_until(lambda: manager.stats()["draining"] == 0)
    finally:
        gate.set()
        await manager.stop()


# -- worker death ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_worker_sigkilled_mid_task(make_manager: Factory, tmp_path: Path) -> None:
    manager = make_manager(workers_per_pool=2)
    await manager.start()
    lease = await manager.acquire()
    first_pids = worker_pids(manager)
    marker = tmp_path / "pid"
    running = lease.executor.submit(report_pid_then_sleep, str(marker))
    # A second caller waits for the only executor.
    waiter = asyncio.create_task(manager.acquire(timeout=30))
    await wait_until(lambda: marker.exists() and marker.read_text() != "", what="task started")
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerDiedError) as caught:
        await asyncio.wrap_future(running)
    error = caught.value
    assert (error.pid, error.exitcode) == (pid, -signal.SIGKILL)
    assert f"worker process {pid}" in str(error) and "SIGKILL" in str(error)
    assert isinstance(error, BrokenProcessPool)  # stdlib-compatible
    with pytest.raises(BrokenProcessPool, match=str(pid)):
        lease.executor.submit(add, 1)  # the pool is broken: its message names the worker
    assert not waiter.done()
    await lease.release()

    served = await asyncio.wait_for(waiter, 30)  # the waiting caller gets a replacement
    async with served:
        new_pid = await served.run(os.getpid)
    assert new_pid not in first_pids
    assert retirements(manager) == {"broken": 1}
    assert manager.stats()["counters"]["worker_deaths"] == 1
    await wait_until(lambda: not (first_pids & child_pids()), what="old workers reaped")


@pytest.mark.parametrize(
    ("work", "args", "exitcode", "words"),
    [
        (exit_with, (3,), 3, "exit code 3"),
        (segfault, (), -signal.SIGSEGV, "SIGSEGV"),
    ],
    ids=["os._exit", "segfault"],
)
async def test_worker_death_names_pid_and_exit_code(
    make_manager: Factory,
    work: Callable[..., Any],
    args: tuple[Any, ...],
    exitcode: int,
    words: str,
) -> None:
    manager = make_manager()
    await manager.start()
    async with await manager.acquire() as lease:
        pid = await lease.run(os.getpid)
        with pytest.raises(WorkerDiedError) as caught:
            await lease.run(work, *args)
    assert (caught.value.pid, caught.value.exitcode) == (pid, exitcode)
    assert words in str(caught.value) and str(pid) in str(caught.value)
    async with await manager.acquire(timeout=30) as fresh:
        assert await fresh.run(add, 1, 1) == 2
    assert retirements(manager) == {"broken": 1}


async def test_idle_executor_with_a_dead_worker_is_replaced_before_use(
    make_manager: Factory,
) -> None:
    manager = make_manager(workers_per_pool=2)
    await manager.start()
    async with await manager.acquire() as lease:
        await lease.run(add, 1)
    old = worker_pids(manager)
    assert len(old) == 2
    os.kill(next(iter(old)), signal.SIGKILL)
    await wait_until(lambda: retirements(manager) == {"broken": 1}, what="retired while idle")
    await wait_until(lambda: manager.available_count == 1, what="replaced")
    assert manager.stats()["counters"]["worker_deaths"] == 1
    async with await manager.acquire() as lease:
        assert await lease.run(os.getpid) not in old  # the holder never sees the broken one


def failing_initializer() -> None:
    raise RuntimeError("initializer fails on purpose")


@pytest.mark.slow
async def test_a_failing_initializer_does_not_make_pre_warm_churn(make_manager: Factory) -> None:
    manager = make_manager(workers_per_pool=2, initializer=failing_initializer)
    await manager.start()
    await asyncio.sleep(0.5)  # the pre-warmed workers have died by now
    assert manager.stats()["counters"]["executors_created"] == 1  # not re-created in a loop
    async with await manager.acquire() as lease:
        with pytest.raises(BrokenProcessPool, match="exit"):
            await lease.run(add, 1)
    await wait_until(lambda: retirements(manager) == {"broken": 1})


# -- pre-warm ------------------------------------------------------------------------------


async def test_prewarm_starts_workers_at_creation(make_manager: Factory) -> None:
    manager = make_manager(workers_per_pool=3, mp_context=FORK)
    before = child_pids()
    await manager.start()
    # Forked synchronously: there before any submission.
    pids = worker_pids(manager)
    assert len(pids) == 3
    assert pids <= child_pids() - before
    async with await manager.acquire() as lease:
        assert await lease.run(os.getpid) in pids
    assert worker_pids(manager) == pids  # no extra worker was started


async def test_prewarm_without_fork_uses_a_background_thread(make_manager: Factory) -> None:
    manager = make_manager(workers_per_pool=2, mp_context=multiprocessing.get_context(NON_FORK))
    await manager.start()
    await wait_until(lambda: len(worker_pids(manager)) == 2, within=30, what="2 workers")
    pids = worker_pids(manager)
    async with await manager.acquire() as lease:
        results = await asyncio.gather(*(lease.run(os.getpid) for _ in range(4)))
    assert set(results) <= pids
    assert worker_pids(manager) == pids


async def test_prewarm_false_keeps_workers_lazy(make_manager: Factory) -> None:
    manager = make_manager(workers_per_pool=2, prewarm=False)
    await manager.start()
    assert worker_pids(manager) == set()
    async with await manager.acquire() as lease:
        await lease.run(os.getpid)
    assert worker_pids(manager)


# -- recycling ---------------------------------------------------------------------------------


async def test_executor_is_recycled_after_n_leases_threads() -> None:
    manager = LeasedExecutorManager(max_pools=1, max_leases_per_executor=2)
    await manager.start()
    try:
        executors = []
        for _ in range(5):
            async with await manager.acquire(timeout=10) as lease:
                executors.append(lease._member.executor)
        assert executors[0] is executors[1]
        assert executors[1] is not executors[2]
        assert executors[2] is executors[3]
        assert executors[3] is not executors[4]
        assert retirements(manager) == {"recycled": 2}
    finally:
        await manager.stop()


async def test_executor_is_recycled_after_n_leases_processes(make_manager: Factory) -> None:
    manager = make_manager(max_leases_per_executor=2)
    await manager.start()
    pids = []
    for _ in range(3):
        async with await manager.acquire(timeout=30) as lease:
            pids.append(await lease.run(os.getpid))
    assert pids[0] == pids[1] != pids[2]
    await wait_until(lambda: not pid_exists(pids[0]), what="recycled worker reaped")
    assert retirements(manager) == {"recycled": 1}


@pytest.mark.slow
async def test_max_tasks_per_child_is_passed_through(make_manager: Factory) -> None:
    manager = make_manager(max_tasks_per_child=1, mp_context=multiprocessing.get_context(NON_FORK))
    await manager.start()
    async with await manager.acquire(timeout=30) as lease:
        pids = [await lease.run(os.getpid) for _ in range(3)]
    assert len(set(pids)) == 3  # a fresh worker for every task


# -- serializer --------------------------------------------------------------------------------


def make_closure(offset: int) -> Callable[[int], int]:
    def shifted(x: int) -> int:
        return x + offset

    return shifted


async def test_cloudpickle_sends_lambdas_and_closures(make_manager: Factory) -> None:
    manager = make_manager(serializer="cloudpickle")
    await manager.start()
    scale = 7

    def nested(x: int, *, extra: int = 0) -> int:
        return x * scale + extra

    async with await manager.acquire() as lease:
        assert await lease.run(lambda: os.getpid()) != os.getpid()
        assert await lease.run(make_closure(10), 5) == 15
        assert await lease.run(nested, 2, extra=1) == 15
        future: Future[int] = lease.executor.submit(lambda x: x * 2, 21)
        assert await asyncio.wrap_future(future) == 42
        assert await lease.run(add, 1, b=2) == 3  # plain module functions too


async def test_cloudpickle_bad_payload_fails_only_that_call(make_manager: Factory) -> None:
    manager = make_manager(serializer="cloudpickle")
    await manager.start()
    async with await manager.acquire() as lease:
        with pytest.raises(LeasePoolError, match=r"positional argument 1 .*lock") as caught:
            await lease.run(add, 1, threading.Lock())
        assert isinstance(caught.value, TypeError)
        assert isinstance(caught.value.__cause__, TypeError)  # chained from the pickling error
        with pytest.raises(TypeError, match=r"keyword argument 'b'"):
            lease.executor.submit(add, 1, b=threading.Lock())  # type: ignore[arg-type]
        assert lease._member.pending == set()  # nothing reached the executor
        assert await lease.run(add, 2, b=2) == 4  # the pool is fine
    assert retirements(manager) == {}
    assert manager.stats()["counters"]["worker_deaths"] == 0


async def test_cloudpickle_unpickling_failure_in_worker_is_one_failed_call(
    make_manager: Factory,
) -> None:
    import sys
    import types

    manager = make_manager(serializer="cloudpickle", mp_context=FORK)
    await manager.start()  # workers forked now, before the module below exists
    ghost = types.ModuleType("leasepool_test_ghost_module")
    exec("def answer():\n    return 42\n", ghost.__dict__)
    sys.modules[ghost.__name__] = ghost
    try:
        async with await manager.acquire() as lease:
            with pytest.raises(LeasePoolError, match="could not unpickle"):
                await lease.run(ghost.answer)
            assert await lease.run(add, 1, 1) == 2
    finally:
        del sys.modules[ghost.__name__]
    assert retirements(manager) == {}


async def test_pickle_default_keeps_stdlib_behaviour(make_manager: Factory) -> None:
    manager = make_manager()
    await manager.start()
    async with await manager.acquire() as lease:
        with pytest.raises((AttributeError, TypeError, Exception)) as caught:
            await lease.run(lambda: 1)
        assert not isinstance(caught.value, LeasePoolError)
        assert "pickle" in str(caught.value).lower()
        assert await lease.run(add, 1, 2) == 3  # the pool survived, as with the stdlib
    assert retirements(manager) == {}


MAIN_SCRIPT = """
import asyncio, multiprocessing, sys
from leasepool import LeasedExecutorManager

def defined_in_main(x):
    return x * 3

async def main(serializer):
    manager = LeasedExecutorManager(
        backend="process", max_pools=1, workers_per_pool=1, serializer=serializer,
        mp_context=multiprocessing.get_context("spawn"),
    )
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            print("result", await lease.run(defined_in_main, 14))
    except Exception as exc:
        print("error", type(exc).__name__)
    finally:
        await manager.stop()

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("serializer", "expected"), [("cloudpickle", "result 42"), ("pickle", "error")]
)
def test_functions_defined_in_main(tmp_path: Path, serializer: str, expected: str) -> None:
    import subprocess
    import sys

    # Run with -c: spawned workers cannot re-import a __main__ that has no file,
    # so only a serializer that sends the function by value can work.
    done = subprocess.run(
        [sys.executable, "-c", MAIN_SCRIPT, serializer],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(expected), done.stdout + done.stderr


@pytest.mark.slow
async def test_retired_workers_are_gone_before_a_replacement_starts(
    make_manager: Factory,
) -> None:
    """Recycling retires executors whose workers exit gracefully, which takes a
    moment: the replacement must not start until they have."""
    max_pools, workers = 2, 2
    manager = make_manager(
        max_pools=max_pools,
        min_pools=max_pools,
        workers_per_pool=workers,
        max_leases_per_executor=1,
        mp_context=FORK,
    )
    baseline = child_pids()
    at_creation: list[int] = []
    create = manager._pool._create

    def checked_create() -> Any:
        at_creation.append(len(child_pids() - baseline - helper_pids()))
        return create()

    manager._pool._create = checked_create  # type: ignore[method-assign]
    await manager.start()

    async def use_once() -> None:
        async with await manager.acquire(timeout=30) as lease:
            await asyncio.gather(*(lease.run(add, 1) for _ in range(workers)))

    await asyncio.wait_for(asyncio.gather(*(use_once() for _ in range(10))), 45)
    await wait_until(lambda: manager.total_count == 2 and manager.stats()["retiring"] == 0)
    assert retirements(manager) == {"recycled": 10}
    assert len(at_creation) == 12
    assert max(at_creation) <= max_pools * workers - workers, at_creation
