"""Expiry: soft warning, then hard revocation, on the manager's clock.

All leases share one timer, armed for the earliest deadline in a heap. A lease
is pushed at acquire (for its soft deadline), again when its soft deadline
passes (for its hard deadline), and again after a renewal. Released leases
leave stale entries behind instead of cancelling anything, which keeps
acquire/release cheap; stale entries are skipped when they surface and the
heap is compacted when they outnumber the live ones.

Submissions also compare the clock with the hard deadline directly, so a late
timer can never let work through after the deadline.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from leasepool._clock import Clock, TimerHandle
from leasepool._lease import LeaseState

if TYPE_CHECKING:
    from leasepool._lease import ExecutorLease


class ExpiryTimers:
    __slots__ = (
        "_clock",
        "_heap",
        "_on_hard",
        "_on_soft",
        "_seq",
        "_stale",
        "_timer",
        "_timer_at",
    )

    def __init__(
        self,
        clock: Clock,
        on_soft: Callable[[ExecutorLease], None],
        on_hard: Callable[[ExecutorLease], None],
    ) -> None:
        self._clock = clock
        self._on_soft = on_soft
        self._on_hard = on_hard
        self._heap: list[tuple[float, int, ExecutorLease]] = []
        self._seq = itertools.count()
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0
        self._stale = 0

    def arm(self, lease: ExecutorLease) -> None:
        """Schedule the lease's next event (soft, or hard once soft has fired)."""
        when = lease._hard_deadline if lease._soft_fired else lease._soft_deadline
        lease._next_event_at = when
        heap = self._heap
        heapq.heappush(heap, (when, next(self._seq), lease))
        if self._timer is None or when < self._timer_at:
            self._set_timer(when)

    def rearm_after_renewal(self, lease: ExecutorLease) -> None:
        if lease._soft_deadline > self._clock.monotonic():
            lease._soft_fired = False
        self.note_stale()
        self.arm(lease)

    def cancel_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._stale = 0

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = self._clock.monotonic()
        while heap and heap[0][0] <= now:
            when, _, lease = heapq.heappop(heap)
            if lease._state is not LeaseState.ACTIVE or lease._next_event_at != when:
                self._stale = max(0, self._stale - 1)
                continue  # released, ended, or re-armed since: a stale entry
            if not lease._soft_fired and now >= lease._soft_deadline:
                lease._soft_fired = True
                self._on_soft(lease)
                if lease._state is not LeaseState.ACTIVE:
                    continue
            if now >= lease._hard_deadline:
                self._on_hard(lease)
            else:
                self.arm(lease)
        heap = self._heap  # _on_hard/_on_soft may have compacted
        if heap and self._timer is None:
            self._set_timer(heap[0][0])

    def note_stale(self) -> None:
        """A lease's heap entry went stale (released, ended or re-armed)."""
        self._stale += 1
        heap = self._heap
        if self._stale * 2 > len(heap) >= 64:
            live = [
                entry
                for entry in heap
                if entry[2]._state is LeaseState.ACTIVE and entry[2]._next_event_at == entry[0]
            ]
            heapq.heapify(live)
            self._heap = live
            self._stale = 0
