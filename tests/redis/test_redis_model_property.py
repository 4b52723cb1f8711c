"""Stateful property test: two RedisCoordinators on a real Redis behind a proxy that delays
every reply, driven by Hypothesis and checked against a model of the pool.

Actions: acquire (``wait=False``, or waiting with a timeout), release, renew, revoke,
set_capacity, cancel a waiter, let real time pass (leases last 0.2 to 1 s) with a new
reply latency. Two coordinators share the pool, so slots are also handed off across
"hosts" (through events). Invariants, checked at every step:

* the cap: leases live in Redis (``leases`` scores above the server's now, read with
  ``TIME`` in one transaction) never exceed the capacity, or after a shrink the number
  of those still live from before it;
* ``Grant.hard_deadline`` is never later than the instant Redis stops counting the slot
  (its ``leases`` score), mapped to local time by brackets recorded on a direct
  connection: ``t0 <= T(TIME) <= t1``, so server instant ``S`` happens locally no later
  than ``t1 + (S - TIME)``. With ``clock_drift=0`` and replies (not requests) delayed
  5-20 ms, a grant timed from the reply is late by that delay, and one that takes the
  ms-rounded server time as exact by up to 1 ms less the (small) request delay: both
  fail. A lease whose local hard deadline is still ahead must be live in Redis;
* fencing tokens are unique, above every token seen before their request was sent and
  at most the stored ``fence``; a renewal keeps the token, never shortens the deadline;
* outcomes match the model as far as its bounds on each lease's expiry decide:
  ``wait=False`` is granted when the pool surely has room, refused when surely full;
  release is RELEASED / EXPIRED / UNKNOWN, renew and revoke see live or gone; a waiter
  times out no earlier than its deadline nor long after; ``on_lost`` never names a lease
  surely live and not revoked;
* every live lease is one the model holds or a waiter asked for; once all is released
  and the coordinators closed, no lease, ticket or queue entry and no task is left.

Only the public API and the documented keys are used. Hypothesis runs derandomized,
without shrinking, in about 30 s; a failure is reported with its steps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import redis
from _netproxy import NetProxy
from _redis_server import RedisServer
from leasepool import (
    Grant,
    GrantRequest,
    LeaseUnavailableError,
    RedisCoordinator,
    ReleaseOutcome,
)

pytestmark = pytest.mark.redis

T = TypeVar("T")

LEASES = (0.2, 0.4, 0.8)
GRACES = (0.0, 0.2)
TIMEOUTS = (0.3, 1.5, 3.0)
REPLY_LATENCIES = (0.005, 0.01, 0.02)
EPSILON = 1e-6
"""Float noise only: a real violation is at least tens of microseconds."""
TIMEOUT_SLACK = 2.0
"""How long after its deadline a waiter may still be pending (a loaded CI machine)."""
CALL_LIMIT = 15.0
ACTIONS = ("acquire_waiting", "acquire_now", "release", "advance") * 2 + (
    "renew",
    "revoke",
    "set_capacity",
    "cancel_waiter",
)
"""Drawn evenly, so the duplicates weigh twice."""


def step(method: Callable[..., None]) -> Callable[..., None]:
    """Run a step, then :meth:`PoolMachine.collect`; keep the first failure with the steps
    so far and its traceback (timing makes a failure hard for Hypothesis to replay
    exactly, so the test reports this one)."""

    @functools.wraps(method)
    def logged(self: PoolMachine, **kwargs: Any) -> None:
        self.healthy = False  # (until the step ends well: see teardown)
        try:
            method(self, **kwargs)
            self.collect()
            self.healthy = True
        except Exception:
            PoolMachine.failures.append("\n".join(self.log) + "\n" + traceback.format_exc())
            raise

    return logged


class LoopClock:
    """The real clock (``time.monotonic``), timers on the running loop: a public ``Clock``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.monotonic()), callback)


@dataclass
class Held:
    """A lease the model holds, with local bounds on when Redis stops counting it."""

    coord: int
    grant: Grant
    lo: float
    hi: float
    recorded: bool
    """Its lease hash exists. A grant handed to another process's waiter has none until
    claimed (lua/_shared.lua), so once it is gone a release may say UNKNOWN."""


