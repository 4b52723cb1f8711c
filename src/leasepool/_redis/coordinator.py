"""The Redis coordinator: one global capacity shared by every host.

State lives in Redis (see :mod:`leasepool._redis.keys`) and changes only inside
the Lua scripts of the top-level ``lua/`` folder; all timestamps there are the
server's (``TIME``). What is sent and read back is :mod:`leasepool._redis.protocol`.

This module is lifecycle and I/O only: it makes the script calls (through
:mod:`leasepool._redis.runner`), keeps the futures and timers, listens to the
pool's events (:mod:`leasepool._redis.subscriber`), and hands every reply, event
and timer to the waiting state machine (:mod:`leasepool._redis.waiting`), whose
actions it carries out in order. All waiting, claim, heartbeat and deadline
decisions are the machine's; ``docs/architecture.md`` tables them.

Waiting. A waiting ``acquire`` leaves a *ticket* in Redis (the pool's ``queue``
and ``tickets``). Every script that frees capacity grants the freed slots
straight to the oldest live tickets, in the same script. A grant to a ticket of
the calling process comes back in the script's reply; a grant to another
process's ticket is published on the pool's events channel.

Claims. A grant handed to another process counts in Redis only until a short
claim deadline (``claim_window``) until that process *claims* it
(``heartbeat.lua``). A ``grant`` message never activates a lease by itself (it
may be read long after it was sent): the waiter gets its slot from the claim's
reply, timed from the claim call. The claim goes out the moment the message is
read, on a connection of its own, never behind a heartbeat or a batch.

Bounds. ``acquire`` with a timeout, ``wait=False`` or ``timeout=0`` is cut off
at ``max(deadline, now + nowait_timeout)`` whatever Redis does; a heartbeat or
claim at ``max(2 s, nowait_timeout)``. A reply that cannot be read fails the
calls it answered, never a loop.

Heartbeats. A waiting process marks itself alive in the pool's ``waiters`` set
once per ``recheck_interval`` and at each enqueue; its tickets count while it
beats. A full check (every ticket and claim of ours, reclaim a batch, hand free
slots to the queue) runs when the subscriber (re)connects, when a ``free`` event
arrives, after a release whose reply was lost, and at the earliest lease expiry
Redis reported.

Calls. At most one acquire, one release, one heartbeat and one claim call of a
coordinator are in flight; requests that come meanwhile share the next call
(:class:`leasepool._redis.calls.CallQueue`).

Order. Tickets are granted in enqueue order, across all processes; a process
sends its enqueues in the order its callers asked. With ``fair=True`` no
acquire is granted while tickets are queued, and ``wait=False`` is refused
then. Without it an acquire takes a free slot even with tickets queued; such a
slot exists only when nobody handed it off (a lease that expired instead of
being released), so waiters never starve. ``wait=False`` costs one round trip,
and fails at once while this process has waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from leasepool._clock import Clock
from leasepool._coordinator import (
    Coordinator,
    Grant,
    GrantRequest,
    LostCallback,
    PoolStatus,
    ReleaseOutcome,
)
from leasepool._errors import CoordinatorUnavailableError, LeasePoolNotStartedError
from leasepool._redis.calls import AcquireItem, Bound, ReleaseItem
from leasepool._redis.deadlines import local_deadline
from leasepool._redis.engine import Engine
from leasepool._redis.errors import REDIS_ERRORS, translate
from leasepool._redis.keys import DEFAULT_PREFIX, PoolKeys, check_lease_id
from leasepool._redis.options import (
    DEFAULT_RECLAIM_BATCH,
    MAX_LEASE_MS,
    RedisOptions,
    acquire_request,
    check_client,
    client_password,
    default_client_kwargs,
    lease_id_of,
)
from leasepool._redis.protocol import (
    RevokeStatus,
    decode_init,
    decode_renew,
    decode_revoke,
    decode_set_capacity,
    encode_init,
    encode_renew,
    encode_revoke,
    encode_set_capacity,
)
from leasepool._redis.runner import ScriptRunner
from leasepool._redis.scripts import Scripts
from leasepool._redis.snapshot import read_status
from leasepool._redis.subscriber import Subscription, subscribe
from leasepool._redis.url import check_url, describe_client, redact_url, url_password
from leasepool._redis.waiting import WaitingMachine
from leasepool._statistics import RedisCoordinatorStatistics
from leasepool._validation import capacity_value, positive_duration

log = logging.getLogger("leasepool.redis")

_READY_TIMEOUT = 2.0
_CLOSE_TIMEOUT = 5.0


class RedisCoordinator(Coordinator):
    """Global slots stored in Redis, shared by every process that uses the same pool.

    ``client`` is a ``redis.asyncio.Redis`` (a Sentinel master client or a
    ``redis.asyncio.RedisCluster`` work too). ``capacity`` initialises a new
    pool; an existing pool keeps its stored capacity (a warning is logged when
    they differ). Use :meth:`from_url` to let the coordinator own its client.

    Waiters are served in the order they queued, across every process, by
    direct hand-off: a release grants its slot to the oldest waiter in the
    same script (see the module docstring for how, and why it is safe).

    Keyword-only options:

    * ``fair`` (False): strict first-in, first-out across hosts. No acquire is
      granted while waiters are queued, and ``wait=False`` is refused then.
      Without it, an acquire may take a slot that nobody handed off (one whose
      lease expired, before a waiting process reclaimed it) ahead of the queue;
      every released, revoked or added slot still goes to the oldest waiter, so
      no waiter starves.
    * ``clock_drift`` (0.01): the largest relative clock-rate difference
      assumed between this host and Redis; local hard deadlines are shortened
      by this fraction.
    * ``reclaim_batch`` (100): expired leases removed, and queued tickets
      examined, per script call, at most.
    * ``recheck_interval`` (5.0 s, 1 to 60): while this process has waiters it
      sends one heartbeat per interval: one small script call for the whole
      process, whatever the number of waiters. Its tickets count as alive for
      three intervals after a heartbeat; a dead process's tickets are dropped
      after that.
    * ``claim_window`` (5.0 s, 0.1 to 60): how long a slot handed to a waiter
      in another process counts before that process confirms it (the waiter
      gets the slot only once confirmed). A grant to a dead process is
      reclaimed after this long (by the next waiting process's heartbeat, so
      within ``claim_window`` plus a ``recheck_interval``).
    * ``record_margin`` (60.0 s): how long a lease's hash outlives its hard
      expiry, so a late ``release`` can still tell "expired" from "unknown".
    * ``nowait_timeout`` (0.5 s, 0.01 to 60): how long an ``acquire`` may wait for
      Redis's answer when the caller gave no longer bound: ``wait=False`` and
      ``timeout=0`` answer within it (a hung Redis: ``CoordinatorUnavailableError``,
      or ``TimeoutError`` for a timeout), and ``acquire(timeout=t)`` returns within
      ``max(t, nowait_timeout)``, every Redis call included. Queued waiters learn
      that Redis hangs within ``recheck_interval`` plus ``max(2 s, nowait_timeout)``.

    ``capacity`` is an integer from 0 to 1,000,000; 0 means paused (nothing is
    granted, waiters wait, ``wait=False`` is refused saying so).
    """

    def __init__(
        self,
        client: Any,
        *,
        pool: str,
        capacity: int,
        key_prefix: str = DEFAULT_PREFIX,
        fair: bool = False,
        clock_drift: float = 0.01,
        reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
        recheck_interval: float = 5.0,
        claim_window: float = 5.0,
        record_margin: float = 60.0,
        nowait_timeout: float = 0.5,
    ) -> None:
        self._client = check_client(client)
        self._keys = PoolKeys.of(pool, key_prefix)
        self._options = o = RedisOptions.build(
            capacity=capacity,
            fair=fair,
            clock_drift=clock_drift,
            reclaim_batch=reclaim_batch,
            recheck_interval=recheck_interval,
            claim_window=claim_window,
            record_margin=record_margin,
            nowait_timeout=nowait_timeout,
        )
        self._owns_client = False
        self._machine = WaitingMachine(pool=self._keys.pool, drift=o.drift, recheck=o.recheck)
        self._runner = ScriptRunner(
            client,
            self._keys,
            target=describe_client(client),
            hidden=(client_password(client),),
            counters=self._machine.counters,
        )
        self._engine = Engine(
            keys=self._keys,
            scripts=Scripts.register(client),
            options=o,
            runner=self._runner,
            machine=self._machine,
            origin=secrets.token_hex(6),
            host=socket.gethostname().replace("|", "_"),
        )
        self._starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Subscription | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool: str,
        capacity: int,
        key_prefix: str = DEFAULT_PREFIX,
        fair: bool = False,
        clock_drift: float = 0.01,
        reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
        recheck_interval: float = 5.0,
        claim_window: float = 5.0,
        record_margin: float = 60.0,
        nowait_timeout: float = 0.5,
        **client_kwargs: Any,
    ) -> RedisCoordinator:
        """A coordinator with its own client for ``url`` (closed by the last :meth:`close`).

        ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS, or
        ``unix:///path``. ``client_kwargs`` go to ``redis.asyncio.Redis.from_url``;
        by default connects and reads time out after 5 s and a failed command is
        retried twice within 0.2 s, so an unreachable server is reported fast.
        """
        from redis.asyncio import Redis

        url = check_url(url)
        options: dict[str, Any] = {
            "fair": fair,
            "clock_drift": clock_drift,
            "reclaim_batch": reclaim_batch,
            "recheck_interval": recheck_interval,
            "claim_window": claim_window,
            "record_margin": record_margin,
            "nowait_timeout": nowait_timeout,
        }
        # Validate everything else before a client exists.
        PoolKeys.of(pool, key_prefix)
        RedisOptions.build(capacity=capacity, **options)
        client = Redis.from_url(url, **default_client_kwargs(dict(client_kwargs)))
        coordinator = cls(client, pool=pool, capacity=capacity, key_prefix=key_prefix, **options)
        coordinator._owns_client = True
        runner = coordinator._runner
        runner.target = redact_url(url)
        runner.hidden = (url_password(url), client_password(client))
        return coordinator

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RedisCoordinator:
        """A coordinator configured from ``LEASEPOOL_*`` environment variables.

        Reads ``LEASEPOOL_REDIS_URL`` (required), ``LEASEPOOL_POOL``,
        ``LEASEPOOL_CAPACITY``, ``LEASEPOOL_KEY_PREFIX`` and ``LEASEPOOL_FAIR`` from
        ``environ`` (default ``os.environ``) through ``LeasePoolSettings``. Keyword
        arguments named ``pool``, ``capacity``, ``key_prefix`` or ``fair`` are defaults
        for unset variables; the others go to :meth:`from_url`. A malformed variable
        raises ``ValueError`` naming it.
        """
        from leasepool._settings import LeasePoolSettings

        names = ("pool", "capacity", "key_prefix", "fair")
        settings = LeasePoolSettings.from_env(
            environ, **{k: kwargs.pop(k) for k in names if k in kwargs}
        )
        return cls.from_url(
            settings.require_url(),
            pool=settings.pool,
            capacity=settings.capacity,
            key_prefix=settings.key_prefix,
            fair=settings.fair,
            **kwargs,
        )

    def __repr__(self) -> str:
        return (
            f"RedisCoordinator(pool={self._keys.pool!r}, capacity={self._options.capacity}, "
            f"key_prefix={self._keys.prefix!r}, fair={self._options.fair}, "
            f"target={self._runner.target!r})"
        )

    # -- properties ----------------------------------------------------------

    @property
    def pool(self) -> str:
        """The pool name: processes with the same name and key prefix share one capacity."""
        return self._keys.pool

    @property
    def keys(self) -> PoolKeys:
        """The Redis key names of this pool."""
        return self._keys

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client this coordinator talks through."""
        return self._client

    @property
    def fair(self) -> bool:
        """True: no acquire is granted while others are queued (strict FIFO)."""
        return self._options.fair

    @property
    def capacity(self) -> int:
        """The pool's capacity as last seen in Redis (the constructor's before start)."""
        stored = self._machine.stored_capacity
        return stored if stored is not None else self._options.capacity

    def _require_started(self) -> None:
        if self._starts == 0:
            raise LeasePoolNotStartedError(f"{self!r} is not started")
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError(f"{self!r} is bound to the event loop that started it")

    # -- lifecycle -------------------------------------------------------------

    async def start(self, *, clock: Clock, on_lost: LostCallback) -> None:
        """Load the scripts, create the pool if it is new, and listen to its events.

        Raises :class:`CoordinatorUnavailableError` when Redis cannot be reached or
        refuses, :class:`CoordinatorStateError` when the pool's keys are damaged.
        """
        loop = asyncio.get_running_loop()
        if self._starts:
            if loop is not self._loop:
                raise RuntimeError(f"{self!r} is bound to the event loop that started it")
            self._starts += 1
            self._engine.lost_callbacks.append(on_lost)
            return
        self._engine.clock = clock
        try:
            t_sent = clock.monotonic()
            reply = decode_init(
                await self._runner.call(
                    f"start pool {self.pool!r}",
                    self._engine.scripts.init,
                    self._engine.fixed,
                    encode_init(self._engine.cfg()),
                )
            )
        except BaseException:
            if self._owns_client:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._client.aclose()
            raise
        self._machine.start(t_sent, reply.now_ms, reply.capacity)
        if reply.capacity != self._options.capacity:
            log.warning(
                "pool %r already has capacity %d in Redis; using it instead of %d",
                self.pool,
                reply.capacity,
                self._options.capacity,
            )
        self._loop = loop
        await self._runner.open_lanes((*self._engine.fixed, self._engine.cfg()))
        self._subscription = subscribe(self._client, self._keys.events, self._engine.on_event)
        self._starts = 1
        self._engine.started = True
        self._engine.lost_callbacks.append(on_lost)
        await self._subscription.wait_ready(_READY_TIMEOUT)

    async def close(self) -> None:
        """Undo one :meth:`start`; the last one stops listening and closes the client if
        this coordinator owns it (:meth:`from_url`).
        """
        if self._starts == 0:
            return
        self._starts -= 1
        if self._starts:
            return
        self._engine.lost_callbacks.clear()
        self._engine.started = False
        closed = LeasePoolNotStartedError(f"coordinator for pool {self.pool!r} closed")
        pending = list(self._engine.acquires.pending)
        self._engine.acquires.pending.clear()
        self._engine.run(self._machine.close(pending, closed))
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        for _ in range(3):
            if not self._engine.background:
                break
            await asyncio.wait(set(self._engine.background), timeout=_CLOSE_TIMEOUT)
        if self._machine.ever_queued:
            await self._leave_waiters()
        await self._engine.stop_loops()
        self._machine.forget_all()
        self._loop = None
        await self._runner.close_lanes()
        if self._owns_client:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.aclose()

    async def _leave_waiters(self) -> None:
        """Take this process out of the pool's waiting processes (its tickets are gone)."""
        self._machine.ever_queued = False
        try:
            await asyncio.wait_for(self._client.zrem(self._keys.waiters, self._engine.origin), 2.0)
        except (*REDIS_ERRORS, TimeoutError) as exc:  # type: ignore[misc]
            log.debug("pool %r: could not remove this process's waiter entry: %s", self.pool, exc)

    # -- acquiring -------------------------------------------------------------

    def _item(self, request: GrantRequest, wait: bool, deadline: float | None) -> AcquireItem:
        lease_id, arg = acquire_request(request, wait)
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        return AcquireItem(
            request, self._engine.lease_prefix + lease_id, arg, wait, deadline, future
        )

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        """Grant a global slot (see :meth:`Coordinator.acquire`).

        One script call; with ``wait=True`` a ticket queues in Redis and a freed slot
        is handed to it directly by the script that frees it.
        """
        self._require_started()
        item = self._item(request, wait, deadline)
        self._machine.enqueue(item)
        bound = self._bound(item, wait, deadline)
        try:
            await self._engine.acquires.submit(item)
            return await item.future
        except BaseException as exc:
            future = item.future
            kept = future.done() and not future.cancelled() and future.exception() is None
            self._engine.run(self._machine.left(item, kept_grant=kept))
            if bound is not None and bound.fired and isinstance(exc, asyncio.CancelledError):
                late = self._out_of_time(bound, wait)
                if late is None:
                    raise  # cancelled from outside as well
                raise late from None
            if isinstance(exc, TimeoutError):
                self._machine.counters["timeouts"] += 1
            raise
        finally:
            item.stop_timer()
            if bound is not None:
                bound.cancel()

    def _bound(self, item: AcquireItem, wait: bool, deadline: float | None) -> Bound | None:
        """Cut the whole acquire off at ``max(deadline, now + nowait_timeout)`` (none
        when the caller waits without a deadline): a hung Redis cannot stretch it."""
        if wait and deadline is None:
            return None
        limit = self._engine.clock.monotonic() + self._options.nowait
        if deadline is not None and deadline > limit:
            limit = deadline
        task = asyncio.current_task()
        assert task is not None
        return Bound(self._engine.clock, limit, task, item)

    def _out_of_time(self, bound: Bound, wait: bool) -> BaseException | None:
        task = asyncio.current_task()
        if task is not None and task.uncancel() > 0:
            return None
        target = self._runner.target
        if wait:
            self._machine.counters["timeouts"] += 1
            return TimeoutError(
                f"timed out waiting for a slot in pool {self.pool!r}"
                + ("" if bound.answered else f" (no reply from Redis at {target})")
            )
        return CoordinatorUnavailableError(
            f"acquire a slot in pool {self.pool!r}: no reply from Redis at {target} within"
            f" {self._options.nowait} s (nowait_timeout)"
        )

    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Free the slot in Redis; the freed slot goes to the oldest live waiter. Idempotent."""
        lease_id = lease_id_of(lease_id)
        self._machine.released(lease_id)
        future: asyncio.Future[ReleaseOutcome] = asyncio.get_running_loop().create_future()
        item = ReleaseItem(lease_id, self._engine.lease_prefix + lease_id, 0, future)
        try:
            await self._engine.releases.submit(item)
        except asyncio.CancelledError:
            # Our call was cut off, its outcome unknown: repeat it in the background (a
            # repeated release is harmless), then look for grants its reply carried.
            self._engine.spawn(self._release_again(lease_id))
            raise
        return await future

    async def _release_again(self, lease_id: str) -> None:
        await self._engine.release_quietly(lease_id)
        self._engine.run(self._machine.full_sync())

    async def renew(self, renewals: Mapping[str, float]) -> dict[str, Grant | None]:
        """Extend leases in one round trip: id -> new grant, or None when Redis no longer has it."""
        if not renewals:
            return {}
        ids = [check_lease_id(lease_id) for lease_id in renewals]
        pairs: list[tuple[str, int]] = []
        for lease_id in ids:
            seconds = positive_duration("lease_seconds", renewals[lease_id])
            lease_ms = max(1, round(seconds * 1000))
            if lease_ms > MAX_LEASE_MS:
                raise ValueError(f"lease_seconds is too long, got {renewals[lease_id]!r}")
            pairs.append((lease_id, lease_ms))
        t_sent = self._engine.clock.monotonic()
        raw = await self._runner.call(
            f"renew {len(ids)} lease(s) in pool {self.pool!r}",
            self._engine.scripts.renew,
            self._engine.keys_for(ids),
            encode_renew(self._engine.cfg(), pairs),
        )
        return self._machine.renew_replied(ids, t_sent, decode_renew(raw, len(ids)))

    async def revoke(self, lease_id: str) -> bool:
        """Remove a lease by id (an operator action); its holder learns it from the pool's
        events. True if it was live.
        """
        lease_id = check_lease_id(lease_id)
        t_sent = self._engine.clock.monotonic()
        raw = await self._runner.call(
            f"revoke lease {lease_id!r} in pool {self.pool!r}",
            self._engine.scripts.revoke,
            self._engine.keys_for([lease_id]),
            encode_revoke(self._engine.cfg(), lease_id),
        )
        reply = decode_revoke(raw)
        self._machine.note(t_sent, reply.now_ms)
        self._engine.run(self._machine.lost(lease_id))
        self._engine.run(self._machine.replied(t_sent, reply.now_ms, reply.own))
        return reply.status is RevokeStatus.WAS_LIVE

    async def set_capacity(self, capacity: int) -> None:
        """Store a new capacity for the pool; new free slots go to waiters. Shrinking
        never revokes a live lease.
        """
        capacity = capacity_value("capacity", capacity)
        t_sent = self._engine.clock.monotonic()
        raw = await self._runner.call(
            f"set capacity of pool {self.pool!r}",
            self._engine.scripts.set_capacity,
            self._engine.fixed,
            encode_set_capacity(self._engine.cfg(), capacity),
        )
        reply = decode_set_capacity(raw)
        self._machine.stored_capacity = capacity
        self._engine.run(self._machine.replied(t_sent, reply.now_ms, reply.own))

    async def status(self) -> PoolStatus:
        """The pool's capacity, live leases and waiters, as Redis holds them.

        Housekeeping first: one batch of expired leases is reclaimed (``leasepool
        status`` does not do that: it only reads).
        """
        try:
            return await read_status(
                self._client,
                self._engine.scripts,
                self._keys,
                reclaim_batch=self._options.reclaim_batch,
            )
        except REDIS_ERRORS as exc:
            raise translate(
                exc,
                action=f"status of pool {self.pool!r}",
                target=self._runner.target,
                secrets=self._runner.hidden,
            ) from exc

    def statistics(self) -> RedisCoordinatorStatistics:
        """This process's view and counters for ``manager.stats()["coordinator"]``; no I/O."""
        m = self._machine
        return {
            "kind": "redis",
            "pool": self.pool,
            "target": self._runner.target,
            "capacity": self.capacity,
            "fair": self._options.fair,
            "held": len(m.held),
            "waiting": len(m.waiting),
            "process": f"{self._engine.host}:{os.getpid()}",
            "pool_waiting": m.pool_queued,
            "unclaimed": m.unclaimed(),
            **m.counters,  # type: ignore[typeddict-item]
        }


__all__ = ["RedisCoordinator", "local_deadline"]
