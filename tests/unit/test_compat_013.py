"""Code written for leasepool 0.1.3 runs unchanged: its module paths and names, the
start of each of its error messages, the inputs it accepted, and a duck-typed
manager under ``WorkGrinder``.

Each ``match=`` below is the exact pattern a test written against 0.1.3 would use:
the start of the message 0.1.3 raised at that site (we may add detail after it).
The sites were enumerated from the 0.1.3 sdist (``pip download leasepool==0.1.3
--no-deps --no-binary :all:``): every ``raise`` in ``manager.py``, ``grinder.py``,
``backends.py`` and ``_process_logging.py``. Two have no counterpart here and are
not pinned: ``"process log forwarding has not been started"`` (an internal
assertion of 0.1.3's, unreachable through its API) and ``"WorkGrinder loop
crashed"`` (our grinder's loop does not crash on a failing batch: each item gets
the batch's error instead, see tests/unit/test_grinder.py).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import queue
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import leasepool
from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    ProcessLoggingConfig,
    UnsupportedBackendError,
    WorkGrinder,
)
from leasepool.testing import ManualClock

Factory = Callable[..., LeasedExecutorManager]

# Every public module of 0.1.3 and the public names it had there: the names bound in
# each module that do not start with "_" and that 0.1.3 defined itself (not stdlib
# imports such as ``Any`` or ``deque``). Listed by importing 0.1.3's sdist
# (leasepool-0.1.3.tar.gz) and reading ``vars(module)``.
NAMES_013: dict[str, list[str]] = {
    "leasepool": [
        "ExecutorBackend",
        "ExecutorLease",
        "LeaseExpiredError",
        "LeasePoolError",
        "LeasePoolNotStartedError",
        "LeaseUnavailableError",
        "LeasedExecutorManager",
        "ProcessLoggingConfig",
        "UnsupportedBackendError",
        "WorkGrinder",
    ],
    "leasepool.exceptions": [
        "LeaseExpiredError",
        "LeasePoolError",
        "LeasePoolNotStartedError",
        "LeaseUnavailableError",
        "UnsupportedBackendError",
    ],
    "leasepool.manager": [
        "ExecutorBackend",
        "ExecutorLease",
        "LeaseExpiredError",
        "LeasePoolNotStartedError",
        "LeaseUnavailableError",
        "LeasedExecutorManager",
        "ProcessLoggingConfig",
        "SizeProvider",
        "build_executor",
        "build_queue_listener",
        "coerce_log_level",
        "logger",
        "normalize_backend",
        "process_worker_initializer",
    ],
    "leasepool.backends": [
        "ExecutorBackend",
        "build_executor",
        "normalize_backend",
        "resolve_executor_cls",
    ],
    "leasepool.grinder": ["LeasedExecutorManager", "WorkGrinder", "logger"],
    "leasepool.types": ["SizeProvider", "SyncCallable"],
}


# -- module paths and names ----------------------------------------------------------


@pytest.mark.parametrize("module_name", sorted(NAMES_013))
def test_every_013_module_and_name_imports(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in NAMES_013[module_name] if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize(
    ("module_name", "name"),
    [
        (module_name, name)
        for module_name, names in NAMES_013.items()
        for name in names
        if hasattr(leasepool, name)
    ],
)
def test_names_at_old_paths_are_the_package_objects(module_name: str, name: str) -> None:
    # ``except leasepool.exceptions.LeaseExpiredError`` must catch what we raise.
    assert getattr(importlib.import_module(module_name), name) is getattr(leasepool, name)


def test_from_imports_written_for_013() -> None:
    from leasepool.backends import ExecutorBackend
    from leasepool.exceptions import LeaseExpiredError as OldExpired
    from leasepool.grinder import WorkGrinder as OldGrinder
    from leasepool.manager import ExecutorLease
    from leasepool.manager import LeasedExecutorManager as OldManager
    from leasepool.types import SizeProvider, SyncCallable

    assert OldExpired is LeaseExpiredError
    assert OldGrinder is WorkGrinder
    assert OldManager is LeasedExecutorManager
    assert ExecutorLease is leasepool.ExecutorLease
    assert ExecutorBackend("thread") is leasepool.ExecutorBackend.THREAD
    assert SizeProvider is not None and SyncCallable is not None


def test_module_loggers_are_named_after_their_modules() -> None:
    import leasepool.grinder
    import leasepool.manager

    assert leasepool.manager.logger.name == "leasepool.manager"
    assert leasepool.grinder.logger.name == "leasepool.grinder"


def test_backend_helpers_work() -> None:
    from leasepool.backends import build_executor, normalize_backend, resolve_executor_cls

    assert normalize_backend("PROCESS") is leasepool.ExecutorBackend.PROCESS
    assert resolve_executor_cls("Thread") is ThreadPoolExecutor
    executor = build_executor(
        backend="thread",
        max_workers=2,
        name_prefix="compat",
        executor_seq=7,
        executor_kwargs={},
    )
    try:
        name = executor.submit(lambda: threading.current_thread().name).result(timeout=10)
        assert name.startswith("compat-7")
    finally:
        executor.shutdown(wait=True)
    if sys.version_info < (3, 14):
        with pytest.raises(
            UnsupportedBackendError,
            match=re.escape("InterpreterPoolExecutor is available only on Python 3.14+."),
        ):
            resolve_executor_cls("interpreter")


def test_process_logging_helpers_work() -> None:
    from leasepool.manager import (
        build_queue_listener,
        coerce_log_level,
        process_worker_initializer,
    )

    assert coerce_log_level("debug") == logging.DEBUG
    assert coerce_log_level(logging.ERROR) == logging.ERROR
    with pytest.raises(ValueError, match="Invalid logging level: 'LOUD'"):
        coerce_log_level("LOUD")

    calls: list[tuple[Any, ...]] = []
    process_worker_initializer(None, "INFO", True, lambda *a: calls.append(a), (1, 2))
    assert calls == [(1, 2)]

    # In-process: the initializer installs a queue handler on the root logger, and the
    # listener hands the queued records to the target logger.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    records: queue.Queue[Any] = queue.Queue()
    try:
        process_worker_initializer(records, "WARNING", False, None, ())
        assert root.level == logging.WARNING
        logging.getLogger("lp-compat.worker").warning("from the worker")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    target = logging.getLogger("lp-compat.target")
    target.propagate = False
    target.addHandler(Keep())
    listener = build_queue_listener(log_queue=records, target_logger=target)
    listener.start()
    listener.stop()  # stop() drains the queue first
    assert seen == ["from the worker"]


# -- constructor messages --------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_pools", "min_pools", "units_per_pool", "workers_per_pool"])
def test_integer_size_messages(name: str) -> None:
    kwargs: dict[str, Any] = {"max_pools": 2}
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        LeasedExecutorManager(**{**kwargs, name: 0})
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        LeasedExecutorManager(**{**kwargs, name: -3})
    for bad in (2.5, True, "2", None):
        with pytest.raises(ValueError, match=f"{name} must be an integer > 0"):
            LeasedExecutorManager(**{**kwargs, name: bad})


@pytest.mark.parametrize("name", ["check_interval", "default_lease_seconds"])
def test_positive_duration_messages(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        LeasedExecutorManager(max_pools=1, **{name: 0})
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        LeasedExecutorManager(max_pools=1, **{name: "-1"})
    for bad in (math.nan, math.inf, True, "soon", None, "nan"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
            LeasedExecutorManager(max_pools=1, **{name: bad})


def test_grace_messages() -> None:
    with pytest.raises(ValueError, match="lease_grace_seconds must be >= 0"):
        LeasedExecutorManager(max_pools=1, lease_grace_seconds=-0.5)
    for bad in (math.nan, -math.inf, False, "later"):
        with pytest.raises(ValueError, match="lease_grace_seconds must be a finite number >= 0"):
            LeasedExecutorManager(max_pools=1, lease_grace_seconds=bad)


def test_min_above_max_message() -> None:
    with pytest.raises(ValueError, match="min_pools cannot be greater than max_pools"):
        LeasedExecutorManager(max_pools=1, min_pools=2)


def test_backend_messages() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("Unsupported backend 'fork'. Supported: thread, process, interpreter"),
    ):
        LeasedExecutorManager(max_pools=1, backend="fork")


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the interpreter backend exists")
async def test_interpreter_backend_message() -> None:
    manager = LeasedExecutorManager(max_pools=1, backend="interpreter")
    with pytest.raises(
        UnsupportedBackendError,
        match=re.escape("InterpreterPoolExecutor is available only on Python 3.14+."),
    ):
        await manager.start()


def test_process_logging_messages() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Pass either process_logging or the forward_process_logs/process_log_* "
            "arguments, not both."
        ),
    ):
        LeasedExecutorManager(
            max_pools=1,
            backend="process",
            process_logging=ProcessLoggingConfig(enabled=True),
            forward_process_logs=True,
        )
    with pytest.raises(ValueError, match="process log forwarding is only supported for process"):
        LeasedExecutorManager(max_pools=1, backend="thread", forward_process_logs=True)
    with pytest.raises(ValueError, match="Invalid logging level: 'LOUD'"):
        LeasedExecutorManager(max_pools=1, process_log_level="LOUD")


# -- inputs 0.1.3 accepted ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["2.5", " 30 ", "1e2", Decimal("2.5"), Fraction(5, 2), b"7"])
def test_durations_accept_what_float_accepted(value: Any) -> None:
    # 0.1.3 converted durations with float(); code written for it may pass strings.
    expected = float(value)
    LeasedExecutorManager(
        max_pools=1, check_interval=value, default_lease_seconds=value, lease_grace_seconds=value
    )
    stats = WorkGrinder(
        executor_manager=LeasedExecutorManager(max_pools=1),
        max_wait_seconds=value,
        lease_seconds=value,
    ).stats()
    assert (stats["max_wait_seconds"], stats["lease_seconds"]) == (expected, expected)


def test_grace_accepts_zero_as_a_string() -> None:
    LeasedExecutorManager(max_pools=1, lease_grace_seconds="0")


def test_sizes_accept_index_objects() -> None:
    class Count:
        """Not an int, but has __index__ (as numpy integers do): 0.1.3 took it."""

        def __index__(self) -> int:
            return 3

    manager = LeasedExecutorManager(max_pools=Count(), workers_per_pool=Count())
    stats = manager.stats()
    assert (stats["max_pools"], stats["workers_per_pool"]) == (3, 3)


async def test_acquire_lease_seconds_accepts_a_string(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds="2.5")
    assert lease.lease_seconds == 2.5
    await lease.release()


async def test_negative_timeout_means_no_wait(make_manager: Factory) -> None:
    # 0.1.3 took a negative timeout: a free executor is leased, else TimeoutError at once.
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(timeout=-1)
    with pytest.raises(TimeoutError, match="Timed out waiting for an executor"):
        await manager.acquire(timeout=-1)
    assert manager.stats()["waiting"] == 0
    await lease.release()


async def test_infinite_timeout_waits(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    held = await manager.acquire()
    waiter = asyncio.ensure_future(manager.acquire(timeout=math.inf))
    await asyncio.sleep(0)
    assert not waiter.done()
    await held.release()
    lease = await asyncio.wait_for(waiter, 10)
    await lease.release()


# -- runtime messages -----------------------------------------------------------------


async def test_not_started_messages(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    with pytest.raises(LeasePoolNotStartedError, match="LeasedExecutorManager is not started"):
        await manager.acquire()
    await manager.start()
    await manager.stop()
    with pytest.raises(LeasePoolNotStartedError, match="LeasedExecutorManager is not started"):
        await manager.acquire()


async def test_stop_fails_waiters_with_013_message(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    await manager.acquire()
    waiter = asyncio.ensure_future(manager.acquire())
    await asyncio.sleep(0)
    await manager.stop()
    with pytest.raises(LeasePoolNotStartedError, match="LeasedExecutorManager is not started"):
        await asyncio.wait_for(waiter, 10)


async def test_unavailable_message(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    with pytest.raises(LeaseUnavailableError, match="No executor available"):
        await manager.acquire(wait=False)
    with pytest.raises(LeaseUnavailableError, match=r"No executor available; max_pools=1 reached"):
        await manager.acquire(wait=False)
    await lease.release()


async def test_timeout_message(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    waiter = asyncio.ensure_future(manager.acquire(timeout=5))
    await asyncio.sleep(0)
    clock.advance(5)
    with pytest.raises(TimeoutError, match="Timed out waiting for an executor"):
        await waiter
    await lease.release()


async def test_lease_messages(make_manager: Factory, clock: ManualClock) -> None:
    manager = make_manager(max_pools=2, lease_grace_seconds=1)
    await manager.start()

    lease = await manager.acquire()
    with pytest.raises(RuntimeError, match="Do not shut down a leased executor directly"):
        lease.executor.shutdown()
    await lease.release()
    with pytest.raises(LeaseExpiredError, match="Executor lease has been released"):
        lease.executor.submit(abs, -1)

    late = await manager.acquire(lease_seconds=2)
    clock.advance(3)
    # 0.1.3 said "expired and was revoked", or "is no longer active" once its checker
    # had already dropped the lease; a 0.1.3 test matches either.
    with pytest.raises(LeaseExpiredError, match=r"expired|no longer active"):
        late.executor.submit(abs, -1)
    with pytest.raises(LeaseExpiredError, match="Executor lease expired and was revoked"):
        late.executor.submit(abs, -1)


async def test_cross_loop_message(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    errors: list[BaseException] = []

    def other_loop() -> None:
        async def call() -> None:
            await manager.acquire()

        try:
            asyncio.run(call())
        except BaseException as exc:
            errors.append(exc)

    await asyncio.to_thread(other_loop)
    (error,) = errors
    assert isinstance(error, RuntimeError)
    assert re.search(
        re.escape("LeasedExecutorManager.acquire() must be called from its owning event loop"),
        str(error),
    )
    assert manager.leased_count == 0


# -- WorkGrinder -----------------------------------------------------------------------


def test_grinder_argument_messages() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    with pytest.raises(ValueError, match="batch_size_threshold must be > 0"):
        WorkGrinder(executor_manager=manager, batch_size_threshold=0)
    with pytest.raises(ValueError, match="batch_size_threshold must be an integer > 0"):
        WorkGrinder(executor_manager=manager, batch_size_threshold=1.5)
    with pytest.raises(ValueError, match="max_wait_seconds must be > 0"):
        WorkGrinder(executor_manager=manager, max_wait_seconds=0)
    with pytest.raises(ValueError, match="lease_seconds must be a finite number > 0"):
        WorkGrinder(executor_manager=manager, lease_seconds=math.nan)


async def test_grinder_not_started_messages() -> None:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    with pytest.raises(RuntimeError, match="WorkGrinder is not started"):
        await grinder.enqueue(abs, -1)
    with pytest.raises(RuntimeError, match="WorkGrinder is not started"):
        await grinder.submit(abs, -1)
    with pytest.raises(RuntimeError, match="WorkGrinder is not started"):
        grinder.submit_from_thread(abs, -1)
    with pytest.raises(RuntimeError, match="WorkGrinder is not started"):
        grinder.stats_from_thread()


async def test_grinder_loop_messages(make_manager: Factory) -> None:
    grinder = WorkGrinder(executor_manager=make_manager(max_pools=1), max_wait_seconds=60)
    await grinder.start()
    try:
        with pytest.raises(
            RuntimeError,
            match=re.escape("WorkGrinder.submit_from_thread() cannot be called from the owning"),
        ):
            grinder.submit_from_thread(abs, -1)
        with pytest.raises(
            RuntimeError,
            match=re.escape("WorkGrinder.stats_from_thread() cannot be called from the owning"),
        ):
            grinder.stats_from_thread()

        errors: list[BaseException] = []

        def other_loop(call: Callable[[], Any]) -> None:
            try:
                asyncio.run(call())
            except BaseException as exc:
                errors.append(exc)

        await asyncio.to_thread(other_loop, grinder.start)
        await asyncio.to_thread(other_loop, lambda: grinder.enqueue(abs, -1))
        first, second = errors
        assert str(first).startswith("WorkGrinder is already started on a different event loop")
        assert str(second).startswith(
            "WorkGrinder async methods must be called from its owning event loop"
        )
        assert grinder.stats()["pending"] == 0
    finally:
        await grinder.stop(cancel_pending=True)


async def test_grinder_stopping_message(make_manager: Factory) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=1)
    await grinder.start()
    held = await manager.acquire()  # the batch waits for this lease
    queued = await grinder.enqueue(abs, -4)
    stopping = asyncio.ensure_future(grinder.stop())  # drains: waits for the batch
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="WorkGrinder is stopping"):
        await grinder.enqueue(abs, -1)
    await held.release()
    await asyncio.wait_for(stopping, 10)
    assert queued.result() == 4


# -- a duck-typed manager under WorkGrinder, as 0.1.3's users test it ---------------------


class _InlineExecutor(Executor):
    def __init__(self, fail_after: int | None = None) -> None:
        self.submits = 0
        self._fail_after = fail_after

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submits += 1
        if self._fail_after is not None and self.submits > self._fail_after:
            raise RuntimeError("submit refused")
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class _FakeLease:
    """Only what 0.1.3's grinder used: ``executor`` and ``await release()``."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.releases = 0

    async def release(self) -> None:
        self.releases += 1


