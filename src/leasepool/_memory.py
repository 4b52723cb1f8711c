"""The embedded in-process coordinator (the default).

With ``capacity=None`` (what ``coordinator=None`` gives) it never makes anyone
wait: the local pool's ``max_pools`` is the only bound, exactly as in 0.1.3.
Give it a capacity and share one instance between several managers in a
process to cap them together.

It never needs I/O, so ``acquire_nowait`` grants whenever there is room and
nobody is queued (first in, first out), and ``release_nowait`` always
completes. Both raise ``WouldBlock`` only in the cases the interface names.
"""

from __future__ import annotations

import heapq
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from leasepool._clock import MONOTONIC_CLOCK, Clock, TimerHandle
from leasepool._coordinator import (
    Coordinator,
    Grant,
    GrantRequest,
    LeaseRecord,
    LostCallback,
    PoolStatus,
    ReleaseOutcome,
)
from leasepool._errors import LeaseUnavailableError, WouldBlock
from leasepool._statistics import MemoryCoordinatorStatistics
from leasepool._validation import positive_int
from leasepool._waiting import HandoffQueue

# Grant(...) runs a Python-level __new__; this builds the same tuple directly (hot path).
_new_tuple = tuple.__new__
# Enum members read through the class cost ~0.1 us each on Python 3.11: read them once.
_RELEASED = ReleaseOutcome.RELEASED
_EXPIRED = ReleaseOutcome.EXPIRED
_UNKNOWN = ReleaseOutcome.UNKNOWN


@dataclass(slots=True)
class _Slot:
    owner: str
    grace_seconds: float
    token: int
    acquired_at: float
    soft_deadline: float
    hard_deadline: float


def _check_pool_name(pool: object) -> str:
    if not isinstance(pool, str):
        raise TypeError(f"pool must be a str, got {pool!r}")
    if not pool or "{" in pool or "}" in pool:
        raise ValueError(f"pool must be non-empty and contain no '{{' or '}}', got {pool!r}")
    return pool


