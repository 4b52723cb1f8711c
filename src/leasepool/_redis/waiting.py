"""The waiting state machine of the Redis coordinator: no I/O, no asyncio, no clock.

:class:`WaitingMachine` owns what this process knows about waiting and holding:
the waiters (in arrival order), the grants handed to them and not yet claimed,
the held leases' local deadlines, the clock anchor, and when the one process
timer must fire (the next heartbeat, or the earliest expiry Redis reported). It
takes decoded script replies (:mod:`leasepool._redis.protocol`), events (a
``grant``, ``free`` or ``revoke`` message, the subscriber (re)connected, a
caller that left, a timer that fired) and clock readings passed in, and answers
with actions (:mod:`leasepool._redis.waiting_events`) for the coordinator to
carry out. The states and transitions are tabled in ``docs/architecture.md``.

Invariants (each kept by the one method named):

* A grant message never activates a lease: it moves its waiter to ``CLAIMING``
  and asks for a claim (:meth:`grant_event`); only a reply to a call of ours
  (acquire, release, or the claim's heartbeat) settles a waiter, timed from
  when that call was sent (:meth:`~leasepool._redis.waiting_clock.HeldView.grant`).
* Every local deadline is measured from an anchor no later than the script's
  real instant (:mod:`leasepool._redis.deadlines`), and a renewal never moves
  a deadline earlier.
* A waiter is settled or failed at most once; a grant whose waiter is gone is
  released (:meth:`orphan`); a waiter that leaves with a ticket in Redis gets
  it released with a tombstone (:meth:`left`).
* While anyone waits, a timer is armed: a heartbeat at least once per
  ``recheck`` and a full check once Redis has passed the earliest expiry it
  reported (nobody announces an expiry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from leasepool._coordinator import Grant
from leasepool._errors import LeasePoolError, LeaseUnavailableError
from leasepool._redis.protocol import (
    AcquireReply,
    AcquireRow,
    AcquireStatus,
    HeartbeatReply,
    OwnGrant,
    RenewReply,
    RenewStatus,
    TicketRow,
    TicketStatus,
)
from leasepool._redis.waiting_clock import HeldView, ProcessTimer
from leasepool._redis.waiting_events import (
    COUNTERS,
    Action,
    ArmDeadline,
    ArmTimer,
    Discard,
    Enqueue,
    Fail,
    Held,
    Lost,
    Phase,
    Release,
    Settle,
    StartClaims,
    StartSync,
    SyncPlan,
    Waiter,
)

W = TypeVar("W", bound=Waiter)

HEARTBEAT_IDS = 1000
"""Ids per heartbeat call, at most (heartbeat.lua refuses more)."""

_TICKETS = (Phase.QUEUED, Phase.CLAIMING)
"""Phases in which the waiter has a ticket (or a grant to claim) in Redis."""


class WaitingMachine:
    """See the module docstring. ``pool`` names the pool in error messages."""

    def __init__(self, *, pool: str, drift: float, recheck: float) -> None:
        self._pool = pool
        self.active = False
        """Between start and close: timers and loops may run."""
        self.waiting: dict[str, Waiter] = {}
        """This process's waiters (wait=True), in arrival order."""
        self._view = HeldView(drift)
        self._timer = ProcessTimer(recheck, drift)
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.stored_capacity: int | None = None
        self.pool_queued: int | None = None
        self.ever_queued = False
        self._claims: dict[str, None] = {}
        """Ids whose claim is asked for and not sent yet."""
        self._claiming = False
        self._sync_full = False
        self._sync_beat = False
        self._syncing = False

    # -- lifecycle --------------------------------------------------------------

    def start(self, t_sent: float, now_ms: int, capacity: int) -> None:
        self._view.anchor = (t_sent, now_ms)
        self.stored_capacity = capacity
        self.active = True

    def close(self, unsent: Iterable[Waiter], error: BaseException) -> list[Action]:
        """Stop: fail every caller, release every ticket and unclaimed grant."""
        self.active = False
        actions: list[Action] = [ArmTimer(None)] if self._timer.stop() else []
        for waiter in unsent:
            waiter.phase = Phase.DONE
            self._fail(waiter, error, actions)
        for waiter in list(self.waiting.values()):
            if waiter.phase in _TICKETS:
                actions.append(Release(waiter.lease_id, tomb=True))
                waiter.phase = Phase.DONE
            self._fail(waiter, error, actions)
        self.waiting.clear()
        self._claims.clear()
        return actions

    @property
    def held(self) -> dict[str, Held]:
        """The leases this process holds (their local deadlines)."""
        return self._view.leases

    @property
    def anchor(self) -> tuple[float, int]:
        return self._view.anchor

    def forget_all(self) -> None:
        self.held.clear()
        self._syncing = self._claiming = False

    # -- small helpers ------------------------------------------------------------

    def note(self, t_sent: float, now_ms: int) -> None:
        """A reply came back: keep the most recent anchor."""
        self._view.note(t_sent, now_ms)

    def _fail(self, waiter: Waiter, error: BaseException, actions: list[Action]) -> None:
        if self.waiting.get(waiter.lease_id) is waiter:
            del self.waiting[waiter.lease_id]
        if waiter.live():
            waiter.resolved = True
            actions.append(Fail(waiter, error))

    def _settle(self, waiter: Waiter, grant: Grant, actions: list[Action]) -> None:
        """Give ``grant`` to ``waiter``; a waiter that left gets its grant released."""
        if waiter.phase is Phase.PENDING:
            actions.append(Discard(waiter))  # queued again, but granted first: never send
        waiter.phase = Phase.DONE
        self._claims.pop(waiter.lease_id, None)
        if self.waiting.get(waiter.lease_id) is waiter:
            del self.waiting[waiter.lease_id]
        if waiter.live():
            waiter.resolved = True
            actions.append(Settle(waiter, grant))
        else:
            actions += self.orphan(waiter.lease_id)

    def orphan(self, lease_id: str) -> list[Action]:
        """A grant whose waiter left: release it (the slot goes on to the next waiter)."""
        self.held.pop(lease_id, None)
        self._claims.pop(lease_id, None)
        self.counters["orphans_released"] += 1
        return [Release(lease_id, tomb=False)]

    def unclaimed(self) -> int:
        return sum(1 for w in self.waiting.values() if w.phase is Phase.CLAIMING)

    # -- acquiring ------------------------------------------------------------------

    def enqueue(self, waiter: Waiter) -> None:
        """A new acquire. ``wait=False`` is refused while this process has waiters."""
        if not waiter.wait and self.waiting:
            self.counters["refusals"] += 1
            raise LeaseUnavailableError(
                f"pool {self._pool!r} has {len(self.waiting)} waiting in this process"
            )
        if waiter.wait:
            self.waiting[waiter.lease_id] = waiter

    def sending(self, batch: Sequence[W]) -> list[W]:
        """The requests of ``batch`` to send now (still PENDING); they become SENT."""
        out = [w for w in batch if w.phase is Phase.PENDING]
        for waiter in out:
            waiter.phase = Phase.SENT
        return out

    def acquire_failed(self, sent: Sequence[Waiter], error: BaseException | None) -> list[Action]:
        """An acquire call failed after it may have run: leave nothing taken (tombstones
        stop a late-arriving acquire), and fail its callers with ``error`` if given."""
        actions: list[Action] = []
        for waiter in sent:
            waiter.phase = Phase.DONE
            actions.append(Release(waiter.lease_id, tomb=True))
            if error is not None:
                self._fail(waiter, error, actions)
        return actions

    def acquire_replied(
        self, sent: Sequence[Waiter], t_sent: float, now: float, reply: AcquireReply
    ) -> list[Action]:
        """``acquire.lua`` answered ``sent`` (call sent at ``t_sent``, read at ``now``)."""
        self.note(t_sent, reply.now_ms)
        self.stored_capacity = reply.capacity
        if reply.queued >= 0:
            self.pool_queued = reply.queued
        actions: list[Action] = []
        if reply.revived and any(w.phase is Phase.QUEUED for w in self.waiting.values()):
            # We had stopped counting as alive: our older tickets may have been dropped.
            self._request_sync(actions, full=True)
        any_queued = False
        for waiter, row in zip(sent, reply.rows, strict=True):
            if row.status is AcquireStatus.GRANTED:
                self.counters["grants"] += 1
                grant = self._view.grant(waiter.lease_id, t_sent, row, reply.now_ms)
                self._settle(waiter, grant, actions)
            elif row.status is AcquireStatus.QUEUED:
                any_queued = self._queued(waiter, actions) or any_queued
            else:
                waiter.phase = Phase.DONE
                self._fail(waiter, self._refusal(waiter, row, reply), actions)
        for own in reply.own:
            self._handed(own, t_sent, reply.now_ms, actions)
        if any_queued:
            if reply.earliest_ms >= 0:
                self._timer.note_expiry(now, reply.now_ms, reply.earliest_ms)
            self._timer.beat_soon(now)
            self._arm(now, actions)
        return actions

    def _queued(self, waiter: Waiter, actions: list[Action]) -> bool:
        """The reply says ``waiter``'s ticket waits in Redis; True if it still does."""
        if waiter.phase is not Phase.SENT:
            return False  # a grant for it came first (its claim settles it)
        if not waiter.live():
            waiter.phase = Phase.DONE
            actions.append(Release(waiter.lease_id, tomb=True))
            return False
        waiter.phase = Phase.QUEUED
        self.ever_queued = True
        self.counters["waits"] += 1
        if waiter.deadline is not None:
            actions.append(ArmDeadline(waiter, waiter.deadline))
        return True

    def _refusal(self, waiter: Waiter, row: AcquireRow, reply: AcquireReply) -> LeasePoolError:
        if row.status is not AcquireStatus.REFUSED:
            return LeasePoolError(f"the acquire of {waiter.lease_id!r} was cancelled")
        self.counters["refusals"] += 1
        pool, capacity, queued = self._pool, reply.capacity, reply.queued
        if capacity == 0:
            return LeaseUnavailableError(f"pool {pool!r} is paused (its capacity is 0)")
        if row.value < capacity:
            return LeaseUnavailableError(f"pool {pool!r} has {queued} waiting (fair=True)")
        why = f"pool {pool!r} is at its capacity of {capacity}"
        return LeaseUnavailableError(why + (f", with {queued} waiting" if queued > 0 else ""))

    def deadline_passed(self, waiter: Waiter) -> list[Action]:
        """The waiter's own deadline (armed by :class:`ArmDeadline`) has come."""
        actions: list[Action] = []
        if waiter.live():
            error = TimeoutError(f"timed out waiting for a slot in pool {self._pool!r}")
            self._fail(waiter, error, actions)
        return actions

    def left(self, waiter: Waiter, *, kept_grant: bool) -> list[Action]:
        """The caller of ``waiter`` is gone (error, timeout, cancellation); ``kept_grant``:
        it was settled but never took its grant. Leave nothing behind."""
        if self.waiting.get(waiter.lease_id) is waiter:
            del self.waiting[waiter.lease_id]
        waiter.resolved = True
        if kept_grant:
            return self.orphan(waiter.lease_id)
        actions: list[Action] = []
        if waiter.phase is Phase.PENDING:
            waiter.phase = Phase.DONE
            actions.append(Discard(waiter))
        elif waiter.phase in _TICKETS:
            self._claims.pop(waiter.lease_id, None)
            waiter.phase = Phase.DONE
            actions.append(Release(waiter.lease_id, tomb=True))
        # SENT: the reply, when it comes, finds the waiter gone and cleans up.
        if not self.waiting:
            self._arm(None, actions)
        return actions

    # -- grants handed to us --------------------------------------------------------

    def _handed(self, grant: OwnGrant, t_anchor: float, s_anchor: int, acts: list[Action]) -> None:
        """A slot was handed to our ticket ``grant.lease_id``, in a reply to a call of ours
        sent at ``t_anchor``."""
        waiter = self.waiting.get(grant.lease_id)
        if waiter is None or not waiter.live():
            # Our ticket, but its waiter left: nobody else will release it. (A grant we
            # already hold, found first by a heartbeat, is not news: keep it.)
            if grant.lease_id not in self.held:
                acts += self.orphan(grant.lease_id)
            return
        if grant.claim_ms < grant.hard_ms:
            self._ask_claim(waiter, acts)  # Redis counts it only until its claim deadline
            return
        self.counters["handoffs"] += 1
        self._settle(waiter, self._view.grant(grant.lease_id, t_anchor, grant, s_anchor), acts)

    def _ask_claim(self, waiter: Waiter, actions: list[Action]) -> None:
        if waiter.phase is not Phase.DONE:
            waiter.phase = Phase.CLAIMING
        self._claims[waiter.lease_id] = None
        if not self._claiming and self.active:
            self._claiming = True
            actions.append(StartClaims())

    def grant_event(self, grants: Sequence[OwnGrant]) -> list[Action]:
        """A ``grant`` message for our tickets. The message may be read long after it was
        sent (a stalled loop), so it never activates a lease: the waiter gets the slot only
        from the claim's reply, timed from that call; a claim made after the claim
        deadline finds the grant gone and the waiter queues again."""
        actions: list[Action] = []
        if grants:
            self.counters["events"] += 1
        for grant in grants:
            waiter = self.waiting.get(grant.lease_id)
            if waiter is not None and waiter.live():
                self._ask_claim(waiter, actions)
            elif grant.lease_id not in self.held:
                actions += self.orphan(grant.lease_id)
        return actions

    def take_claims(self) -> tuple[tuple[str, ...], str] | None:
        """The next claim call: (ids, flags); None when none is asked for (the loop ends)."""
        if not self._claims or not self.active:
            self._claiming = False
            return None
        ids = tuple(list(self._claims)[:HEARTBEAT_IDS])
        for lease_id in ids:
            del self._claims[lease_id]
        return ids, "w" if self.waiting else ""

    def claims_done(self) -> list[Action]:
        """The claim loop ended (normally, or cut off): start it again if claims wait."""
        self._claiming = False
        actions: list[Action] = []
        if self._claims and self.active:
            self._claiming = True
            actions.append(StartClaims())
        return actions

    # -- heartbeats --------------------------------------------------------------------

    def _request_sync(self, actions: list[Action], *, full: bool = False) -> None:
        """Run heartbeat.lua soon: ``full`` also checks every ticket and claim of ours,
        reclaims and hands off; otherwise it says this process lives."""
        self._sync_full = self._sync_full or full
        self._sync_beat = self._sync_beat or not full
        if not self._syncing and self.active:
            self._syncing = True
            actions.append(StartSync())

    def take_sync(self, now: float) -> SyncPlan | None:
        """The next sync call(s); None when nothing is asked for (the loop ends)."""
        if not (self._sync_full or self._sync_beat) or not self.active:
            self._syncing = False
            return None
        full, self._sync_full, self._sync_beat = self._sync_full, False, False
        flags = "w" if self.waiting else ""
        if self._timer.beating(now, full=full, waiting=bool(self.waiting)):
            flags += "k"  # renew the waiting keys' TTLs (lua/_shared.lua, beat)
        self.counters["heartbeats"] += 1
        ids: list[str] = []
        if full:
            flags += "f"
            ids = [i for i, w in self.waiting.items() if w.phase in _TICKETS]
            for lease_id in ids:
                self._claims.pop(lease_id, None)  # (this call claims them)
        step = HEARTBEAT_IDS
        chunks = tuple(tuple(ids[i : i + step]) for i in range(0, max(1, len(ids)), step))
        return SyncPlan(flags, chunks)

    def sync_done(self, now: float) -> list[Action]:
        """The sync loop ended: rearm the timer."""
        self._syncing = False
        actions: list[Action] = []
        self._arm(now, actions)
        return actions

    def heartbeat_replied(
        self, ids: Sequence[str], flags: str, t_sent: float, now: float, reply: HeartbeatReply
    ) -> list[Action]:
        """A heartbeat (a claim, a beat or a full check) for ``ids`` answered."""
        self.note(t_sent, reply.now_ms)
        if reply.capacity >= 0:
            self.stored_capacity = reply.capacity
        if reply.queued >= 0:
            self.pool_queued = reply.queued
        actions: list[Action] = []
        for lease_id, row in zip(ids, reply.rows, strict=True):
            self._beat_row(lease_id, row, t_sent, reply.now_ms, actions)
        skip = set(ids)
        for grant in reply.own:
            if grant.lease_id not in skip:
                self._handed(grant, t_sent, reply.now_ms, actions)
        if reply.earliest_ms >= 0:
            self._timer.note_expiry(now, reply.now_ms, reply.earliest_ms)
        if not reply.alive and "f" not in flags:
            # We had stopped counting as alive (a stalled loop?): our tickets may have
            # been dropped. Check them all, and queue again the ones that are gone.
            self._request_sync(actions, full=True)
        return actions

    def _beat_row(
        self, lease_id: str, row: TicketRow, t_sent: float, now_ms: int, actions: list[Action]
    ) -> None:
        """What a heartbeat found for one of our ids: a claim, a grant, or nothing."""
        waiter = self.waiting.get(lease_id)
        claiming = waiter is not None and waiter.phase is Phase.CLAIMING
        if row.status is TicketStatus.GRANTED:
            self.counters["claims"] += claiming
            if waiter is not None and waiter.phase is not Phase.DONE:
                self.counters["handoffs"] += 1
                self._settle(waiter, self._view.grant(lease_id, t_sent, row, now_ms), actions)
            elif lease_id not in self.held:
                actions += self.orphan(lease_id)
        elif row.status is TicketStatus.GONE:
            self.counters["claims_lost"] += claiming
            if waiter is not None and waiter.phase in _TICKETS:
                self._requeue(waiter, actions)
        elif claiming and waiter is not None:
            waiter.phase = Phase.QUEUED  # still waiting: the grant news was stale

    def _requeue(self, waiter: Waiter, actions: list[Action]) -> None:
        """Our ticket is gone from Redis (expired, data lost) but the waiter waits on."""
        self._claims.pop(waiter.lease_id, None)
        if not waiter.live():
            waiter.phase = Phase.DONE
            return
        self.counters["requeued"] += 1
        waiter.phase = Phase.PENDING
        actions.append(Enqueue(waiter))

    def heartbeat_failed(self, ids: Sequence[str], flags: str, error: Exception) -> list[Action]:
        """A heartbeat got no usable reply: waiters learn now that Redis is unreachable,
        rather than wait blind (their callers then release their tickets)."""
        actions: list[Action] = []
        if "w" in flags:
            for waiter in list(self.waiting.values()):
                if waiter.phase in _TICKETS:
                    self._fail(waiter, error, actions)
        for lease_id in ids:
            self._claims.pop(lease_id, None)
        return actions

    # -- the timer ----------------------------------------------------------------------

    def _arm(self, now: float | None, actions: list[Action]) -> None:
        """While anyone waits: a heartbeat every recheck interval, and at the earliest
        expiry. ``now`` None: only cancel when nobody waits."""
        if not self.waiting or not self.active:
            if self._timer.stop():
                actions.append(ArmTimer(None))
        elif now is not None and (when := self._timer.arm(now)) is not None:
            actions.append(ArmTimer(when))

    def timer_fired(self, now: float) -> list[Action]:
        actions: list[Action] = []
        full = self._timer.fired(now)
        if not self.waiting:
            self._timer.stop()
            return actions
        # A lease expired: reclaim it and hand it off; else say we live.
        self._request_sync(actions, full=full)
        return actions

    # -- events and other replies ----------------------------------------------------------

    def subscribed(self) -> list[Action]:
        """The subscriber (re)connected: messages may have been missed; check everything."""
        actions: list[Action] = []
        if self.waiting:
            self._request_sync(actions, full=True)
        return actions

    def free_event(self) -> list[Action]:
        actions: list[Action] = []
        if self.waiting:
            self.counters["events"] += 1
            self._request_sync(actions, full=True)
        return actions

    def lost(self, lease_id: str) -> list[Action]:
        """``lease_id`` was revoked (a message, or our own revoke)."""
        self._claims.pop(lease_id, None)
        if self.held.pop(lease_id, None) is None:
            return []
        self.counters["lost"] += 1
        return [Lost(lease_id)]

    def released(self, lease_id: str) -> None:
        """Our caller releases ``lease_id``: it is no longer held."""
        self.held.pop(lease_id, None)

    def mine(self, count: int) -> list[str]:
        """Up to ``count`` of our oldest queued tickets (a release may claim them at once)."""
        found: list[str] = []
        for lease_id, waiter in self.waiting.items():
            if len(found) >= count:
                break
            if waiter.phase is Phase.QUEUED:
                found.append(lease_id)
        return found

    def full_sync(self) -> list[Action]:
        """Check everything now (e.g. a release whose reply was lost may have handed us a
        slot)."""
        actions: list[Action] = []
        if self.waiting:
            self._request_sync(actions, full=True)
        return actions

    def replied(self, t_sent: float, now_ms: int, own: Sequence[OwnGrant]) -> list[Action]:
        """Any other reply (release, revoke, set capacity): the anchor, and own grants."""
        self.note(t_sent, now_ms)
        actions: list[Action] = []
        for grant in own:
            self._handed(grant, t_sent, now_ms, actions)
        return actions

    def renew_replied(
        self, ids: Sequence[str], t_sent: float, reply: RenewReply
    ) -> dict[str, Grant | None]:
        self.note(t_sent, reply.now_ms)
        result: dict[str, Grant | None] = {}
        for lease_id, row in zip(ids, reply.rows, strict=True):
            if row.status is RenewStatus.GONE:
                self.held.pop(lease_id, None)
                self._claims.pop(lease_id, None)
                result[lease_id] = None
            else:
                self.counters["renewals"] += 1
                grant = self._view.grant(lease_id, t_sent, row, reply.now_ms, hold=False)
                result[lease_id] = grant
        return result
