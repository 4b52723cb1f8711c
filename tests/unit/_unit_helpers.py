"""Small helpers shared by the unit tests (imported as a plain module)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class StalledClock:
    """A clock whose timers never fire: it models a loop too busy to run them.

    Time only moves when a test assigns ``now``. It implements the public
    ``Clock`` protocol (``monotonic`` and ``call_at``), nothing more.
    """

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.scheduled: list[tuple[float, Callable[[], object]]] = []

    def monotonic(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Any:
        self.scheduled.append((when, callback))
        return _NeverHandle()


class _NeverHandle:
    def cancel(self) -> None:
        pass


async def wait_until(
    predicate: Callable[[], bool], within: float = 10.0, message: str = ""
) -> None:
    """Poll ``predicate`` on the loop (for real threads finishing); fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {message}")
        await asyncio.sleep(0.005)


async def settle(rounds: int = 5) -> None:
    """Let ready callbacks and woken tasks run (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
