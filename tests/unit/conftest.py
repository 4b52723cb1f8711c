"""Fixtures for the local-core unit tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from leasepool import LeasedExecutorManager
from leasepool.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event that blocking work waits on; always opened at teardown so no thread hangs."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
async def make_manager(
    clock: ManualClock, gate: threading.Event
) -> AsyncIterator[Callable[..., LeasedExecutorManager]]:
    """Build managers on the ManualClock (unless ``clock=`` is given); stop them at teardown."""
    managers: list[LeasedExecutorManager] = []

    def factory(**kwargs: Any) -> LeasedExecutorManager:
        kwargs.setdefault("max_pools", 1)
        kwargs.setdefault("clock", clock)
        manager = LeasedExecutorManager(**kwargs)
        managers.append(manager)
        return manager

    yield factory
    gate.set()
    for manager in managers:
        # A manager bound to another loop (cross-loop tests) is stopped by its test.
        with contextlib.suppress(RuntimeError):
            await manager.stop()


@pytest.fixture
async def manager(
    make_manager: Callable[..., LeasedExecutorManager],
) -> LeasedExecutorManager:
    """A started thread manager: max_pools=2, min_pools=1, ManualClock."""
    started = make_manager(max_pools=2, min_pools=1, workers_per_pool=2)
    await started.start()
    return started
