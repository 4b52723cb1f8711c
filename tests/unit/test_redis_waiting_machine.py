"""Stateful tests of the I/O-free waiting state machine (leasepool._redis.waiting).

A toy server plays Redis's side of the protocol (tickets in a queue, free slots handed
to the queue's head, grants that count only until their claim deadline unless claimed,
leases that expire, tombstones); a harness plays the coordinator: it keeps one call of
each kind in flight, carries out the machine's actions and delivers replies and
``grant`` messages late, twice or never, while a ManualClock moves. No Redis, no sleeps.

The invariants checked after every step are the machine's safety rules:

* a waiter is settled only with a lease the server granted (claimed or granted by an
  acquire): never from a ``grant`` message alone, never more grants than the server's;
* a settled grant's local hard deadline is no later than the local moment the server
  reaches its hard expiry (the server's clock runs at a rate within ``clock_drift``);
* no waiter is both settled and failed, or settled twice;
* a waiter whose caller left leaves nothing in the server (ticket, grant or lease) once
  no call of its is in flight: a release was emitted for it;
* while a waiter's ticket waits in Redis, a timer is armed or a call is under way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from leasepool import CoordinatorUnavailableError, LeaseUnavailableError
from leasepool._redis.protocol import (
    AcquireReply,
    AcquireRow,
    AcquireStatus,
    HeartbeatReply,
    OwnGrant,
    TicketRow,
    TicketStatus,
)
from leasepool._redis.waiting import WaitingMachine
from leasepool._redis.waiting_events import (
    Action,
    ArmDeadline,
    ArmTimer,
    Discard,
    Enqueue,
    Fail,
    Lost,
    Phase,
    Release,
    Settle,
    StartClaims,
    StartSync,
    Waiter,
)
from leasepool.testing import ManualClock

CAPACITY = 2
LEASE_MS, GRACE_MS, CLAIM_MS, FOREIGN_MS = 3000, 500, 1000, 30_000
DRIFT = 0.01
RATE = 1.004
"""Server milliseconds per local millisecond (within DRIFT)."""
OFFSET = 1_700_000_000_000.0


class ToyServer:
    """Redis's side of one pool, reduced to what the machine relies on."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.leases: dict[str, tuple[int, int, int]] = {}
        """Claimed or directly granted leases: id -> (token, soft, hard)."""
        self.handed: dict[str, tuple[int, int, int, int]] = {}
        """Grants to our tickets not claimed yet: id -> (token, soft, hard, claim by)."""
        self.queue: list[str] = []
        self.tombs: set[str] = set()
        self.granted: dict[tuple[str, int], int] = {}
        """(id, token) of every lease that became live -> its hard expiry (ms)."""
        self.messages: list[list[OwnGrant]] = []
        self.token = 0

    def now_ms(self) -> int:
        return math.floor(OFFSET + self.clock.monotonic() * 1000 * RATE)

    def local_time_of(self, server_ms: int) -> float:
        return (server_ms - OFFSET) / 1000 / RATE

    def reclaim(self, now: int) -> None:
        self.leases = {k: v for k, v in self.leases.items() if v[2] > now}
        self.handed = {k: v for k, v in self.handed.items() if v[3] > now}

    def used(self) -> int:
        return len(self.leases) + len(self.handed)

    def _grant(self, lease_id: str, now: int) -> tuple[int, int, int]:
        self.token += 1
        ms = FOREIGN_MS if lease_id.startswith("f") else LEASE_MS  # others hold long
        lease = (self.token, now + ms, now + ms + GRACE_MS)
        self.leases[lease_id] = lease
        self.granted[(lease_id, self.token)] = lease[2]
        return lease

    def fill(self, now: int, claim: frozenset[str] = frozenset()) -> list[OwnGrant]:
        """Hand free slots to the queue's head; ids in ``claim`` are claimed at once."""
        own = []
        while self.used() < CAPACITY and self.queue:
            lease_id = self.queue.pop(0)
            if lease_id in claim:
                token, soft, hard = self._grant(lease_id, now)
                own.append(OwnGrant(lease_id, token, soft, hard, hard))
            elif lease_id.startswith("f"):
                self._grant(lease_id, now)  # another process's ticket: it claims at once
            else:
                self.token += 1
                token, soft, hard = self.token, now + LEASE_MS, now + LEASE_MS + GRACE_MS
                self.handed[lease_id] = (token, soft, hard, now + CLAIM_MS)
                own.append(OwnGrant(lease_id, token, soft, hard, now + CLAIM_MS))
        return own

    def earliest(self, now: int) -> int:
        return min((v[2] for v in self.leases.values() if v[2] > now), default=-1)

    def acquire(self, waiters: list[Waiter]) -> AcquireReply:
        now = self.now_ms()
        self.reclaim(now)
        rows = []
        for waiter in waiters:
            lease_id = waiter.lease_id
            if lease_id in self.tombs:
                rows.append(AcquireRow(AcquireStatus.CANCELLED, 0, 0, 0))
            elif self.used() < CAPACITY and lease_id not in self.handed:
                token, soft, hard = self._grant(lease_id, now)
                rows.append(AcquireRow(AcquireStatus.GRANTED, token, soft, hard))
            elif waiter.wait:
                if lease_id not in self.queue and lease_id not in self.handed:
                    self.queue.append(lease_id)
                rows.append(AcquireRow(AcquireStatus.QUEUED, 1, 0, 0))
            else:
                rows.append(AcquireRow(AcquireStatus.REFUSED, self.used(), 0, 0))
        return AcquireReply(now, self.earliest(now), -1, CAPACITY, False, tuple(rows), ())

    def heartbeat(self, ids: tuple[str, ...], flags: str) -> HeartbeatReply:
        now = self.now_ms()
        full = "f" in flags or ("w" in flags and any(v[2] <= now for v in self.leases.values()))
        own: list[OwnGrant] = []
        queued = cap = -1
        if full:
            self.reclaim(now)
            own = self.fill(now, frozenset(ids))
            queued, cap = len(self.queue), CAPACITY
        rows = []
        for lease_id in ids:
            if lease_id in self.queue:
                rows.append(TicketRow(TicketStatus.WAITING, 0, 0, 0))
            elif lease_id in self.handed and self.handed[lease_id][3] > now:
                token, soft, hard, _ = self.handed.pop(lease_id)
                self.leases[lease_id] = (token, soft, hard)
                self.granted[(lease_id, token)] = hard
                rows.append(TicketRow(TicketStatus.GRANTED, token, soft, hard))
            elif lease_id in self.leases and self.leases[lease_id][2] > now:
                rows.append(TicketRow(TicketStatus.GRANTED, *self.leases[lease_id]))
            else:
                self.handed.pop(lease_id, None)
                rows.append(TicketRow(TicketStatus.GONE, 0, 0, 0))
        claimed = {row for row in own if row.claim_ms == row.hard_ms}
        own = [g for g in own if g not in claimed]
        return HeartbeatReply(now, True, self.earliest(now), queued, cap, tuple(rows), tuple(own))

    def release(self, lease_id: str, tomb: bool, mine: list[str]) -> tuple[int, list[OwnGrant]]:
        now = self.now_ms()
        self.leases.pop(lease_id, None)
        self.handed.pop(lease_id, None)
        if lease_id in self.queue:
            self.queue.remove(lease_id)
        if tomb:
            self.tombs.add(lease_id)
        return now, self.fill(now, frozenset(mine))

    def release_foreign(self, lease_id: str) -> None:
        now = self.now_ms()
        self.leases.pop(lease_id, None)
        grants = self.fill(now)
        if grants:
            self.messages.append(grants)

    def holds_anything_of(self, lease_id: str) -> bool:
        return lease_id in self.leases or lease_id in self.handed or lease_id in self.queue