class _FakeManager:
    def __init__(self, lease: _FakeLease) -> None:
        self.lease = lease
        self.calls: list[dict[str, Any]] = []

    async def acquire(self, **kwargs: Any) -> _FakeLease:
        self.calls.append(kwargs)
        return self.lease


async def test_grinder_takes_any_object_with_the_managers_interface() -> None:
    lease = _FakeLease(_InlineExecutor(fail_after=2))
    manager = _FakeManager(lease)
    grinder = WorkGrinder(
        executor_manager=manager,  # type: ignore[arg-type]
        batch_size_threshold=3,
        max_wait_seconds=60,
        lease_seconds=7,
        owner_prefix="fake",
    )
    await grinder.start()
    try:
        first = await grinder.enqueue(abs, -1)
        second = await grinder.enqueue(divmod, 1, 0)
        third = await grinder.enqueue(abs, -3)
        assert await first == 1
        with pytest.raises(ZeroDivisionError):
            await second
        with pytest.raises(RuntimeError, match="submit refused"):
            await third
    finally:
        await grinder.stop(cancel_pending=True)
    assert lease.releases == 1
    assert manager.calls == [{"lease_seconds": 7.0, "owner": "fake-batch-1", "wait": True}]


@pytest.mark.parametrize("value", [None, object(), "manager", 3])
def test_grinder_still_refuses_non_managers(value: Any) -> None:
    with pytest.raises(TypeError, match="executor_manager"):
        WorkGrinder(executor_manager=value)