@dataclass
class Waiter:
    coord: int
    task: asyncio.Task[Grant]
    deadline: float
    floor_token: int


@dataclass
class Model:
    capacity: int = 2
    held: dict[str, Held] = field(default_factory=dict)
    stale: dict[str, bool] = field(default_factory=dict)
    """Leases a renewal found gone (not live) -> whether their record existed."""
    ended: set[str] = field(default_factory=set)
    """Released or revoked: gone from Redis (UNKNOWN)."""
    revoked: set[str] = field(default_factory=set)
    waiters: dict[str, Waiter] = field(default_factory=dict)
    """Waiters whose task is not settled yet (see ``PoolMachine.settled``)."""
    asked: set[str] = field(default_factory=set)
    """Every id a waiter ever asked for (a cancelled waiter's grant may live briefly)."""
    tokens: dict[int, str] = field(default_factory=dict)
    shrink_snapshot: set[str] = field(default_factory=set)
    lost: list[tuple[str, float]] = field(default_factory=list)

    @property
    def max_token(self) -> int:
        return max(self.tokens, default=0)

    def possibly_live(self, t_send: float) -> int:
        return sum(1 for h in self.held.values() if h.hi > t_send)

    def surely_live(self, t_reply: float) -> int:
        return sum(1 for h in self.held.values() if h.lo > t_reply)

    def pending(self, coord: int | None = None) -> int:
        return sum(1 for w in self.waiters.values() if coord is None or w.coord == coord)


def liveness(h: Held | None, t_send: float, t_reply: float) -> set[bool]:
    """Whether ``h`` was live when a script ran, somewhere in ``[t_send, t_reply]``."""
    if h is None:
        return {False}
    if h.lo > t_reply:
        return {True}
    if h.hi <= t_send:
        return {False}
    return {True, False}


def gone_outcomes(recorded: bool) -> set[ReleaseOutcome]:
    """What releasing a lease past its expiry says: EXPIRED while its record is kept."""
    if recorded:
        return {ReleaseOutcome.EXPIRED}
    return {ReleaseOutcome.EXPIRED, ReleaseOutcome.UNKNOWN}