@dataclass
class Call:
    kind: str
    t_sent: float
    waiters: list[Waiter] = field(default_factory=list)
    ids: tuple[str, ...] = ()
    flags: str = ""
    reply: AcquireReply | HeartbeatReply | None = None
    rest: tuple[tuple[str, ...], ...] = ()


class WaitingMachineTest(RuleBasedStateMachine):
    """The harness: a coordinator in miniature, with replies and messages in our hands."""

    @initialize()
    def setup(self) -> None:
        self.clock = ManualClock()
        self.server = ToyServer(self.clock)
        self.machine = WaitingMachine(pool="p", drift=DRIFT, recheck=5.0)
        self.machine.start(0.0, self.server.now_ms(), CAPACITY)
        self.unsent: list[Waiter] = []
        self.calls: dict[str, Call] = {}
        self.sync_running = self.claims_running = False
        self.timer = None
        self.timer_at: float | None = None
        self.outcomes: dict[Waiter, list[str]] = {}
        self.failed_callers: list[Waiter] = []
        self.holding: list[str] = []
        self.gone: list[Waiter] = []
        self.settled: set[tuple[str, int]] = set()
        self.serial = 0
        self.foreign = 0
        for _ in range(CAPACITY):
            self._foreign_take()

    # -- the coordinator's side: carrying out actions ------------------------------------

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            self._one(action)

    def _one(self, action: Action) -> None:
        if isinstance(action, Settle):
            self._settled(action)
        elif isinstance(action, Fail):
            self.outcomes.setdefault(action.waiter, []).append("failed")
            self.failed_callers.append(action.waiter)
        elif isinstance(action, Release):
            mine = self.machine.mine(1)
            now_ms, own = self.server.release(action.lease_id, action.tomb, mine)
            self.run(self.machine.replied(self.clock.monotonic(), now_ms, own))
        elif isinstance(action, Discard):
            if action.waiter in self.unsent:
                self.unsent.remove(action.waiter)
        elif isinstance(action, Enqueue):
            self.unsent.append(action.waiter)
        elif isinstance(action, ArmDeadline):
            waiter = action.waiter
            self.clock.call_at(action.at, lambda: self.run(self.machine.deadline_passed(waiter)))
        elif isinstance(action, ArmTimer):
            self._arm(action.at)
        elif isinstance(action, StartSync):
            assert not self.sync_running, "a second sync loop"
            self.sync_running = True
        elif isinstance(action, StartClaims):
            assert not self.claims_running, "a second claim loop"
            self.claims_running = True
            self.claim_loop_step()  # the claim goes out at once (its own task and lane)
        else:
            assert isinstance(action, Lost)

    def _settled(self, action: Settle) -> None:
        grant, waiter = action.grant, action.waiter
        self.outcomes.setdefault(waiter, []).append("settled")
        key = (grant.lease_id, grant.fencing_token)
        assert key in self.server.granted, f"settled {key} the server never granted as live"
        assert key not in self.settled, f"{key} settled twice"
        self.settled.add(key)
        expiry = self.server.local_time_of(self.server.granted[key])
        assert grant.hard_deadline <= expiry + 1e-9, (grant.hard_deadline, expiry)
        self.holding.append(grant.lease_id)

    def _arm(self, at: float | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = at
        if at is not None:
            self.timer = self.clock.call_at(at, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.timer_at = None
        self.run(self.machine.timer_fired(self.clock.monotonic()))

    def _foreign_take(self) -> None:
        now = self.server.now_ms()
        self.server.reclaim(now)
        if self.server.used() < CAPACITY:
            self.foreign += 1
            self.server._grant(f"f{self.foreign}", now)

    # -- rules: callers ---------------------------------------------------------------------

    @rule(wait=st.sampled_from([True, True, True, False]), deadline=st.none() | st.floats(0, 20))
    def acquire(self, wait: bool, deadline: float | None) -> None:
        self.serial += 1
        at = None if deadline is None else self.clock.monotonic() + deadline
        waiter = Waiter(f"w{self.serial}", wait, at)
        try:
            self.machine.enqueue(waiter)
        except LeaseUnavailableError:
            assert not wait and self.machine.waiting
            return
        self.unsent.append(waiter)
        if "acquire" not in self.calls:
            self.send_acquires()  # the first request goes out at once (CallQueue)

    @precondition(lambda self: self.unsent and "acquire" not in self.calls)
    @rule()
    def send_acquires(self) -> None:
        sent = self.machine.sending(self.unsent)
        self.unsent.clear()
        if sent:
            self.calls["acquire"] = Call("acquire", self.clock.monotonic(), waiters=sent)

    @rule(data=st.data())
    def caller_leaves(self, data: st.DataObject) -> None:
        """A caller gives up (cancelled, timed out), or a failed one cleans up."""
        candidates = [
            w
            for w in [*self.outcomes, *self.machine.waiting.values()]
            if w not in self.gone
            and (self.outcomes.get(w) != ["settled"] or w.lease_id in self.holding)
        ]
        if not candidates:
            return
        waiter = data.draw(st.sampled_from(candidates))
        kept = self.outcomes.get(waiter) == ["settled"]
        if kept:
            self.holding.remove(waiter.lease_id)
        self.gone.append(waiter)
        self.run(self.machine.left(waiter, kept_grant=kept))

    @precondition(lambda self: self.failed_callers)
    @rule()
    def failed_caller_cleans_up(self) -> None:
        waiter = self.failed_callers.pop(0)
        if waiter not in self.gone:
            self.gone.append(waiter)
            self.run(self.machine.left(waiter, kept_grant=False))

    @precondition(lambda self: self.holding)
    @rule()
    def holder_releases(self) -> None:
        lease_id = self.holding.pop(0)
        self.machine.released(lease_id)
        self.run([Release(lease_id, tomb=False)])

    # -- rules: other processes, messages ---------------------------------------------------

    @rule(read_now=st.booleans())
    def another_process_releases(self, read_now: bool) -> None:
        """Its slot goes to the queue's head; ``read_now``: our subscriber reads the
        ``grant`` message at once (else later, twice, or never)."""
        foreign = [k for k in self.server.leases if k.startswith("f")]
        if foreign:
            self.server.release_foreign(foreign[0])
            self._foreign_take()  # (a slot nobody queued for goes back to the others)
        if read_now and self.server.messages:
            self.run(self.machine.grant_event(self.server.messages.pop()))

    @rule()
    def another_process_acquires(self) -> None:
        self._foreign_take()

    @precondition(lambda self: self.server.messages)
    @rule(twice=st.booleans(), lose=st.booleans())
    def deliver_grant_message(self, twice: bool, lose: bool) -> None:
        grants = self.server.messages.pop(0)
        if lose:
            return
        for _ in range(2 if twice else 1):
            self.run(self.machine.grant_event(grants))

    @rule(kind=st.sampled_from(["forged", "reconnect", "free"]), n=st.integers(1, 3))
    def pubsub_noise(self, kind: str, n: int) -> None:
        """A message for a grant the server never made (or a stale copy): never a lease.
        Or the subscriber reconnected, or a ``free`` message came."""
        if kind == "forged":
            now = self.server.now_ms()
            hard = now + LEASE_MS
            self.run(self.machine.grant_event([OwnGrant(f"w{n}", 10_000, hard, hard, hard)]))
        elif kind == "reconnect":
            self.run(self.machine.subscribed())
        else:
            self.run(self.machine.free_event())

    @rule(seconds=st.sampled_from([0.001, 0.05, 0.5, 1.2, 4.0, 6.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- rules: the loops and the calls ----------------------------------------------------

    @precondition(lambda self: self.sync_running and "sync" not in self.calls)
    @rule()
    def sync_loop_step(self) -> None:
        plan = self.machine.take_sync(self.clock.monotonic())
        if plan is None:
            self.sync_running = False
            self.run(self.machine.sync_done(self.clock.monotonic()))
            return
        first, *rest = plan.chunks
        self.calls["sync"] = Call(
            "sync", self.clock.monotonic(), ids=first, flags=plan.flags, rest=tuple(rest)
        )

    @precondition(lambda self: self.claims_running and "claim" not in self.calls)
    @rule()
    def claim_loop_step(self) -> None:
        plan = self.machine.take_claims()
        if plan is None:
            self.claims_running = False
            self.run(self.machine.claims_done())
            return
        ids, flags = plan
        self.calls["claim"] = Call("claim", self.clock.monotonic(), ids=ids, flags=flags)

    @precondition(lambda self: any(c.reply is None for c in self.calls.values()))
    @rule(data=st.data())
    def server_runs_a_call(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from([c for c in self.calls.values() if c.reply is None]))
        self._execute(call)

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def call_completes(self, data: st.DataObject) -> None:
        """A call runs and its reply is read at once (the common case)."""
        call = data.draw(st.sampled_from(list(self.calls.values())))
        if call.reply is None:
            self._execute(call)
        self._deliver(call)

    @precondition(lambda self: any(c.reply is not None for c in self.calls.values()))
    @rule(data=st.data())
    def reply_arrives(self, data: st.DataObject) -> None:
        done = [c for c in self.calls.values() if c.reply is not None]
        self._deliver(data.draw(st.sampled_from(done)))

    def call_completes_now(self, kind: str) -> None:
        """(For the named scenarios.) The call of ``kind`` runs, and its reply is read."""
        call = self.calls[kind]
        self._execute(call)
        self._deliver(call)

    def _execute(self, call: Call) -> None:
        if call.kind == "acquire":
            call.reply = self.server.acquire(call.waiters)
        else:
            call.reply = self.server.heartbeat(call.ids, call.flags)

    def _deliver(self, call: Call) -> None:
        del self.calls[call.kind]
        now = self.clock.monotonic()
        if isinstance(call.reply, AcquireReply):
            self.run(self.machine.acquire_replied(call.waiters, call.t_sent, now, call.reply))
            if self.unsent:
                self.send_acquires()  # the next batch, as the CallQueue drains
            return
        assert isinstance(call.reply, HeartbeatReply)
        self.run(self.machine.heartbeat_replied(call.ids, call.flags, call.t_sent, now, call.reply))
        self._next_chunk(call)

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def call_fails(self, data: st.DataObject) -> None:
        """The connection drops: the script may or may not have run."""
        call = data.draw(st.sampled_from(list(self.calls.values())))
        del self.calls[call.kind]
        error = CoordinatorUnavailableError("connection lost")
        if call.kind == "acquire":
            self.run(self.machine.acquire_failed(call.waiters, error))
            if self.unsent:
                self.send_acquires()
        else:
            self.run(self.machine.heartbeat_failed(call.ids, call.flags, error))

    def _next_chunk(self, call: Call) -> None:
        if call.kind == "sync" and call.rest:
            first, *rest = call.rest
            self.calls["sync"] = Call(
                "sync", self.clock.monotonic(), ids=first, flags=call.flags, rest=tuple(rest)
            )

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def each_waiter_has_one_outcome_at_most(self) -> None:
        for waiter, outcomes in self.outcomes.items():
            assert len(outcomes) == 1, (waiter, outcomes)

    @invariant()
    def a_caller_that_left_leaves_nothing_in_redis(self) -> None:
        in_flight = {w for c in self.calls.values() for w in c.waiters}
        for waiter in self.gone:
            if waiter.phase is Phase.SENT or waiter in in_flight:
                continue  # the reply, when it comes, cleans up
            assert not self.server.holds_anything_of(waiter.lease_id), waiter

    @invariant()
    def a_ticket_in_redis_has_a_timer_or_a_call(self) -> None:
        ticketed = [
            w for w in self.machine.waiting.values() if w.phase in (Phase.QUEUED, Phase.CLAIMING)
        ]
        if ticketed:
            assert (
                self.timer_at is not None or self.sync_running or self.claims_running or self.calls
            ), ticketed

    @invariant()
    def a_claiming_waiter_has_its_claim_coming(self) -> None:
        if any(w.phase is Phase.CLAIMING for w in self.machine.waiting.values()):
            assert self.claims_running or self.sync_running or self.timer_at is not None


WaitingMachineTest.TestCase.settings = settings(
    derandomize=True,
    max_examples=80,
    stateful_step_count=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_waiting_machine = WaitingMachineTest.TestCase


# -- named scenarios: each transition the stateful test may reach only rarely -------------


def harness_with_a_queued_waiter() -> tuple[WaitingMachineTest, Waiter]:
    h = WaitingMachineTest()
    h.setup()
    h.acquire(True, None)
    h.call_completes_now("acquire")
    (waiter,) = h.machine.waiting.values()
    assert waiter.phase is Phase.QUEUED and h.timer_at is not None
    return h, waiter


def test_a_grant_message_is_claimed_and_the_claim_reply_settles_the_waiter() -> None:
    h, waiter = harness_with_a_queued_waiter()
    h.another_process_releases(read_now=True)
    assert waiter.phase is Phase.CLAIMING and waiter not in h.outcomes
    claim = h.calls["claim"]
    assert claim.ids == (waiter.lease_id,)
    h.clock.advance(0.05)
    h.call_completes_now("claim")
    assert h.outcomes[waiter] == ["settled"]
    assert h.machine.counters["claims"] == 1 and h.machine.counters["handoffs"] == 1
    # Timed from the claim call, not from when the message was read or the reply came.
    (lease_id,) = h.holding
    held = h.machine.held[lease_id]
    expiry = h.server.local_time_of(h.server.leases[lease_id][2])
    assert held.hard <= expiry


def test_a_grant_message_read_after_the_claim_deadline_queues_the_waiter_again() -> None:
    h, waiter = harness_with_a_queued_waiter()
    h.another_process_releases(read_now=False)
    h.clock.advance(CLAIM_MS / 1000 + 0.5)  # (our timer beats meanwhile)
    h.deliver_grant_message(twice=False, lose=False)
    h.call_completes_now("claim")
    assert waiter not in h.outcomes
    assert waiter.phase is Phase.PENDING and waiter in h.unsent
    assert h.machine.counters["claims_lost"] == 1 and h.machine.counters["requeued"] == 1


def test_a_late_copy_of_a_grant_message_does_not_release_the_lease_it_named() -> None:
    h, waiter = harness_with_a_queued_waiter()
    h.another_process_releases(read_now=True)
    grants = [OwnGrant(waiter.lease_id, *h.server.handed[waiter.lease_id])]
    h.call_completes_now("claim")
    assert h.outcomes[waiter] == ["settled"]
    assert h.machine.grant_event(grants) == []  # held: not news, not an orphan
    assert h.machine.counters["orphans_released"] == 0


def test_a_waiter_that_leaves_while_its_grant_is_claimed_releases_it() -> None:
    h, waiter = harness_with_a_queued_waiter()
    h.another_process_releases(read_now=True)
    actions = h.machine.left(waiter, kept_grant=False)
    assert Release(waiter.lease_id, tomb=True) in actions
    h.gone.append(waiter)
    h.run(actions)
    h.call_completes_now("claim")  # finds the grant released: nothing to settle
    assert waiter not in h.outcomes
    assert not h.server.holds_anything_of(waiter.lease_id)


def test_a_failed_heartbeat_fails_the_queued_waiters() -> None:
    h, waiter = harness_with_a_queued_waiter()
    h.clock.advance(5.0)  # the heartbeat timer fires
    assert h.sync_running
    h.sync_loop_step()
    actions = h.machine.heartbeat_failed((), h.calls["sync"].flags, ConnectionError("down"))
    assert [type(a) for a in actions] == [Fail]
    assert not waiter.live()


def test_the_timer_runs_a_full_check_once_the_earliest_expiry_has_passed() -> None:
    h, waiter = harness_with_a_queued_waiter()
    foreign_expiry = h.server.local_time_of(min(v[2] for v in h.server.leases.values()))
    h.clock.advance(foreign_expiry - h.clock.monotonic() - 0.5)
    while h.sync_running:  # the heartbeats before it
        h.sync_loop_step()
        if "sync" in h.calls:
            assert "f" not in h.calls["sync"].flags
            h.call_completes_now("sync")
    h.clock.advance(1.0)
    assert h.sync_running
    h.sync_loop_step()
    assert "f" in h.calls["sync"].flags and waiter.lease_id in h.calls["sync"].ids
    h.call_completes_now("sync")  # the foreign lease expired: its slot is ours, claimed
    assert h.outcomes[waiter] == ["settled"]
