"""Clocks.

All expiry and timeout logic reads time from a :class:`Clock` and schedules
wake-ups through it, so unit tests can swap in :class:`leasepool.testing.ManualClock`
and move time forward without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class TimerHandle(Protocol):
    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source that can also schedule callbacks.

    ``call_at`` must run ``callback`` on the event loop thread no earlier than
    ``when`` (in this clock's seconds).
    """

    def monotonic(self) -> float:
        """Seconds on this clock; never goes backwards."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` on the loop thread at ``when`` or later; cancel with the handle."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` plus the running loop's timers."""

    __slots__ = ()

    # A C function, not a method: this is read on every acquire, release and submit.
    monotonic = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        # call_later rather than loop.call_at: a custom loop's time() need not be
        # time.monotonic(), so translate through a delay.
        return loop.call_later(max(0.0, when - time.monotonic()), callback)


MONOTONIC_CLOCK = MonotonicClock()