class Admin:
    """A direct (unproxied) blocking client for brackets and checks: it never runs
    coordinator code, and its round trip is the tightest we can get."""

    def __init__(self, url: str, pool: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=10, decode_responses=True)
        prefix = f"leasepool:{{{pool}}}:"
        self.meta, self.leases = prefix + "meta", prefix + "leases"
        self.queue, self.tickets = prefix + "queue", prefix + "tickets"
        self.prefix = prefix

    def offset(self) -> tuple[float, float]:
        """``(lo, hi)``: a server instant ``S`` (seconds) happens locally within
        ``[S + lo, S + hi]`` (the tightest of three brackets; clocks tick at one rate)."""
        lo, hi = -float("inf"), float("inf")
        for _ in range(3):
            t0 = time.monotonic()
            sec, usec = self.client.time()
            t1 = time.monotonic()
            server = sec + usec / 1e6
            lo, hi = max(lo, t0 - server), min(hi, t1 - server)
        return lo, hi

    def expiry_ms(self, lease_id: str) -> int | None:
        """When Redis stops counting ``lease_id``: its ``leases`` score, else its hash's."""
        score = self.client.zscore(self.leases, lease_id)
        if score is not None:
            return int(score)
        hard = self.client.hget(self.prefix + "lease:" + lease_id, "hard_ms")
        return int(hard) if hard is not None else None

    def live(self) -> tuple[dict[str, int], float]:
        """Live leases (id -> expiry ms) at one server instant, and a local time after it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.time()
        pipe.zrange(self.leases, 0, -1, withscores=True)
        (sec, usec), members = pipe.execute()
        t1 = time.monotonic()
        now_ms = sec * 1000 + usec // 1000
        return {m: int(s) for m, s in members if s > now_ms}, t1

    def recorded(self, lease_id: str) -> bool:
        return self.client.hget(self.prefix + "lease:" + lease_id, "token") is not None

    def queued(self) -> int:
        return int(self.client.zcard(self.queue))

    def leftovers(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "leases": self.client.zrange(self.leases, 0, -1),
            "queue": self.client.zrange(self.queue, 0, -1),
            "tickets": self.client.hgetall(self.tickets),
        }
        records = [
            key
            for key in self.client.scan_iter(match=self.prefix + "lease:*", count=1000)
            if self.client.hget(key, "token") is not None
        ]
        found["lease records"] = records
        return {name: value for name, value in found.items() if value}

    def delete_pool(self) -> None:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.client.close()


class PoolMachine(RuleBasedStateMachine):
    """See the module docstring. ``server_url`` and ``proxy`` are set by the test."""

    server_url = ""
    proxy: NetProxy | None = None
    failures: ClassVar[list[str]] = []
    seen: ClassVar[collections.Counter[str]] = collections.Counter()
    """What happened, over all examples: printed, and checked to be varied enough."""

    def __init__(self) -> None:
        super().__init__()
        assert self.proxy is not None
        self.pool = f"model-{uuid.uuid4().hex[:10]}"
        self.admin = Admin(self.server_url, self.pool)
        self.model = Model()
        self.seq = 0
        self.log: list[str] = []
        self.errors: list[str] = []
        self.proxy.set_latency(0.0, direction="to_server")
        self.proxy.set_latency(REPLY_LATENCIES[0], direction="to_client")
        self.loop = asyncio.new_event_loop()
        self.coords = [
            RedisCoordinator.from_url(
                self.proxy.url_for(),
                pool=self.pool,
                capacity=self.model.capacity,
                clock_drift=0.0,
                recheck_interval=1.0,
                # Longer than any lease here: a handed-off grant's score is its hard expiry.
                claim_window=5.0,
            )
            for _ in range(2)
        ]
        for coord in self.coords:
            self.run(coord.start(clock=LoopClock(), on_lost=self.on_lost))
        self.healthy = True

    # -- plumbing --------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T], limit: float = CALL_LIMIT) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(awaitable, limit)

        return self.loop.run_until_complete(bounded())

    def on_lost(self, lease_id: str) -> None:
        self.model.lost.append((lease_id, time.monotonic()))

    def target(self, index: int, gone: bool) -> str:
        """A held lease; or (``gone``, or none held) one released, revoked, found gone,
        or never granted."""
        m = self.model
        if m.held and not gone:
            return sorted(m.held)[index % len(m.held)]
        targets = [f"never-{self.new_id()}", *sorted(m.ended | set(m.stale))]
        return targets[index % len(targets)]

    def new_id(self) -> str:
        self.seq += 1
        return f"L{self.seq}"

    def record_grant(self, coord: int, grant: Grant, floor_token: int) -> None:
        """A new grant: check its token and its deadline, and hold it."""
        m = self.model
        assert grant.fencing_token not in m.tokens, ("duplicate token", grant, m.tokens)
        assert grant.fencing_token > floor_token, ("token not increasing", grant, floor_token)
        m.tokens[grant.fencing_token] = grant.lease_id
        PoolMachine.seen[f"grant (coordinator {coord})"] += 1
        expiry_ms = self.admin.expiry_ms(grant.lease_id)
        if expiry_ms is None:  # gone from Redis already: fine only if dead locally too
            assert grant.hard_deadline <= time.monotonic(), ("Redis does not count it", grant)
            m.ended.add(grant.lease_id)
            return
        m.held[grant.lease_id] = self.checked(coord, grant, expiry_ms)

    def checked(self, coord: int, grant: Grant, expiry_ms: int) -> Held:
        """The deadline promise for ``grant``, against Redis's own expiry of it."""
        lo, hi = self.admin.offset()
        lo_at, hi_at = expiry_ms / 1000 + lo, expiry_ms / 1000 + hi
        assert grant.soft_deadline <= grant.hard_deadline, grant
        assert grant.hard_deadline <= hi_at + EPSILON, (
            f"local hard deadline {(grant.hard_deadline - hi_at) * 1000:.3f} ms after Redis "
            f"stops counting {grant.lease_id} (bracket width {(hi - lo) * 1e6:.0f} us)",
            grant,
        )
        return Held(coord, grant, lo_at, hi_at, self.admin.recorded(grant.lease_id))

    def settled(self, lease_id: str, task: asyncio.Task[Grant]) -> None:
        """A waiter's task is done (a loop callback: checked while its grant is fresh);
        a failure is kept for :meth:`collect` to raise."""
        w = self.model.waiters.pop(lease_id, None)
        if w is None:
            return
        try:
            if task.cancelled():
                PoolMachine.seen["waiter: cancelled"] += 1
            elif task.exception() is None:
                self.record_grant(w.coord, task.result(), w.floor_token)
                PoolMachine.seen["waiter: granted"] += 1
            else:
                exc = task.exception()
                assert isinstance(exc, TimeoutError), ("waiter failed", lease_id, exc)
                assert time.monotonic() >= w.deadline - EPSILON, ("timed out early", lease_id)
                PoolMachine.seen["waiter: timed out"] += 1
        except Exception:
            self.errors.append(traceback.format_exc())

    def collect(self) -> None:
        """Raise what a waiter's check found; no waiter may be pending long past its
        timeout; ``on_lost`` never names a lease surely live and not revoked."""
        m = self.model
        assert not self.errors, self.errors[0]
        now = time.monotonic()
        for lease_id, w in m.waiters.items():
            assert now <= w.deadline + TIMEOUT_SLACK, ("waiter past its timeout", lease_id)
        for lease_id, at in m.lost:
            h = m.held.get(lease_id)
            assert lease_id in m.revoked or h is None or h.lo <= at, ("lost while live", lease_id)
        m.lost.clear()

    # -- the one rule: an action drawn evenly (Hypothesis's per-example rule switching
    # would starve some actions in a run this short) ----------------------------------

    @rule(
        action=st.sampled_from(ACTIONS),
        coord=st.integers(0, 1),
        lease=st.sampled_from(LEASES),
        grace=st.sampled_from(GRACES),
        timeout=st.sampled_from(TIMEOUTS),
        index=st.integers(0, 50),
        gone=st.sampled_from((False, False, False, True)),
        renew_for=st.sampled_from((0.25, 0.6)),
        capacity=st.integers(1, 3),
        run_for=st.sampled_from((0.0, 0.03)),
        seconds=st.sampled_from((0.05, 0.25, 0.6)),
        latency=st.sampled_from(REPLY_LATENCIES),
    )
    @step
    def act(self, action: str, **drawn: Any) -> None:
        method = getattr(self, action)
        kwargs = {k: v for k, v in drawn.items() if k in inspect.signature(method).parameters}
        self.log.append(f"{action}({kwargs})")
        method(**kwargs)

    # -- actions ---------------------------------------------------------------------

    def acquire_now(self, coord: int, lease: float, grace: float) -> None:
        m = self.model
        # Slots the model does not hold, and tickets that a freeing script run meanwhile
        # (a background release or heartbeat) could hand one to.
        others = len(set(self.admin.live()[0]) - set(m.held)) + self.admin.queued()
        floor, lease_id = m.max_token, self.new_id()
        local_waiters, waiting = m.pending(coord), m.pending()
        t_send = time.monotonic()
        try:
            grant: Grant | None = self.run(
                self.coords[coord].acquire(
                    GrantRequest(lease_id, "model", lease, grace), wait=False, deadline=None
                )
            )
        except LeaseUnavailableError:
            grant = None
        t_reply = time.monotonic()
        room = m.possibly_live(t_send) + others + waiting < m.capacity
        if grant is None:
            assert not (room and local_waiters == 0), "refused though the pool had room"
            PoolMachine.seen["acquire now: refused"] += 1
        else:
            assert m.surely_live(t_reply) < m.capacity, "granted though the pool was full"
            self.record_grant(coord, grant, floor)

    def acquire_waiting(
        self, coord: int, lease: float, grace: float, timeout: float, run_for: float
    ) -> None:
        m = self.model
        lease_id = self.new_id()
        deadline = time.monotonic() + timeout
        coro = self.coords[coord].acquire(
            GrantRequest(lease_id, "model", lease, grace), wait=True, deadline=deadline
        )
        task = self.loop.create_task(coro)
        m.waiters[lease_id] = Waiter(coord, task, deadline, m.max_token)
        m.asked.add(lease_id)
        task.add_done_callback(functools.partial(self.settled, lease_id))
        self.run(asyncio.sleep(run_for))

    def release(self, index: int, gone: bool) -> None:
        m = self.model
        lease_id = self.target(index, gone)
        h = m.held.get(lease_id)
        coord = h.coord if h is not None else index % 2
        t_send = time.monotonic()
        outcome = self.run(self.coords[coord].release(lease_id))
        t_reply = time.monotonic()
        allowed = {ReleaseOutcome.UNKNOWN}
        if h is not None and True in liveness(h, t_send, t_reply):
            allowed = {ReleaseOutcome.RELEASED}
        if (h is not None and False in liveness(h, t_send, t_reply)) or lease_id in m.stale:
            recorded = h.recorded if h is not None else m.stale[lease_id]
            allowed = (allowed - {ReleaseOutcome.UNKNOWN}) | gone_outcomes(recorded)
        assert outcome in allowed, (lease_id, outcome, allowed)
        PoolMachine.seen[f"release: {outcome.name}"] += 1
        m.held.pop(lease_id, None)
        m.stale.pop(lease_id, None)
        m.ended.add(lease_id)

    def renew(self, coord: int, renew_for: float) -> None:
        m = self.model
        mine = sorted(i for i, h in m.held.items() if h.coord == coord)
        if not mine:
            return
        t_send = time.monotonic()
        result = self.run(self.coords[coord].renew(dict.fromkeys(mine, renew_for)))
        t_reply = time.monotonic()
        assert set(result) == set(mine), result
        for lease_id, grant in result.items():
            self.check_renewal(lease_id, grant, t_send, t_reply)

    def check_renewal(
        self, lease_id: str, grant: Grant | None, t_send: float, t_reply: float
    ) -> None:
        m = self.model
        h = m.held[lease_id]
        assert (grant is not None) in liveness(h, t_send, t_reply), (lease_id, grant)
        PoolMachine.seen[f"renew: {'extended' if grant else 'gone'}"] += 1
        if grant is None:
            del m.held[lease_id]
            m.stale[lease_id] = h.recorded
            return
        assert grant.fencing_token == h.grant.fencing_token, (grant, h)
        assert grant.hard_deadline >= h.grant.hard_deadline - EPSILON, ("shortened", grant, h)
        expiry_ms = self.admin.expiry_ms(lease_id)
        assert expiry_ms is not None, ("renewed, but Redis has no expiry for it", grant)
        m.held[lease_id] = self.checked(h.coord, grant, expiry_ms)

    def revoke(self, coord: int, index: int, gone: bool) -> None:
        """An operator's revoke, from either coordinator (the holder's or the other)."""
        m = self.model
        lease_id = self.target(index, gone)
        h = m.held.get(lease_id)
        t_send = time.monotonic()
        was_live = self.run(self.coords[coord].revoke(lease_id))
        t_reply = time.monotonic()
        assert was_live in liveness(h, t_send, t_reply), (lease_id, was_live)
        PoolMachine.seen[f"revoke: {'live' if was_live else 'not live'}"] += 1
        m.held.pop(lease_id, None)
        m.stale.pop(lease_id, None)
        m.ended.add(lease_id)
        m.revoked.add(lease_id)

    def set_capacity(self, coord: int, capacity: int) -> None:
        m = self.model
        self.run(self.coords[coord].set_capacity(capacity))
        if capacity < m.capacity:
            m.shrink_snapshot = set(self.admin.live()[0])
        m.capacity = capacity
        status = self.run(self.coords[1 - coord].status())
        assert status.capacity == capacity, status

    def cancel_waiter(self, index: int, run_for: float) -> None:
        m = self.model
        pending = sorted(i for i, w in m.waiters.items() if not w.task.done())
        if not pending:
            return
        m.waiters[pending[index % len(pending)]].task.cancel()
        self.run(asyncio.sleep(run_for))

    def advance(self, seconds: float, latency: float) -> None:
        """Let real time pass (with the next reply latency in force)."""
        assert self.proxy is not None
        self.proxy.set_latency(latency, direction="to_client")
        self.run(asyncio.sleep(seconds))

    # -- invariants ------------------------------------------------------------------

    @invariant()
    @step
    def redis_agrees(self) -> None:
        m = self.model
        live, t1 = self.admin.live()
        from_before = len(set(live) & m.shrink_snapshot)
        assert len(live) <= max(m.capacity, from_before), (live, m.capacity)
        strangers = set(live) - set(m.held) - m.asked
        assert not strangers, ("live leases nobody asked for", strangers)
        for lease_id, h in m.held.items():
            if h.grant.hard_deadline > t1:
                assert lease_id in live, ("held locally, not counted by Redis", lease_id, h)
        fence = self.admin.client.hget(self.admin.meta, "fence")
        assert int(fence or 0) >= m.max_token, (fence, m.max_token)

    # -- the end ---------------------------------------------------------------------

    def teardown(self) -> None:
        check = self.healthy
        try:
            self.finish(check)
        except Exception:
            self.log.append("teardown()")
            PoolMachine.failures.append("\n".join(self.log) + "\n" + traceback.format_exc())
            raise
        finally:
            for coord in self.coords:
                with contextlib.suppress(Exception):
                    self.run(coord.close())
            leftover = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            for task in leftover:
                task.cancel()
            if leftover:
                self.loop.run_until_complete(asyncio.wait(leftover, timeout=5))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            self.admin.delete_pool()

    def finish(self, check: bool) -> None:
        """Cancel every waiter, release every lease, close: nothing may be left."""
        m = self.model
        tasks = [w.task for w in m.waiters.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.run(asyncio.wait(tasks))
        if check:
            self.collect()
        for lease_id in sorted(set(m.held) | set(m.stale)):
            index = m.held[lease_id].coord if lease_id in m.held else 0
            self.run(self.coords[index].release(lease_id))
        for coordinator in self.coords:
            handoffs = coordinator.statistics().get("handoffs", 0)  # public, cheap, no I/O
            PoolMachine.seen["coordinator handoffs"] += int(str(handoffs))
            self.run(coordinator.close())
        if check:
            assert not self.admin.leftovers(), self.admin.leftovers()
            self.run(asyncio.sleep(0))
            tasks = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            assert not tasks, ("tasks still running after close()", tasks)


@pytest.fixture(scope="module")
def proxied_server() -> Iterator[tuple[RedisServer, NetProxy]]:
    with RedisServer() as server, NetProxy("127.0.0.1", server.port) as proxy:
        yield server, proxy


@pytest.mark.timeout(240)
def test_coordinators_match_the_model_with_slow_replies(
    proxied_server: tuple[RedisServer, NetProxy],
) -> None:
    server, proxy = proxied_server
    PoolMachine.server_url = server.url
    PoolMachine.proxy = proxy
    PoolMachine.failures.clear()
    PoolMachine.seen.clear()
    try:
        run_state_machine_as_test(
            PoolMachine,
            settings=settings(
                max_examples=20,
                stateful_step_count=20,
                deadline=None,
                derandomize=True,
                database=None,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=list(HealthCheck),
            ),
        )
    except Exception as exc:
        if PoolMachine.failures:
            pytest.fail(f"first failure, after these steps:\n{PoolMachine.failures[0]}")
        raise exc
    finally:
        PoolMachine.proxy = None
    seen = PoolMachine.seen
    print(dict(sorted(seen.items())))
    # The run did what it claims to check (each is far above this on a quiet machine).
    assert seen["grant (coordinator 0)"] + seen["grant (coordinator 1)"] >= 10, seen
    assert seen["waiter: granted"] >= 3 and seen["coordinator handoffs"] >= 1, seen
    assert seen["release: RELEASED"] >= 2 and seen["renew: extended"] >= 2, seen
