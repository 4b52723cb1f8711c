"""Process-backend log forwarding: worker records reach a parent logger."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator

import pytest
from _unit_helpers import wait_until

from leasepool import LeasedExecutorManager, ProcessLoggingConfig

Factory = Callable[..., LeasedExecutorManager]

# Set in the parent by a test. A forked worker would inherit the change; a spawned
# or forkserver worker imports this module afresh and sees the default.
PARENT_MARK: list[str] = []


def worker_view() -> tuple[int, int, list[str]]:
    """Runs in a worker: its pid, its parent's pid, and the mark it sees."""
    return os.getpid(), os.getppid(), list(PARENT_MARK)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def collect() -> Iterator[Callable[[str], Collect]]:
    attached: list[tuple[logging.Logger, Collect, int]] = []

    def attach(name: str) -> Collect:
        logger = logging.getLogger(name)
        handler = Collect()
        attached.append((logger, handler, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        return handler

    yield attach
    for logger, handler, level in attached:
        logger.removeHandler(handler)
        logger.setLevel(level)


def process_manager(make_manager: Factory, **kwargs: object) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 1)
    return make_manager(backend="process", **kwargs)


async def test_worker_record_reaches_the_managers_logger(
    make_manager: Factory, collect: Callable[[str], Collect]
) -> None:
    target = collect("lp-test.manager")
    manager = process_manager(
        make_manager,
        forward_process_logs=True,
        logger=logging.getLogger("lp-test.manager"),
    )
    await manager.start()
    async with await manager.acquire() as lease:
        worker_log = logging.getLogger("lp-test.worker")
        await lease.run(worker_log.warning, "hello from %s", "the worker")
        worker_pid = (await lease.run(worker_view))[0]
    await wait_until(lambda: "hello from the worker" in target.messages(), within=20)
    (record,) = [r for r in target.records if r.getMessage() == "hello from the worker"]
    assert record.name == "lp-test.worker"
    assert record.levelno == logging.WARNING
    assert record.process == worker_pid != os.getpid()


async def test_worker_record_reaches_caplog_through_the_target_logger(
    make_manager: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lp-test.target")
    manager = process_manager(
        make_manager,
        forward_process_logs=True,
        process_log_level="INFO",
        process_log_target_logger=logging.getLogger("lp-test.target"),
    )
    await manager.start()
    async with await manager.acquire() as lease:
        await lease.run(logging.getLogger("lp-test.child").info, "info %d", 42)
    await wait_until(lambda: "info 42" in caplog.messages, within=20)


async def test_process_logging_config_form_and_level(
    make_manager: Factory, collect: Callable[[str], Collect]
) -> None:
    target = collect("lp-test.config")
    manager = process_manager(
        make_manager,
        process_logging=ProcessLoggingConfig(
            enabled=True, level="WARNING", target_logger=logging.getLogger("lp-test.config")
        ),
    )
    await manager.start()
    async with await manager.acquire() as lease:
        child = logging.getLogger("lp-test.levels")
        await lease.run(child.info, "below the level")
        await lease.run(child.error, "above the level")
    await wait_until(lambda: "above the level" in target.messages(), within=20)
    assert "below the level" not in target.messages()


async def test_user_initializer_runs_after_ours(
    make_manager: Factory, collect: Callable[[str], Collect]
) -> None:
    target = collect("lp-test.init")
    manager = process_manager(
        make_manager,
        forward_process_logs=True,
        process_log_target_logger=logging.getLogger("lp-test.init"),
        # The user's initializer logs. Its record can only reach the parent if our
        # initializer already installed the queue handler, i.e. ran first.
        initializer=logging.getLogger("lp-test.user-init").warning,
        initargs=("user initializer ran",),
    )
    await manager.start()
    async with await manager.acquire() as lease:
        assert await lease.run(abs, -1) == 1
    await wait_until(lambda: "user initializer ran" in target.messages(), within=20)
    (record,) = [r for r in target.records if r.getMessage() == "user initializer ran"]
    assert record.name == "lp-test.user-init"
    assert record.process != os.getpid()


async def test_default_context_is_not_fork(make_manager: Factory) -> None:
    PARENT_MARK.append("parent-only")
    try:
        manager = process_manager(make_manager, forward_process_logs=True)
        await manager.start()
        async with await manager.acquire() as lease:
            pid, parent, mark = await lease.run(worker_view)
    finally:
        PARENT_MARK.clear()
    assert pid != os.getpid()
    assert mark == [], "the worker inherited the parent's memory: it was forked from it"
    if "forkserver" in multiprocessing.get_all_start_methods():
        # forkserver is preferred: workers are children of the fork server, not of us.
        assert parent != os.getpid()


async def test_explicit_mp_context_is_respected(make_manager: Factory) -> None:
    PARENT_MARK.append("parent-only")
    try:
        manager = process_manager(
            make_manager,
            forward_process_logs=True,
            mp_context=multiprocessing.get_context("spawn"),
        )
        await manager.start()
        async with await manager.acquire() as lease:
            _, parent, mark = await lease.run(worker_view)
    finally:
        PARENT_MARK.clear()
    # spawn: a fresh interpreter started by this process itself.
    assert parent == os.getpid()
    assert mark == []


async def test_forwarding_survives_a_restart(
    make_manager: Factory, collect: Callable[[str], Collect]
) -> None:
    target = collect("lp-test.restart")
    manager = process_manager(
        make_manager,
        forward_process_logs=True,
        process_log_target_logger=logging.getLogger("lp-test.restart"),
    )
    for round_ in range(2):
        await manager.start()
        async with await manager.acquire() as lease:
            await lease.run(logging.getLogger("lp-test.r").warning, "round %d", round_)
        await wait_until(lambda r=round_: f"round {r}" in target.messages(), within=20)
        await manager.stop()


def test_forwarding_needs_the_process_backend(make_manager: Factory) -> None:
    # As in 0.1.3: forwarding only applies to process workers, so asking for it on
    # another backend is a mistake, refused at construction.
    with pytest.raises(ValueError, match="only supported for process backend"):
        make_manager(backend="thread", forward_process_logs=True)
    with pytest.raises(ValueError, match="only supported for process backend"):
        make_manager(backend="thread", process_logging=ProcessLoggingConfig(enabled=True))
    make_manager(backend="thread", process_logging=ProcessLoggingConfig(enabled=False))
