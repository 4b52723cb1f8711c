"""One timer for many deadlines: :class:`EarliestTimer`.

Invariants:

* At most one clock timer is armed, for the earliest time anyone asked for
  since it last fired (or earlier: never later).
* Arming for a later time than the armed one does nothing, so arming is one
  comparison on the hot path (every acquire).
* When it fires, the owner's scan callback runs with the clock's reading and
  returns the next time anything is due (or None); the timer re-arms for it.
  A time that is no longer needed (its lease was released) costs one scan at
  most, when it comes.

The owner (the manager's :class:`leasepool._lease.LeaseBook`) keeps the
deadlines; this module knows times only, never leases.
"""

from __future__ import annotations

from collections.abc import Callable

from leasepool._clock import Clock, TimerHandle


class EarliestTimer:
    __slots__ = ("_clock", "_on_fire", "_timer", "_timer_at")

    def __init__(self, clock: Clock, on_fire: Callable[[float], float | None]) -> None:
        self._clock = clock
        self._on_fire = on_fire
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0

    def arm(self, when: float) -> None:
        """Make sure the timer fires at ``when`` or earlier."""
        if self._timer is None or when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self._clock.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        upcoming = self._on_fire(self._clock.monotonic())
        if upcoming is not None:
            self.arm(upcoming)
