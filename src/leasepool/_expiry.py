"""Expiry: soft warning, then hard revocation, on the manager's clock.

All leases share ONE timer, armed for the earliest pending event (a soft
deadline, or a hard deadline once the soft one has passed). Acquire only
compares its lease's soft deadline with the armed time, and release does
nothing at all, which keeps both cheap. When the timer fires it scans the live
leases: it runs what is due and re-arms for the earliest of the rest. A lease
released before its deadline can leave the timer armed for a moment when
nothing is due; that costs one scan, at most about once per lease duration.

Submissions also compare the clock with the hard deadline directly, so a late
timer can never let work through after the deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from leasepool._clock import Clock, TimerHandle
from leasepool._lease import LeaseState

if TYPE_CHECKING:
    from leasepool._lease import ExecutorLease


class ExpiryTimers:
    __slots__ = ("_clock", "_leases", "_on_hard", "_on_soft", "_timer", "_timer_at")

    def __init__(
        self,
        clock: Clock,
        leases: Mapping[str, ExecutorLease],
        on_soft: Callable[[ExecutorLease], None],
        on_hard: Callable[[ExecutorLease], None],
    ) -> None:
        self._clock = clock
        self._leases = leases
        self._on_soft = on_soft
        self._on_hard = on_hard
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0

    def arm(self, lease: ExecutorLease) -> None:
        """Schedule the lease's next event (soft, or hard once soft has fired)."""
        when = lease._hard_deadline if lease._soft_fired else lease._soft_deadline
        lease._next_event_at = when
        if self._timer is None or when < self._timer_at:
            self._set_timer(when)

    def rearm_after_renewal(self, lease: ExecutorLease) -> None:
        if lease._soft_deadline > self._clock.monotonic():
            lease._soft_fired = False
        self.arm(lease)

    def cancel_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.monotonic()
        due = [lease for lease in self._leases.values() if lease._next_event_at <= now]
        for lease in due:
            if lease._state is not LeaseState.ACTIVE:
                continue
            if not lease._soft_fired and now >= lease._soft_deadline:
                lease._soft_fired = True
                self._on_soft(lease)
                if lease._state is not LeaseState.ACTIVE:
                    continue
            if now >= lease._hard_deadline:
                self._on_hard(lease)
            else:
                lease._next_event_at = lease._hard_deadline
        if self._timer is None:
            upcoming = [
                lease._next_event_at
                for lease in self._leases.values()
                if lease._state is LeaseState.ACTIVE
            ]
            if upcoming:
                self._set_timer(min(upcoming))