class FencingCounter:
    """Strictly increasing tokens, seeded from wall time in microseconds.

    Seeding from wall time keeps tokens increasing across restarts of the
    process that holds the counter, as long as fewer than a million tokens a
    second are issued on average.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.time_ns() // 1000

    def next(self) -> int:
        # Seeded once; counting on from there stays ahead of wall time only if
        # more than a million tokens a second are issued, so re-seed when behind.
        last = self._last + 1
        if last & 0xFFF == 0:
            last = max(last, time.time_ns() // 1000)
        self._last = last
        return last


class InMemoryCoordinator(Coordinator):
    """Global slots held in this process's memory."""

    def __init__(self, *, capacity: int | None = None, pool: str = "default") -> None:
        self._pool = _check_pool_name(pool)
        self._capacity = None if capacity is None else positive_int("capacity", capacity)
        self._clock: Clock = MONOTONIC_CLOCK
        self._slots: dict[str, _Slot] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._fencing = FencingCounter()
        self._waiters: HandoffQueue[GrantRequest, GrantRequest] | None = None
        # The waiters' deque while started, None before start and after the last close:
        # the no-wait path tests just this.
        self._queue: Sequence[object] | None = None
        self._expiry_timer: TimerHandle | None = None
        self._lost_callbacks: list[LostCallback] = []
        self._starts = 0
        self._host = socket.gethostname()
        self._waits = 0
        self._reclaimed = 0
        self._grants = 0

    @property
    def pool(self) -> str:
        """The pool name shown in stats and status."""
        return self._pool

    @property
    def capacity(self) -> int | None:
        """The number of slots, or None for unbounded."""
        return self._capacity

    async def start(self, *, clock: Clock, on_lost: LostCallback) -> None:
        """Bind to the manager's clock and loss callback; no I/O."""
        if self._starts == 0:
            self._clock = clock
            self._waiters = HandoffQueue(clock, self._on_orphan_grant)
            self._queue = self._waiters.queue
        self._starts += 1
        self._lost_callbacks.append(on_lost)

    async def close(self) -> None:
        """Undo one :meth:`start`."""
        if self._starts == 0:
            return
        self._starts -= 1
        if self._starts == 0:
            self._queue = None
            if self._expiry_timer is not None:
                self._expiry_timer.cancel()
                self._expiry_timer = None
            self._lost_callbacks.clear()

    # -- granting ---------------------------------------------------------

    def _reclaim_expired(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            deadline, lease_id = heapq.heappop(heap)
            slot = self._slots.get(lease_id)
            # Renewals push a new heap entry; the old one is stale.
            if slot is not None and slot.hard_deadline == deadline:
                del self._slots[lease_id]
                self._reclaimed += 1

    def _has_room(self, now: float) -> bool:
        if self._capacity is None:
            return True
        if len(self._slots) < self._capacity:
            return True
        self._reclaim_expired(now)
        return len(self._slots) < self._capacity

    def _grant(self, request: GrantRequest, now: float) -> Grant:
        lease_id, owner, lease_seconds, grace_seconds = request
        soft = now + lease_seconds
        hard = soft + grace_seconds
        token = self._fencing.next()
        self._slots[lease_id] = _Slot(owner, grace_seconds, token, now, soft, hard)
        if self._capacity is not None:
            heapq.heappush(self._expiry_heap, (hard, lease_id))
        self._grants += 1
        return _new_tuple(Grant, (lease_id, token, soft, hard))

    def acquire_nowait(self, request: GrantRequest, *, now: float) -> Grant:
        """Grant at once if there is room and nobody is queued, else raise :class:`WouldBlock`.

        The manager's hot path: no await, no I/O. ``now`` is the caller's reading
        of the clock given to :meth:`start`.
        """
        queue = self._queue
        if queue is None or queue:
            raise WouldBlock(
                f"pool {self._pool!r}: "
                + ("not started" if queue is None else f"{len(queue)} callers are waiting")
            )
        if self._capacity is not None and not self._has_room(now):
            raise WouldBlock(f"pool {self._pool!r} is at capacity {self._capacity}")
        return self._grant(request, now)

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        """Grant a slot, waiting first in, first out when full (see :meth:`Coordinator.acquire`)."""
        waiters = self._waiters
        assert waiters is not None, "start() first"
        now = self._clock.monotonic()
        if not waiters.queue and self._has_room(now):
            return self._grant(request, now)
        if not wait:
            raise LeaseUnavailableError(
                f"pool {self._pool!r} is at capacity {self._capacity}"
                + (f" with {len(waiters)} waiting" if waiters else "")
            )
        self._waits += 1
        self._arm_expiry_timer(about_to_wait=True)
        granted = await waiters.wait(
            deadline, f"timed out waiting for a slot in pool {self._pool!r}", request
        )
        slot = self._slots[granted.lease_id]
        return Grant(granted.lease_id, slot.token, slot.soft_deadline, slot.hard_deadline)

    def _on_orphan_grant(self, request: GrantRequest) -> None:
        # The waiter was cancelled after its slot was granted: free it again.
        self._slots.pop(request.lease_id, None)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant free slots to waiters, oldest first, as many as there is room for."""
        waiters = self._waiters
        if waiters is None:
            return
        while waiters and self._has_room(self._clock.monotonic()):
            request = self._peek_live_waiter()
            if request is None:
                break
            self._grant(request, self._clock.monotonic())
            if not waiters.hand_off(request):
                self._slots.pop(request.lease_id, None)
                break
        self._arm_expiry_timer()

    def _peek_live_waiter(self) -> GrantRequest | None:
        waiters = self._waiters
        assert waiters is not None
        return waiters.peek_payload()

    def _arm_expiry_timer(self, *, about_to_wait: bool = False) -> None:
        """While anyone waits, wake at the earliest hard expiry to reclaim it."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if not (about_to_wait or self._waiters) or not self._expiry_heap:
            return
        self._expiry_timer = self._clock.call_at(self._expiry_heap[0][0], self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self._reclaim_expired(self._clock.monotonic())
        self._dispatch()

    # -- holding ----------------------------------------------------------

    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Free the slot, as :meth:`release_nowait`. Idempotent."""
        return self.release_nowait(lease_id)

    def release_nowait(self, lease_id: str) -> ReleaseOutcome:
        """:meth:`release` with no await: the embedded coordinator never needs I/O."""
        slot = self._slots.pop(lease_id, None)
        if slot is None:
            return _UNKNOWN
        if self._queue:
            self._dispatch()
        if self._clock.monotonic() >= slot.hard_deadline:
            return _EXPIRED
        return _RELEASED

    async def renew(self, renewals: Mapping[str, float]) -> dict[str, Grant | None]:
        """Extend held leases: id -> new grant, or None for an id no longer held. Never shortens."""
        now = self._clock.monotonic()
        result: dict[str, Grant | None] = {}
        for lease_id, seconds in renewals.items():
            slot = self._slots.get(lease_id)
            if slot is None or now >= slot.hard_deadline:
                result[lease_id] = None
                continue
            soft = max(slot.soft_deadline, now + seconds)
            hard = max(slot.hard_deadline, soft + slot.grace_seconds)
            if hard != slot.hard_deadline and self._capacity is not None:
                heapq.heappush(self._expiry_heap, (hard, lease_id))
            slot.soft_deadline, slot.hard_deadline = soft, hard
            result[lease_id] = Grant(lease_id, slot.token, soft, hard)
        return result

    async def revoke(self, lease_id: str) -> bool:
        """Remove a lease by id (an operator action). True if it was live."""
        slot = self._slots.pop(lease_id, None)
        if slot is None:
            return False
        for callback in list(self._lost_callbacks):
            callback(lease_id)
        self._dispatch()
        return True

    async def set_capacity(self, capacity: int) -> None:
        """Change the capacity; shrinking never revokes a live lease."""
        self._capacity = positive_int("capacity", capacity)
        self._expiry_heap = [(s.hard_deadline, i) for i, s in self._slots.items()]
        heapq.heapify(self._expiry_heap)
        self._dispatch()

    async def status(self) -> PoolStatus:
        """The pool's capacity, live leases and waiting callers, from memory."""
        now = self._clock.monotonic()
        self._reclaim_expired(now)
        wall_ms = time.time_ns() // 1_000_000
        pid = os.getpid()

        def to_ms(t: float) -> int:
            return wall_ms + round((t - now) * 1000)

        leases = tuple(
            LeaseRecord(
                lease_id=lease_id,
                owner=slot.owner,
                host=self._host,
                pid=pid,
                token=slot.token,
                acquired_ms=to_ms(slot.acquired_at),
                soft_ms=to_ms(slot.soft_deadline),
                hard_ms=to_ms(slot.hard_deadline),
            )
            for lease_id, slot in self._slots.items()
            if slot.hard_deadline > now
        )
        return PoolStatus(self._pool, self._capacity, leases, len(self._waiters or ()), wall_ms)

    def statistics(self) -> MemoryCoordinatorStatistics:
        """Counters for ``manager.stats()["coordinator"]``; no I/O."""
        return {
            "kind": "memory",
            "pool": self._pool,
            "capacity": self._capacity,
            "held": len(self._slots),
            "waiting": len(self._waiters or ()),
            "grants": self._grants,
            "waits": self._waits,
            "reclaimed": self._reclaimed,
        }
