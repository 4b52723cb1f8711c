"""This process's waiters for one Redis pool: first in, first out, served in parallel.

Like :class:`leasepool._waiting.HandoffQueue`, but each waiter is asked for by
its own request (its own lease id), so several of the oldest waiters can be
tried at once, one script call each, and each grant goes to the waiter it was
made for. That is what lets many freed slots be refilled in parallel instead
of one round trip after another.

A waiter is *claimed* while a try for it is in flight; :meth:`claim_next`
returns the oldest unclaimed live waiter. A waiter cancelled or timed out after
its grant was set hands the grant to ``on_orphan`` so it is never lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from leasepool._clock import Clock
from leasepool._coordinator import Grant, GrantRequest


class Waiter:
    __slots__ = ("claimed", "future", "request")

    def __init__(self, future: asyncio.Future[Grant], request: GrantRequest) -> None:
        self.future = future
        self.request = request
        self.claimed = False


class WaiterQueue:
    """Waiters in arrival order."""

    __slots__ = ("_clock", "_entries", "_on_orphan")

    def __init__(self, clock: Clock, on_orphan: Callable[[Grant], None]) -> None:
        self._clock = clock
        self._on_orphan = on_orphan
        self._entries: deque[Waiter] = deque()

    def __len__(self) -> int:
        return sum(1 for w in self._entries if not w.future.done())

    def __bool__(self) -> bool:
        return any(not w.future.done() for w in self._entries)

    def has_unclaimed(self) -> bool:
        return any(not w.claimed and not w.future.done() for w in self._entries)

    def claim_next(self) -> Waiter | None:
        """The oldest live waiter nobody is trying for yet, now claimed; or None."""
        for waiter in self._entries:
            if not waiter.claimed and not waiter.future.done():
                waiter.claimed = True
                return waiter
        return None

    @staticmethod
    def unclaim(waiter: Waiter) -> None:
        waiter.claimed = False

    @staticmethod
    def resolve(waiter: Waiter, grant: Grant) -> bool:
        """Give ``grant`` to the waiter it was made for. False if that waiter left."""
        waiter.claimed = False
        if waiter.future.done():
            return False
        waiter.future.set_result(grant)
        return True

    def fail_all(self, exc_factory: Callable[[], BaseException]) -> None:
        for waiter in self._entries:
            if not waiter.future.done():
                waiter.future.set_exception(exc_factory())

    async def wait(
        self, request: GrantRequest, deadline: float | None, timeout_message: str
    ) -> Grant:
        """Queue ``request`` and wait for its grant until ``deadline`` (``TimeoutError`` after)."""
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        waiter = Waiter(future, request)
        self._entries.append(waiter)
        timer = None
        if deadline is not None:

            def on_deadline() -> None:
                if not future.done():
                    future.set_exception(TimeoutError(timeout_message))

            timer = self._clock.call_at(deadline, on_deadline)
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._on_orphan(future.result())  # granted, then cancelled before use
            elif not future.done():
                future.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._entries.remove(waiter)
