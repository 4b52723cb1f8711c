"""Test helpers that are part of the public API.

:class:`ManualClock` lets your own tests drive lease expiry without sleeping::

    clock = ManualClock()
    manager = LeasedExecutorManager(max_pools=1, clock=clock)
    ...
    clock.advance(301)   # soft and hard expiry fire now

:mod:`leasepool.testing.contract` is the coordinator contract suite, for authors of
a custom :class:`~leasepool.Coordinator`. It needs pytest; this package does not, and
importing it does not import that submodule.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from leasepool._validation import finite_number

__all__ = ["ManualClock"]


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when :meth:`advance` is called.

    Due callbacks run synchronously inside :meth:`advance`, in deadline order,
    so the state after ``advance`` returns is deterministic. Callbacks that wake
    asyncio futures still need one ``await asyncio.sleep(0)`` for the woken task
    to run.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = finite_number("start", start)
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        """The current time: where :meth:`advance` left it."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> _ManualTimer:
        """Schedule ``callback`` to run once :meth:`advance` reaches ``when``."""
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and run every callback now due."""
        seconds = finite_number("seconds", seconds)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        """How many scheduled, uncancelled callbacks are waiting."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)
