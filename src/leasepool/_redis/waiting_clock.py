"""Time in the waiting state machine: the held-lease view with its anchor, and the timer.

No I/O and no clock reads: every local time comes in as an argument.

Invariants:

* :class:`HeldView` computes every local deadline from an anchor no later than the
  script's real instant (:mod:`leasepool._redis.deadlines`), and never moves a held
  lease's deadline earlier than the one it already knows (a renewal only extends).
* :class:`ProcessTimer` is armed, while anyone waits, at the next heartbeat (at most
  ``recheck`` seconds away) or once Redis has certainly passed the earliest expiry it
  reported, whichever is first, and never sooner than :data:`MIN_TIMER_GAP` from now.
"""

from __future__ import annotations

from leasepool._coordinator import Grant
from leasepool._redis.deadlines import grant_deadlines, passed_by
from leasepool._redis.protocol import AcquireRow, OwnGrant, RenewRow, TicketRow
from leasepool._redis.waiting_events import Held

MIN_TIMER_GAP = 0.01
"""The timer never fires sooner than this after it is armed (no busy loop)."""
EXPIRY_SLACK = 0.002
KEEP_INTERVAL = 30.0
"""Seconds between TTL renewals of the waiting keys (under the scripts' 60 s SLACK)."""


class HeldView:
    """The leases this process holds, with local deadlines, and the latest anchor."""

    def __init__(self, drift: float) -> None:
        self._drift = drift
        self.leases: dict[str, Held] = {}
        self.anchor: tuple[float, int] = (0.0, 0)
        """(local time a call was sent, server ms its script reported): the latest reply."""

    def note(self, t_sent: float, now_ms: int) -> None:
        """A reply came back: keep the most recent anchor."""
        if t_sent >= self.anchor[0]:
            self.anchor = (t_sent, now_ms)

    def grant(
        self,
        lease_id: str,
        t_sent: float,
        row: TicketRow | AcquireRow | OwnGrant | RenewRow,
        now_ms: int,
        *,
        hold: bool = True,
    ) -> Grant:
        """The grant of ``row``, timed from the anchor ``(t_sent, now_ms)``; noted as held.

        ``hold=False`` (a renewal): only a lease still held is updated, so a reply
        that arrives after the release never puts its entry back.
        """
        token = row.value if isinstance(row, AcquireRow) else row.token
        soft, hard = grant_deadlines(t_sent, now_ms, row.soft_ms, row.hard_ms, self._drift)
        held = self.leases.get(lease_id)
        if held is not None and held.token == token:
            soft, hard = max(soft, held.soft), max(hard, held.hard)
        if hold or held is not None:
            self.leases[lease_id] = Held(token, soft, hard)
        return Grant(lease_id, token, soft, hard)


class ProcessTimer:
    """When the one process timer must fire (see the module docstring)."""

    def __init__(self, recheck: float, drift: float) -> None:
        self._recheck = recheck
        self._drift = drift
        self.beat_at: float | None = None
        self.expiry_at: float | None = None
        self.armed_at: float | None = None
        self._keep_at = 0.0

    def note_expiry(self, now: float, now_ms: int, earliest_ms: int) -> None:
        """Recheck once Redis has passed ``earliest_ms`` (measured from ``now``, when the
        reply was read)."""
        at = passed_by(now, now_ms, earliest_ms, self._drift) + EXPIRY_SLACK
        if self.expiry_at is None or at < self.expiry_at:
            self.expiry_at = at

    def beat_soon(self, now: float) -> None:
        """Someone queued: the next heartbeat within ``recheck`` (unless one is due)."""
        if self.beat_at is None:
            self.beat_at = now + self._recheck

    def beating(self, now: float, *, full: bool, waiting: bool) -> bool:
        """A heartbeat goes out now (a full check forgets the expiry it covers). True when
        the waiting keys' TTLs are due for renewal too (only while we wait)."""
        self.beat_at = now + self._recheck
        if full:
            self.expiry_at = None
        if waiting and now >= self._keep_at:
            self._keep_at = now + KEEP_INTERVAL
            return True
        return False

    def arm(self, now: float) -> float | None:
        """The new time to arm the timer at; None when it is armed there already."""
        self.beat_soon(now)
        assert self.beat_at is not None
        when = self.beat_at
        if self.expiry_at is not None:
            when = min(when, self.expiry_at)
        when = max(when, now + MIN_TIMER_GAP)
        if self.armed_at == when:
            return None
        self.armed_at = when
        return when

    def stop(self) -> bool:
        """Nobody waits: forget the beat and the expiry. True if the timer was armed."""
        self.beat_at = self.expiry_at = None
        armed, self.armed_at = self.armed_at is not None, None
        return armed

    def fired(self, now: float) -> bool:
        """The timer fired: True when Redis has passed the earliest expiry (a full check)."""
        self.armed_at = None
        return self.expiry_at is not None and self.expiry_at <= now
