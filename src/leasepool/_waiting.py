"""First-in, first-out waiting with direct handoff.

A freed resource is handed straight to the oldest live waiter instead of
being put back and announced: no herd wakes up, and a newcomer cannot take a
resource that a woken waiter was about to get (no barging).

Cancellation safety: a waiter that is cancelled or times out *after* it was
handed an item gives the item back through ``on_orphan`` so it is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from leasepool._clock import Clock

T = TypeVar("T")
P = TypeVar("P")


class HandoffQueue(Generic[T, P]):
    """Waiters in arrival order. Each waiter may carry a payload (what it asks for)."""

    __slots__ = ("_clock", "_on_orphan", "_waiters", "queue")

    def __init__(self, clock: Clock, on_orphan: Callable[[T], None]) -> None:
        self._clock = clock
        self._on_orphan = on_orphan
        self._waiters: deque[tuple[asyncio.Future[T], P | None]] = deque()
        # The same deque, public so hot paths can test it for emptiness without a call.
        self.queue = self._waiters

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:
        return bool(self._waiters)

    def peek_payload(self) -> P | None:
        """The payload of the oldest live waiter (dropping dead ones), or None."""
        waiters = self._waiters
        while waiters:
            waiter, payload = waiters[0]
            if not waiter.done():
                return payload
            waiters.popleft()
        return None

    def hand_off(self, item: T) -> bool:
        """Give ``item`` to the oldest waiter. False if nobody is waiting."""
        waiters = self._waiters
        while waiters:
            waiter, _ = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def fail_all(self, exc_factory: Callable[[], BaseException]) -> None:
        """Wake every waiter with an error (the manager is stopping)."""
        waiters = self._waiters
        while waiters:
            waiter, _ = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc_factory())

    async def wait(
        self, deadline: float | None, timeout_message: str, payload: P | None = None
    ) -> T:
        """Wait for an item until ``deadline`` (on the clock); ``TimeoutError`` after."""
        if deadline is not None and deadline <= self._clock.monotonic():
            # Already due (timeout=0): fail now rather than queue until a timer runs.
            raise TimeoutError(timeout_message)
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry = (waiter, payload)
        self._waiters.append(entry)
        timer = None
        if deadline is not None:

            def on_deadline() -> None:
                if not waiter.done():
                    waiter.set_exception(TimeoutError(timeout_message))

            timer = self._clock.call_at(deadline, on_deadline)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed an item, then cancelled before we could use it.
                self._on_orphan(waiter.result())
            elif not waiter.done():
                waiter.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
