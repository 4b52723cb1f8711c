"""Requests of one Redis coordinator: acquire items (waiters), and calls batched in order.

An :class:`AcquireItem` is one ``acquire`` call: a
:class:`~leasepool._redis.waiting_events.Waiter` of the waiting state machine
(whose ``phase`` says where its request stands in Redis) with its caller's
future and deadline timer. With ``wait=True`` it lives in the machine's
waiting map until it is granted, refused, fails, times out or is cancelled.

A :class:`CallQueue` keeps at most one script call of a kind in flight. The
first request goes out at once from the caller's own task (no task is created
on that path); requests that arrive while a call is in flight go together in
the next call, from a background task, in arrival order. So one process's
enqueues reach Redis in the order its callers made them, and under load many
requests share one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from leasepool._clock import Clock, TimerHandle
from leasepool._coordinator import Grant, GrantRequest, ReleaseOutcome
from leasepool._redis.waiting_events import Phase, Waiter

T = TypeVar("T")


class AcquireItem(Waiter):
    """One acquire request: the machine's :class:`Waiter` plus its caller's future."""

    __slots__ = ("arg", "future", "key", "request", "timer")

    def __init__(
        self,
        request: GrantRequest,
        key: str,
        arg: str,
        wait: bool,
        deadline: float | None,
        future: asyncio.Future[Grant],
    ) -> None:
        super().__init__(request.lease_id, wait, deadline)
        self.request = request
        self.key = key
        self.arg = arg
        """One request of ``acquire.lua`` (``protocol.encode_acquire_request``)."""
        self.future = future
        self.timer: TimerHandle | None = None

    def live(self) -> bool:
        """Someone still awaits this item's grant (a cancelled caller is gone at once)."""
        return not self.resolved and not self.future.done()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Bound:
    """Cancels ``task`` at ``limit`` (on ``clock``) unless ``item`` is settled by then.

    ``fired`` tells the task that the cancellation was this bound's; ``answered``
    whether Redis had answered by then (the item was queued, not in a call).
    """

    __slots__ = ("_handle", "_item", "_task", "answered", "fired")

    def __init__(
        self, clock: Clock, limit: float, task: asyncio.Task[Any], item: AcquireItem
    ) -> None:
        self._task = task
        self._item = item
        self.fired = False
        self.answered = False
        self._handle: TimerHandle | None = clock.call_at(limit, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._item.future.done() and not self._task.done():
            self.fired = True
            self.answered = self._item.phase in (Phase.QUEUED, Phase.CLAIMING)
            self._task.cancel()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class ReleaseItem:
    """One release request; ``tomb`` > 0 leaves a tombstone (a cancelled acquire)."""

    __slots__ = ("future", "key", "lease_id", "tomb")

    def __init__(
        self, lease_id: str, key: str, tomb: int, future: asyncio.Future[ReleaseOutcome]
    ) -> None:
        self.lease_id = lease_id
        self.key = key
        self.tomb = tomb
        self.future = future


class CallQueue(Generic[T]):
    """At most one call in flight; what arrives meanwhile goes in the next call, in order.

    ``send`` performs one call for a batch and settles every item of it; it
    must not raise except ``CancelledError`` (when its caller is cancelled it
    is the caller's job to deal with the unknown outcome).
    """

    __slots__ = ("_busy", "_limit", "_send", "_spawn", "pending")

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        spawn: Callable[[Awaitable[Any]], object],
        limit: int,
    ) -> None:
        self._send = send
        self._spawn = spawn
        self._limit = limit
        self._busy = False
        self.pending: list[T] = []

    @property
    def busy(self) -> bool:
        return self._busy

    async def submit(self, item: T) -> bool:
        """Send ``item`` now from this task (True), or queue it for the next call (False)."""
        if self._busy:
            self.pending.append(item)
            return False
        self._busy = True
        try:
            await self._send([item])
        finally:
            self._busy = False
            if self.pending:
                self._busy = True
                self._spawn(self._drain())
        return True

    def discard(self, item: T) -> bool:
        """Take a not yet sent item out of the queue. False if it is not queued."""
        try:
            self.pending.remove(item)
        except ValueError:
            return False
        return True

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch = self.pending[: self._limit]
                del self.pending[: self._limit]
                await self._send(batch)
        finally:
            self._busy = False
