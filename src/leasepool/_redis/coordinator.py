"""The Redis coordinator: one global capacity shared by every host.

State lives in Redis (see :mod:`leasepool._redis.keys`) and changes only inside
the Lua scripts of the top-level ``lua/`` folder; all timestamps there are the
server's (``TIME``).

Local deadlines. A grant's deadlines are on this host's clock. For a grant
that comes back in the reply to a request of ours, they are measured from the
moment the request was *sent*: ``hard = t_sent + (hard_ms - now_ms) * (1 -
clock_drift)``, where ``now_ms`` is the server time the script saw. A grant
*handed off* to one of our waiters by another process's release comes with no
request of ours; it is measured from an anchor instead (see
:func:`local_deadline`). Renewals follow the same rule and never move a
deadline earlier than the one already known.

Waiting. A waiting ``acquire`` leaves a *ticket* in Redis: its lease id in the
pool's ``queue`` (a ZSET ordered by an enqueue sequence) and what it asks for
in the pool's ``tickets`` hash. Every script that frees capacity (release,
revoke, set-capacity, reclaim, heartbeat) grants the freed slots straight to
the oldest live tickets, in the same script: there is no wake-up, no retry
and no herd. A grant to a ticket of the calling process comes back in the
script's reply; a grant to another process's ticket is published on the
pool's events channel, where that process's one subscriber resolves the
waiter with no further round trip.

Claims. The releasing script cannot write the waiter's lease hash (it does not
know the key, and every key a script touches must be declared), so a grant
handed to another process first counts in Redis only until a short *claim
deadline* (``claim_window``, 5 s), and keeps its data in the tickets hash. The
waiter's process claims it right after resolving the waiter (``heartbeat.lua``,
off the latency path): the claim writes the lease hash and moves the expiry to
the full hard expiry. A grant to a waiter that has gone away is so reclaimed
within the claim window: a dead process never claims; a waiter that timed out
or was cancelled releases its ticket (or the grant that raced it) at once.
A handed-off grant is given to its waiter only from the claim's reply, timed
from the claim call: a ``grant`` message may be read long after it was sent
(a stalled loop), so it never activates a lease by itself; a claim made after
the claim deadline finds the grant gone and the waiter queues again.

Bounds. ``acquire`` with a timeout, ``wait=False`` or ``timeout=0`` is cut off
at ``max(deadline, now + nowait_timeout)`` whatever Redis does; a heartbeat at
``max(2 s, nowait_timeout)``. Replies are parsed by :mod:`leasepool._redis.protocol`:
a reply that cannot be read fails the calls it answered, never a batch loop.
Deadlines come from :mod:`leasepool._redis.deadlines` (conservative to the µs).

Heartbeats. A waiting process marks itself alive in the pool's ``waiters``
set (coordinator id -> until when), once per ``recheck_interval`` and at each
enqueue: one small ``heartbeat.lua`` call for the whole process (``TIME``, a
``ZADD``, a look at the earliest expiry), whatever the number of its waiters.
A ticket counts while its process is alive; the tickets of a process that
stopped beating for three intervals are dropped by whoever meets them next
(and its entry with them, so that if it was only stalled, its next heartbeat
sees the gap and checks its tickets, queueing again the ones that are gone).
A full check (every ticket and claim of ours, reclaim a batch, hand free
slots to the queue) runs at once when the subscriber (re)connects (pub/sub
loses messages while disconnected, and the check finds grants whose message
was lost), when a ``free`` event arrives, after a release whose reply was
lost, and at the earliest lease expiry Redis reported (nobody announces an
expiry; a heartbeat that finds an expired lease runs it too). A process whose
waiters sit behind a long lease sends one command per ``recheck_interval``.

Calls. At most one acquire call, one release call and one heartbeat call of a
coordinator are in flight; requests that come meanwhile share the next call
(:class:`leasepool._redis.calls.CallQueue`). Each kind has a connection of its
own when the client allows (:mod:`leasepool._redis.lane`).

Order. Tickets are granted in enqueue order, across all processes; a process
sends its enqueues in the order its callers asked. With ``fair=True`` no
acquire is granted while tickets are queued, and ``wait=False`` is refused
then. Without it an acquire takes a free slot even with tickets queued; such a
slot exists only when nobody handed it off (a lease that expired instead of
being released, before a waiting process reclaimed it), so waiters never
starve: every release, revoke and capacity increase serves the queue's head.
``wait=False`` costs one round trip, and fails at once while this process has
waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from leasepool._clock import MONOTONIC_CLOCK, Clock, TimerHandle
from leasepool._coordinator import (
    Coordinator,
    Grant,
    GrantRequest,
    LostCallback,
    PoolStatus,
    ReleaseOutcome,
)
from leasepool._errors import (
    CoordinatorStateError,
    CoordinatorUnavailableError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)
from leasepool._redis.admin import DEFAULT_RECLAIM_BATCH, read_status, script_config
from leasepool._redis.calls import AcquireItem, Bound, CallQueue, ReleaseItem, State
from leasepool._redis.deadlines import grant_deadlines, local_deadline, passed_by
from leasepool._redis.errors import REDIS_ERRORS, is_wrongtype, translate
from leasepool._redis.keys import DEFAULT_PREFIX, PoolKeys, check_lease_id
from leasepool._redis.lane import Lane, LaneBrokenError, lanes_supported
from leasepool._redis.protocol import OwnGrant, ReplyError, ints, own_grants, split
from leasepool._redis.scripts import Scripts
from leasepool._redis.subscriber import Subscription, subscribe
from leasepool._redis.url import check_url, describe_client, redact_url, url_password
from leasepool._validation import (
    ArgumentTypeError,
    boolean,
    capacity_value,
    finite_number,
    non_negative_duration,
    positive_duration,
    positive_int,
)

log = logging.getLogger("leasepool.redis")

T = TypeVar("T")

_MAX_LEASE_MS = 2**41
"""About 70 years: keeps every number the scripts compute far below 2**53."""
_READY_TIMEOUT = 2.0
_CLOSE_TIMEOUT = 5.0
_MIN_RETRY_GAP = 0.01
_EXPIRY_SLACK = 0.002
_CLAIM_RETRY = 0.1
"""Set to 1: experimental per-process channel (see RedisCoordinator.__init__)."""
_BEAT_TIMEOUT = 2.0
_KEEP_INTERVAL = 30.0
"""Seconds between TTL renewals of the waiting keys (under the scripts' 60 s SLACK)."""
"""A heartbeat with no reply within this (or nowait_timeout, if longer) fails the waiters."""
_BATCH_LIMIT = 500
"""Requests per acquire or release call, at most."""
_HEARTBEAT_IDS = 1000
"""Ids per heartbeat call, at most (heartbeat.lua refuses more)."""
_TOMBSTONE_MS = 60_000
_OUTCOMES = {
    1: ReleaseOutcome.RELEASED,
    2: ReleaseOutcome.EXPIRED,
    3: ReleaseOutcome.UNKNOWN,
    0: ReleaseOutcome.UNKNOWN,
}

_LEASE_ID = re.compile(r"\S+")

_PID = [os.getpid()]
"""This process's id, kept up to date across fork (os.getpid() is a system call)."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


@dataclass(slots=True)
class _Held:
    token: int
    soft: float
    hard: float


def _seconds(name: str, value: object, above: float) -> float:
    """A finite number of seconds > ``above`` (0: positive; -1: zero allowed), fast path first."""
    if (type(value) is float or type(value) is int) and above < value < 1e300:
        return value
    if above == 0:
        return positive_duration(name, value)
    return non_negative_duration(name, value)


def _consume_result(task: asyncio.Future[Any]) -> None:
    """Mark a background task's exception as seen (the awaiting caller may be gone)."""
    if not task.cancelled():
        task.exception()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_client(client: object) -> Any:
    execute = getattr(client, "execute_command", None)
    if execute is None or not hasattr(client, "register_script"):
        raise ArgumentTypeError(
            f"client must be a redis.asyncio.Redis (or cluster/sentinel) client, got {client!r}"
        )
    if not inspect.iscoroutinefunction(execute):
        raise ArgumentTypeError(
            f"client must be an asyncio client (redis.asyncio.Redis), got the blocking {client!r}"
        )
    return client


def _default_client_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fail fast when Redis is down instead of redis-py's long default retry loop."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    kwargs.setdefault("socket_connect_timeout", 5.0)
    kwargs.setdefault("socket_timeout", 5.0)
    kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
    return kwargs


def _duration_in(name: str, value: object, low: float, high: float) -> float:
    seconds = positive_duration(name, value)
    if not low <= seconds <= high:
        raise ValueError(f"{name} must be between {low} and {high} seconds, got {value!r}")
    return seconds


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
        self._client = _check_client(client)
        self._keys = PoolKeys.of(pool, key_prefix)
        self._capacity = capacity_value("capacity", capacity)
        self._fair = boolean("fair", fair)
        drift = finite_number("clock_drift", clock_drift)
        if not 0 <= drift < 0.5:
            raise ValueError(f"clock_drift must be >= 0 and < 0.5, got {clock_drift!r}")
        self._drift = drift
        self._reclaim_batch = positive_int("reclaim_batch", reclaim_batch)
        if self._reclaim_batch > 10_000:
            raise ValueError(f"reclaim_batch must be <= 10000, got {reclaim_batch!r}")
        self._recheck = _duration_in("recheck_interval", recheck_interval, 1.0, 60.0)
        self._claim_ms = round(_duration_in("claim_window", claim_window, 0.1, 60.0) * 1000)
        self._margin_ms = round(non_negative_duration("record_margin", record_margin) * 1000)
        if self._margin_ms > _MAX_LEASE_MS:
            raise ValueError(f"record_margin is too large, got {record_margin!r}")
        self._ticket_ms = round(self._recheck * 3000)
        self._nowait = _duration_in("nowait_timeout", nowait_timeout, 0.01, 60.0)
        self._scripts = Scripts.register(client)
        self._owns_client = False
        self._target = describe_client(client)
        self._hidden: tuple[str | None, ...] = (self._client_password(),)
        self._host = socket.gethostname().replace("|", "_")
        self._origin = secrets.token_hex(6)
        self._config: tuple[int, str] | None = None
        self._fixed = list(self._keys.fixed)
        self._lease_prefix = self._keys.lease("")
        self._lanes: tuple[Lane, Lane, Lane] | None = None
        """Dedicated connections for acquire, release and heartbeat calls, when supported."""
        self._acquire_action = f"acquire a slot in pool {self._keys.pool!r}"
        self._heartbeat_action = f"heartbeat in pool {self._keys.pool!r}"

        self._clock: Clock = MONOTONIC_CLOCK
        self._starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost_callbacks: list[LostCallback] = []
        self._waiting: dict[str, AcquireItem] = {}
        """This process's waiters, in arrival order."""
        self._held: dict[str, _Held] = {}
        self._unclaimed: dict[str, None] = {}
        """Grants handed to our waiters, to claim before the waiter gets them."""
        self._acquires: CallQueue[AcquireItem] = CallQueue(
            self._send_acquires, self._spawn, _BATCH_LIMIT
        )
        self._releases: CallQueue[ReleaseItem] = CallQueue(
            self._send_releases, self._spawn, _BATCH_LIMIT
        )
        self._sync_ids: dict[str, None] = {}
        self._sync_full = False
        self._sync_beat = False
        self._sync_task: asyncio.Task[None] | None = None
        self._anchor: tuple[float, int] = (0.0, 0)
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._beat_at: float | None = None
        self._expiry_at: float | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._subscription: Subscription | None = None
        self._ever_queued = False
        self._keep_at = 0.0
        self._stored_capacity: int | None = None
        self._pool_queued: int | None = None
        self._counters = {
            "grants": 0,
            "handoffs": 0,
            "refusals": 0,
            "waits": 0,
            "timeouts": 0,
            "round_trips": 0,
            "events": 0,
            "heartbeats": 0,
            "claims": 0,
            "claims_lost": 0,
            "requeued": 0,
            "orphans_released": 0,
            "renewals": 0,
            "lost": 0,
        }

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
        # Validate everything else before a client exists.
        PoolKeys.of(pool, key_prefix)
        capacity_value("capacity", capacity)
        boolean("fair", fair)
        client = Redis.from_url(url, **_default_client_kwargs(dict(client_kwargs)))
        coordinator = cls(
            client,
            pool=pool,
            capacity=capacity,
            key_prefix=key_prefix,
            fair=fair,
            clock_drift=clock_drift,
            reclaim_batch=reclaim_batch,
            recheck_interval=recheck_interval,
            claim_window=claim_window,
            record_margin=record_margin,
            nowait_timeout=nowait_timeout,
        )
        coordinator._owns_client = True
        coordinator._target = redact_url(url)
        coordinator._hidden = (url_password(url), coordinator._client_password())
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

    def _client_password(self) -> str | None:
        pool = getattr(self._client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        password = kwargs.get("password")
        return password if isinstance(password, str) else None

    def __repr__(self) -> str:
        return (
            f"RedisCoordinator(pool={self._keys.pool!r}, capacity={self._capacity}, "
            f"key_prefix={self._keys.prefix!r}, fair={self._fair}, target={self._target!r})"
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
        return self._fair

    @property
    def capacity(self) -> int:
        """The pool's capacity as last seen in Redis (the constructor's before start)."""
        return self._stored_capacity if self._stored_capacity is not None else self._capacity

    # -- plumbing ------------------------------------------------------------

    async def _call(
        self,
        action: str | Callable[[], str],
        script: Callable[..., Awaitable[T]],
        keys: Sequence[str],
        args: list[Any],
        lane: Lane | None = None,
    ) -> T:
        """Run one script (on ``lane`` if given); every redis-py error becomes a leasepool one.

        ``action`` names what was done, for error messages (a callable: built only then).
        """
        self._counters["round_trips"] += 1
        try:
            if lane is not None:
                try:
                    result: T = await lane.call(script, keys, args)
                    return result
                except LaneBrokenError:
                    pass  # once more through the client, with its retry policy
            return await script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            if not isinstance(action, str):
                action = action()
            if is_wrongtype(exc):
                raise await self._wrongtype_error(action, keys) from exc
            raise translate(exc, action=action, target=self._target, secrets=self._hidden) from exc

    async def _wrongtype_error(self, action: str, keys: Sequence[str]) -> LeasePoolError:
        k = self._keys
        expected = {
            k.meta: "hash",
            k.leases: "zset",
            k.queue: "zset",
            k.tickets: "hash",
            k.waiters: "zset",
        }
        try:
            for key in keys:
                if key == k.events:
                    continue
                kind = _text(await self._client.type(key))
                want = expected.get(key, "hash")
                if kind not in (want, "none"):
                    return CoordinatorStateError(
                        f"{action}: Redis key {key!r} holds a {kind}, expected a {want}"
                    )
        except REDIS_ERRORS:
            pass
        return CoordinatorStateError(f"{action}: a key of pool {self.pool!r} has the wrong type")

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_consume_result)
        return task

    def _require_started(self) -> None:
        if self._starts == 0:
            raise LeasePoolNotStartedError(f"{self!r} is not started")
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError(f"{self!r} is bound to the event loop that started it")

    def _cfg(self) -> str:
        """The scripts' ARGV[1]: this process's constants, encoded once (see lua/_shared.lua)."""
        pid = _PID[0]
        if self._config is None or self._config[0] != pid:
            text = script_config(
                capacity=self._capacity,
                batch=self._reclaim_batch,
                margin_ms=self._margin_ms,
                claim_ms=self._claim_ms,
                ticket_ms=self._ticket_ms,
                fair=self._fair,
                origin=self._origin,
                pid=pid,
                host=self._host,
            )
            self._config = (pid, text)
        return self._config[1]

    def _note(self, t_sent: float, now_ms: int) -> None:
        """A reply came back: keep the most recent anchor (see :func:`local_deadline`)."""
        if t_sent >= self._anchor[0]:
            self._anchor = (t_sent, now_ms)

    def _to_grant(
        self,
        lease_id: str,
        t_sent: float,
        token: int,
        now_ms: int,
        soft_ms: int,
        hard_ms: int,
        *,
        hold: bool = True,
    ) -> Grant:
        """The grant, timed from the anchor ``(t_sent, now_ms)``; noted as held.

        ``hold=False`` (a renewal): only a lease still held is updated, so a reply that
        arrives after the release never puts its entry back.
        """
        soft, hard = grant_deadlines(t_sent, now_ms, soft_ms, hard_ms, self._drift)
        held = self._held.get(lease_id)
        if held is not None and held.token == token:
            soft, hard = max(soft, held.soft), max(hard, held.hard)
        if hold or held is not None:
            self._held[lease_id] = _Held(token, soft, hard)
        return Grant(lease_id, token, soft, hard)

    def _lease_key(self, lease_id: str) -> str:
        return self._lease_prefix + lease_id

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
            self._lost_callbacks.append(on_lost)
            return
        self._clock = clock
        k = self._keys
        try:
            t_sent = clock.monotonic()
            reply = await self._call(
                f"start pool {self.pool!r}",
                self._scripts.init,
                list(k.fixed),
                [self._capacity],
            )
        except BaseException:
            if self._owns_client:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._client.aclose()
            raise
        stored = int(reply[0])
        self._anchor = (t_sent, int(reply[2]))
        self._stored_capacity = stored
        if stored != self._capacity:
            log.warning(
                "pool %r already has capacity %d in Redis; using it instead of %d",
                self.pool,
                stored,
                self._capacity,
            )
        self._loop = loop
        if lanes_supported(self._client):
            constants = (*self._fixed, self._cfg())
            self._lanes = (
                Lane(self._client, constants),
                Lane(self._client, constants),
                Lane(self._client, constants),
            )
            for lane in self._lanes:  # connect now, not on the first (timed) call
                with contextlib.suppress(*REDIS_ERRORS):
                    await lane.connect()
        self._subscription = subscribe(self._client, k.events, self._on_event)
        self._starts = 1
        self._lost_callbacks.append(on_lost)
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
        self._lost_callbacks.clear()
        self._cancel_timer()
        self._beat_at = self._expiry_at = None
        closed = LeasePoolNotStartedError(f"coordinator for pool {self.pool!r} closed")
        pending = list(self._acquires.pending)
        self._acquires.pending.clear()
        for item in pending:
            item.state = State.DONE
            self._fail(item, closed)
        leaving = []
        for item in list(self._waiting.values()):
            if item.state is State.QUEUED:
                leaving.append(item.lease_id)
                item.state = State.DONE
            self._fail(item, closed)
        self._waiting.clear()
        leaving += [lease_id for lease_id in self._unclaimed if lease_id not in leaving]
        self._unclaimed.clear()
        for lease_id in leaving:
            self._spawn(self._release_quietly(lease_id, tomb=True))
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        for _ in range(3):
            if not self._background:
                break
            await asyncio.wait(set(self._background), timeout=_CLOSE_TIMEOUT)
        if self._ever_queued:
            await self._leave_waiters()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        self._held.clear()
        self._loop = None
        lanes, self._lanes = self._lanes, None
        for lane in lanes or ():
            await lane.close()
        if self._owns_client:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.aclose()

    async def _leave_waiters(self) -> None:
        """Take this process out of the pool's waiting processes (its tickets are gone)."""
        self._ever_queued = False
        try:
            await asyncio.wait_for(self._client.zrem(self._keys.waiters, self._origin), 2.0)
        except (*REDIS_ERRORS, TimeoutError) as exc:  # type: ignore[misc]
            log.debug("pool %r: could not remove this process's waiter entry: %s", self.pool, exc)

    # -- acquiring -------------------------------------------------------------

    def _item(self, request: GrantRequest, wait: bool, deadline: float | None) -> AcquireItem:
        lease_id = request.lease_id
        if type(lease_id) is not str or not _LEASE_ID.fullmatch(lease_id):
            lease_id = check_lease_id(lease_id)
        lease_ms = max(1, round(_seconds("lease_seconds", request.lease_seconds, 0) * 1000))
        grace_ms = round(_seconds("grace_seconds", request.grace_seconds, -1) * 1000)
        if lease_ms + grace_ms > _MAX_LEASE_MS:
            raise ValueError(
                f"lease_seconds + grace_seconds is too long, got {request.lease_seconds!r}"
                f" + {request.grace_seconds!r}"
            )
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        arg = f"{1 if wait else 0} {lease_ms} {grace_ms} {lease_id} {request.owner}"
        return AcquireItem(request, self._lease_prefix + lease_id, arg, wait, deadline, future)

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        """Grant a global slot (see :meth:`Coordinator.acquire`).

        One script call; with ``wait=True`` a ticket queues in Redis and a freed slot
        is handed to it directly by the script that frees it.
        """
        self._require_started()
        item = self._item(request, wait, deadline)
        if not wait and self._waiting:
            self._counters["refusals"] += 1
            raise LeaseUnavailableError(
                f"pool {self.pool!r} has {len(self._waiting)} waiting in this process"
            )
        if wait:
            self._waiting[item.lease_id] = item
        bound = self._bound(item, wait, deadline)
        try:
            await self._acquires.submit(item)
            return await item.future
        except BaseException as exc:
            self._leave(item)
            if bound is not None and bound.fired and isinstance(exc, asyncio.CancelledError):
                late = self._out_of_time(bound, wait)
                if late is None:
                    raise  # cancelled from outside as well
                raise late from None
            if isinstance(exc, TimeoutError):
                self._counters["timeouts"] += 1
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
        limit = self._clock.monotonic() + self._nowait
        if deadline is not None and deadline > limit:
            limit = deadline
        task = asyncio.current_task()
        assert task is not None
        return Bound(self._clock, limit, task, item)

    def _out_of_time(self, bound: Bound, wait: bool) -> BaseException | None:
        task = asyncio.current_task()
        if task is not None and task.uncancel() > 0:
            return None
        if wait:
            self._counters["timeouts"] += 1
            return TimeoutError(
                f"timed out waiting for a slot in pool {self.pool!r}"
                + ("" if bound.answered else f" (no reply from Redis at {self._target})")
            )
        return CoordinatorUnavailableError(
            f"{self._acquire_action}: no reply from Redis at {self._target} within"
            f" {self._nowait} s (nowait_timeout)"
        )

    def _leave(self, item: AcquireItem) -> None:
        """The caller of ``item`` is gone (error, timeout, cancellation): leave nothing behind."""
        if self._waiting.get(item.lease_id) is item:
            del self._waiting[item.lease_id]
        self._unclaimed.pop(item.lease_id, None)  # (a hand-off to it is released below)
        future = item.future
        if future.done() and not future.cancelled() and future.exception() is None:
            self._orphan(item.lease_id)  # granted, but nobody took the grant
            return
        if item.state is State.PENDING:
            self._acquires.discard(item)
            item.state = State.DONE
        elif item.state is State.QUEUED:
            item.state = State.DONE
            self._spawn(self._release_quietly(item.lease_id, tomb=True))
        # SENT: the reply, when it comes, finds the item gone and cleans up.
        if not self._waiting:
            self._arm_timer()

    def _orphan(self, lease_id: str) -> None:
        """A grant whose waiter left: release it (the slot goes on to the next waiter)."""
        self._held.pop(lease_id, None)
        self._forget_claim(lease_id)
        self._counters["orphans_released"] += 1
        self._spawn(self._release_quietly(lease_id))

    def _fail(self, item: AcquireItem, exc: BaseException) -> None:
        if self._waiting.get(item.lease_id) is item:
            del self._waiting[item.lease_id]
        if not item.future.done():
            item.future.set_exception(exc)

    def _settle(self, item: AcquireItem, grant: Grant) -> None:
        """Give ``grant`` to its waiter; a waiter that left gets its grant released."""
        if item.state is State.PENDING:
            self._acquires.discard(item)  # (queued again, but granted first: never send it)
        item.state = State.DONE
        item.stop_timer()
        if self._waiting.get(item.lease_id) is item:
            del self._waiting[item.lease_id]
        if item.future.done():
            self._orphan(item.lease_id)
        else:
            item.future.set_result(grant)

    async def _call_acquires(self, items: list[AcquireItem]) -> tuple[float, Any] | None:
        """Send one acquire call for ``items``; None if it failed (they are failed)."""
        keys = self._fixed.copy()
        args = [self._cfg()]
        for item in items:
            item.state = State.SENT
            keys.append(item.key)
            args.append(item.arg)
        t_sent = self._clock.monotonic()
        try:
            reply = await self._call(
                self._acquire_action,
                self._scripts.acquire,
                keys,
                args,
                self._lanes[0] if self._lanes else None,
            )
        except BaseException as exc:
            # The script may have run (or may still run): free the ids, and leave
            # tombstones so that a late-arriving acquire of them grants nothing.
            self._fail_sent(items, exc if isinstance(exc, LeasePoolError) else None)
            if isinstance(exc, LeasePoolError):
                return None
            raise
        return t_sent, reply

    def _fail_sent(self, items: list[AcquireItem], exc: LeasePoolError | None) -> None:
        """A call for ``items`` failed after it may have run: leave nothing taken."""
        for item in items:
            item.state = State.DONE
            self._spawn(self._release_quietly(item.lease_id, tomb=True))
            if exc is not None:
                self._fail(item, exc)

    async def _send_acquires(self, items: list[AcquireItem]) -> None:
        if len(items) > 1 or items[0].state is not State.PENDING:
            items = [item for item in items if item.state is State.PENDING]
            if not items:
                return
        sent = await self._call_acquires(items)
        if sent is None:
            return
        t_sent, reply = sent
        try:
            fields = split(reply, self._acquire_action)
            now_ms, earliest_ms, queued, capacity, revived = ints(fields, 0, 5, "acquire")
            rows = [ints(fields, 5 + 4 * i, 4, "acquire") for i in range(len(items))]
            own = own_grants(fields, 5 + 4 * len(items), "acquire")
        except ReplyError as exc:
            self._fail_sent(items, exc)  # (granted or not)
            return
        self._note(t_sent, now_ms)
        self._stored_capacity = capacity
        if queued >= 0:
            self._pool_queued = queued
        if revived and any(i.state is State.QUEUED for i in self._waiting.values()):
            # We had stopped counting as alive: our older tickets may have been dropped.
            self._request_sync(full=True)
        any_queued = False
        for item, (status, a, b, c) in zip(items, rows, strict=True):
            if status == 1:
                self._counters["grants"] += 1
                self._settle(item, self._to_grant(item.lease_id, t_sent, a, now_ms, b, c))
            elif status == 0:
                any_queued = self._queued(item) or any_queued
            else:
                item.state = State.DONE
                self._fail(item, self._refusal(item, status, a, capacity, queued))
        for grant in own:
            self._handed(grant, t_sent, now_ms)
        if any_queued:
            if earliest_ms >= 0:
                self._note_expiry(now_ms, earliest_ms)
            if self._beat_at is None:
                self._beat_at = self._clock.monotonic() + self._recheck
            self._arm_timer()

    def _queued(self, item: AcquireItem) -> bool:
        """The reply says ``item``'s ticket waits in Redis; True if it still does."""
        if item.state is not State.SENT:
            return False  # a hand-off message settled it already
        if not item.live():
            item.state = State.DONE
            self._spawn(self._release_quietly(item.lease_id, tomb=True))
            return False
        item.state = State.QUEUED
        self._ever_queued = True
        self._counters["waits"] += 1
        if item.deadline is not None:
            item.timer = self._clock.call_at(item.deadline, functools.partial(self._expire, item))
        return True

    def _refusal(
        self, item: AcquireItem, status: int, live: int, capacity: int, queued: int
    ) -> LeasePoolError:
        if status != 2:
            return LeasePoolError(f"the acquire of {item.lease_id!r} was cancelled")
        self._counters["refusals"] += 1
        if capacity == 0:
            return LeaseUnavailableError(f"pool {self.pool!r} is paused (its capacity is 0)")
        if live < capacity:
            return LeaseUnavailableError(f"pool {self.pool!r} has {queued} waiting (fair=True)")
        why = f"pool {self.pool!r} is at its capacity of {capacity}"
        if queued > 0:
            why += f", with {queued} waiting"
        return LeaseUnavailableError(why)

    def _expire(self, item: AcquireItem) -> None:
        item.timer = None
        if item.live():
            item.future.set_exception(
                TimeoutError(f"timed out waiting for a slot in pool {self.pool!r}")
            )

    # -- grants handed to us -----------------------------------------------------

    def _handed(self, grant: OwnGrant, t_anchor: float, s_anchor: int) -> None:
        """A slot was handed to our ticket ``grant.lease_id`` (in a reply or an event)."""
        lease_id = grant.lease_id
        item = self._waiting.get(lease_id)
        if item is None or not item.live():
            # Our ticket, but its waiter left: nobody else will release it. (A grant we
            # already hold, found first by a heartbeat, is not news: keep it.)
            if lease_id not in self._held:
                self._orphan(lease_id)
            return
        if grant.claim_ms < grant.hard_ms:
            # Not claimed yet: Redis counts it only until its claim deadline, and this
            # news may be stale (our loop may have stalled since it was sent). The
            # waiter gets the slot only from the claim's reply (heartbeat.lua), timed
            # from that call; a grant whose claim deadline passed comes back "gone" and
            # the waiter queues again. So a stale message never activates a lease.
            self._unclaimed[lease_id] = None
            self._request_sync(lease_id)
            return
        self._counters["handoffs"] += 1
        self._settle(
            item,
            self._to_grant(lease_id, t_anchor, grant.token, s_anchor, grant.soft_ms, grant.hard_ms),
        )

    def _on_grant_event(self, fields: list[str]) -> None:
        """``grant <origin> <id> <token> <soft_ms> <hard_ms> <claim_ms> ...``"""
        t_anchor, s_anchor = self._anchor
        origin = self._origin
        for j in range(0, len(fields) - 5, 6):
            if fields[j] != origin:
                continue  # another process's ticket
            try:
                token, soft_ms, hard_ms, claim_ms = (int(x) for x in fields[j + 2 : j + 6])
            except ValueError:
                continue
            self._handed(
                OwnGrant(fields[j + 1], token, soft_ms, hard_ms, claim_ms), t_anchor, s_anchor
            )

    def _requeue(self, item: AcquireItem) -> None:
        """Our ticket is gone from Redis (expired, data lost) but the waiter waits on: enqueue."""
        if not item.live() or self._waiting.get(item.lease_id) is not item:
            return
        self._counters["requeued"] += 1
        item.state = State.PENDING
        item.stop_timer()
        self._spawn(self._acquires.submit(item))

    # -- heartbeats and claims ------------------------------------------------------

    def _request_sync(
        self, claim: str | None = None, *, full: bool = False, beat: bool = False
    ) -> None:
        """Run heartbeat.lua soon: to claim ``claim``; ``beat``: to say this process lives;
        ``full``: also to check every ticket and claim of ours, reclaim, hand off."""
        if claim is not None:
            self._sync_ids[claim] = None
        self._sync_full = self._sync_full or full
        self._sync_beat = self._sync_beat or beat
        if self._sync_task is None and self._starts:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())
            self._sync_task.add_done_callback(_consume_result)

    async def _sync_loop(self) -> None:
        try:
            while self._sync_ids or self._sync_full or self._sync_beat:
                full, self._sync_full = self._sync_full, False
                beat, self._sync_beat = self._sync_beat, False
                ids = dict(self._sync_ids)
                self._sync_ids.clear()
                flags = "w" if self._waiting else ""
                if flags and self._clock.monotonic() >= self._keep_at:
                    flags += "k"  # renew the waiting keys' TTLs (lua/_shared.lua, beat)
                    self._keep_at = self._clock.monotonic() + _KEEP_INTERVAL
                if full or beat:
                    self._beat_at = self._clock.monotonic() + self._recheck
                    self._counters["heartbeats"] += 1
                if full:
                    flags += "f"
                    self._expiry_at = None
                    for lease_id, item in self._waiting.items():
                        if item.state is State.QUEUED:
                            ids[lease_id] = None
                    ids.update(dict.fromkeys(self._unclaimed))
                batch = list(ids)
                for start in range(0, max(1, len(batch)), _HEARTBEAT_IDS):
                    chunk = batch[start : start + _HEARTBEAT_IDS]
                    if not await self._heartbeat(chunk, flags):
                        break
        finally:
            self._sync_task = None
            self._arm_timer()

    async def _heartbeat(self, ids: list[str], flags: str) -> bool:
        keys = self._fixed + [self._lease_prefix + lease_id for lease_id in ids]
        args = [self._cfg(), flags or "-"]
        if ids:
            args.append(" ".join(ids))
        t_sent = self._clock.monotonic()
        call = self._call(
            self._heartbeat_action,
            self._scripts.heartbeat,
            keys,
            args,
            self._lanes[2] if self._lanes else None,
        )
        try:
            # Bounded: waiters learn that Redis hangs within this, not a socket timeout.
            reply = await asyncio.wait_for(call, max(_BEAT_TIMEOUT, self._nowait))
            fields = split(reply, self._heartbeat_action)
            head = ints(fields, 0, 5, "heartbeat")
            rows = [ints(fields, 5 + 4 * i, 4, "heartbeat") for i in range(len(ids))]
            own = own_grants(fields, 5 + 4 * len(ids), "heartbeat")
        except (LeasePoolError, TimeoutError) as exc:
            self._beat_failed(ids, flags, exc)
            return False
        now_ms, alive, earliest_ms, queued, capacity = head
        self._note(t_sent, now_ms)
        if capacity >= 0:
            self._stored_capacity = capacity
        if queued >= 0:
            self._pool_queued = queued
        for lease_id, row in zip(ids, rows, strict=True):
            self._beat_row(lease_id, row, t_sent, now_ms)
        skip = set(ids)
        for grant in own:
            if grant.lease_id not in skip:
                self._handed(grant, t_sent, now_ms)
        if earliest_ms >= 0:
            self._note_expiry(now_ms, earliest_ms)
        if not alive and "f" not in flags:
            # We had stopped counting as alive (a stalled loop?): our tickets may have
            # been dropped. Check them all, and queue again the ones that are gone.
            self._request_sync(full=True)
        return True

    def _beat_failed(self, ids: list[str], flags: str, exc: BaseException) -> None:
        if not isinstance(exc, LeasePoolError):
            exc = CoordinatorUnavailableError(
                f"{self._heartbeat_action}: no reply from Redis at {self._target} within"
                f" {max(_BEAT_TIMEOUT, self._nowait)} s"
            )
        log.debug("heartbeat of pool %r failed: %s", self.pool, exc)
        if "w" in flags:
            # Redis is unreachable: waiters learn it now rather than wait blind.
            for item in list(self._waiting.values()):
                if item.state is State.QUEUED:
                    self._fail(item, exc)  # (its caller then removes its ticket)
        retry = [lease_id for lease_id in ids if lease_id in self._unclaimed]
        if retry:
            self._clock.call_at(
                self._clock.monotonic() + _CLAIM_RETRY,
                functools.partial(self._retry_claims, retry),
            )

    def _beat_row(self, lease_id: str, row: list[int], t_sent: float, now_ms: int) -> None:
        """What a heartbeat found for one of our ids: a claim, a grant, or nothing."""
        status, token, soft_ms, hard_ms = row
        waiter = self._waiting.get(lease_id)
        claiming = self._unclaimed.pop(lease_id, 0) is None
        if status == 1:
            if claiming:
                self._counters["claims"] += 1
            if waiter is not None and waiter.state is not State.DONE:
                self._counters["handoffs"] += 1
                self._settle(
                    waiter, self._to_grant(lease_id, t_sent, token, now_ms, soft_ms, hard_ms)
                )
            elif lease_id not in self._held:
                self._orphan(lease_id)
        elif status == -1:
            if claiming:
                self._counters["claims_lost"] += 1
            if waiter is not None and waiter.state is State.QUEUED:
                self._requeue(waiter)

    def _forget_claim(self, lease_id: str) -> None:
        self._unclaimed.pop(lease_id, None)

    def _take_own(self, own: list[OwnGrant], t_sent: float, now_ms: int) -> None:
        for grant in own:
            self._handed(grant, t_sent, now_ms)

    def _retry_claims(self, ids: list[str]) -> None:
        for lease_id in ids:
            if lease_id not in self._unclaimed:
                continue
            item = self._waiting.get(lease_id)
            if item is not None and item.live():
                self._request_sync(lease_id)
            else:
                del self._unclaimed[lease_id]  # (its waiter left: its release frees it)

    # -- the timer: heartbeats, and the earliest expiry -------------------------------

    def _note_expiry(self, now_ms: int, earliest_ms: int) -> None:
        """Recheck once Redis has passed ``earliest_ms`` (measured from now, the reply's end)."""
        at = passed_by(self._clock.monotonic(), now_ms, earliest_ms, self._drift) + _EXPIRY_SLACK
        if self._expiry_at is None or at < self._expiry_at:
            self._expiry_at = at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None

    def _arm_timer(self) -> None:
        """While anyone waits: a heartbeat every recheck interval, and at the earliest expiry."""
        if not self._waiting or self._starts == 0:
            self._cancel_timer()
            self._beat_at = self._expiry_at = None
            return
        now = self._clock.monotonic()
        if self._beat_at is None:
            self._beat_at = now + self._recheck
        when = self._beat_at
        if self._expiry_at is not None:
            when = min(when, self._expiry_at)
        when = max(when, now + _MIN_RETRY_GAP)
        if self._timer is not None and self._timer_at == when:
            return
        self._cancel_timer()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if not self._waiting:
            self._beat_at = self._expiry_at = None
            return  # nobody waits any more (grants to us have timers of their own)
        now = self._clock.monotonic()
        if self._expiry_at is not None and self._expiry_at <= now:
            self._request_sync(full=True)  # a lease expired: reclaim it, hand it off
        else:
            self._request_sync(beat=True)

    # -- events --------------------------------------------------------------------

    def _on_event(self, message: str | None) -> None:
        if message is None:  # (re)subscribed: messages may have been missed
            if self._waiting or self._unclaimed:
                self._request_sync(full=True)
            return
        kind, _, rest = message.partition(" ")
        if kind == "grant":
            if self._origin in rest:
                self._counters["events"] += 1
                self._on_grant_event(rest.split(" "))
        elif kind == "revoke":
            self._counters["events"] += 1
            self._lost(rest)
        elif kind == "free" and self._waiting:
            self._counters["events"] += 1
            self._request_sync(full=True)

    def _lost(self, lease_id: str) -> None:
        self._forget_claim(lease_id)
        if self._held.pop(lease_id, None) is None:
            return
        self._counters["lost"] += 1
        for callback in list(self._lost_callbacks):
            try:
                callback(lease_id)
            except Exception:
                log.exception("on_lost callback failed for lease %s", lease_id)

    # -- holding -------------------------------------------------------------------

    def _mine(self, count: int) -> list[str]:
        """Up to ``count`` of our oldest queued tickets (a release may claim them at once)."""
        found: list[str] = []
        if count:
            for lease_id, item in self._waiting.items():
                if item.state is State.QUEUED:
                    found.append(lease_id)
                    if len(found) == count:
                        break
        return found

    async def _send_releases(self, items: list[ReleaseItem]) -> None:
        keys = self._fixed.copy()
        if len(items) == 1:
            item = items[0]
            keys.append(item.key)
            what = f"{item.lease_id} {item.tomb}"
        else:
            keys += [item.key for item in items]
            what = " ".join(f"{item.lease_id} {item.tomb}" for item in items)
        args = [what, self._cfg()]
        if self._waiting:
            mine = self._mine(len(items))
            if mine:
                keys += [self._lease_prefix + lease_id for lease_id in mine]
                args.append(" ".join(mine))
        t_sent = self._clock.monotonic()
        try:
            reply = await self._call(
                lambda: (
                    f"release {items[0].lease_id!r} in pool {self.pool!r}"
                    if len(items) == 1
                    else f"release {len(items)} leases in pool {self.pool!r}"
                ),
                self._scripts.release,
                keys,
                args,
                self._lanes[1] if self._lanes else None,
            )
        except LeasePoolError as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        try:
            fields = split(reply, "release")
            now_ms, *statuses = ints(fields, 0, 1 + len(items), "release")
            own = own_grants(fields, 1 + len(items), "release")
        except ReplyError as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self._note(t_sent, now_ms)
        for item, status in zip(items, statuses, strict=True):
            if not item.future.done():
                item.future.set_result(_OUTCOMES.get(status, ReleaseOutcome.UNKNOWN))
        self._take_own(own, t_sent, now_ms)

    async def _release_quietly(self, lease_id: str, *, tomb: bool = False) -> None:
        """Release in the background (errors are logged: the slot then expires by itself)."""
        future: asyncio.Future[ReleaseOutcome] = asyncio.get_running_loop().create_future()
        item = ReleaseItem(
            lease_id, self._lease_prefix + lease_id, _TOMBSTONE_MS if tomb else 0, future
        )
        try:
            await self._releases.submit(item)
            await future
        except LeasePoolError as exc:
            log.debug("background release of %s failed (it will expire): %s", lease_id, exc)

    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Free the slot in Redis; the freed slot goes to the oldest live waiter. Idempotent."""
        if type(lease_id) is not str or not _LEASE_ID.fullmatch(lease_id):
            lease_id = check_lease_id(lease_id)
        self._held.pop(lease_id, None)
        if self._unclaimed:
            self._forget_claim(lease_id)
        future: asyncio.Future[ReleaseOutcome] = asyncio.get_running_loop().create_future()
        item = ReleaseItem(lease_id, self._lease_prefix + lease_id, 0, future)
        try:
            await self._releases.submit(item)
        except asyncio.CancelledError:
            # Our call was cut off, its outcome unknown: repeat it in the background (a
            # repeated release is harmless), then look for grants its reply carried.
            self._spawn(self._release_again(lease_id))
            raise
        return await future

    async def _release_again(self, lease_id: str) -> None:
        await self._release_quietly(lease_id)
        if self._waiting:
            self._request_sync(full=True)

    async def renew(self, renewals: Mapping[str, float]) -> dict[str, Grant | None]:
        """Extend leases in one round trip: id -> new grant, or None when Redis no longer has it."""
        if not renewals:
            return {}
        ids = [check_lease_id(lease_id) for lease_id in renewals]
        keys = self._fixed + [self._lease_prefix + lease_id for lease_id in ids]
        args: list[Any] = [self._cfg()]
        for lease_id in ids:
            seconds = positive_duration("lease_seconds", renewals[lease_id])
            lease_ms = max(1, round(seconds * 1000))
            if lease_ms > _MAX_LEASE_MS:
                raise ValueError(f"lease_seconds is too long, got {renewals[lease_id]!r}")
            args += [lease_id, lease_ms]
        t_sent = self._clock.monotonic()
        reply = await self._call(
            f"renew {len(ids)} lease(s) in pool {self.pool!r}", self._scripts.renew, keys, args
        )
        if not isinstance(reply, list):
            reply = [reply]
        now_ms, *values = ints(reply, 0, 1 + 3 * len(ids), "renew")
        self._note(t_sent, now_ms)
        result: dict[str, Grant | None] = {}
        for i, lease_id in enumerate(ids):
            token, soft_ms, hard_ms = values[3 * i : 3 * i + 3]
            if token == 0:
                self._held.pop(lease_id, None)
                self._forget_claim(lease_id)
                result[lease_id] = None
            else:
                self._counters["renewals"] += 1
                if lease_id in self._unclaimed:  # the renewal claimed it
                    self._forget_claim(lease_id)
                    self._counters["claims"] += 1
                result[lease_id] = self._to_grant(
                    lease_id, t_sent, token, now_ms, soft_ms, hard_ms, hold=False
                )
        return result

    async def revoke(self, lease_id: str) -> bool:
        """Remove a lease by id (an operator action); its holder learns it from the pool's
        events. True if it was live.
        """
        lease_id = check_lease_id(lease_id)
        t_sent = self._clock.monotonic()
        reply = await self._call(
            f"revoke lease {lease_id!r} in pool {self.pool!r}",
            self._scripts.revoke,
            [*self._fixed, self._lease_prefix + lease_id],
            [self._cfg(), lease_id],
        )
        fields = split(reply, "revoke")
        live, now_ms = ints(fields, 0, 2, "revoke")
        own = own_grants(fields, 2, "revoke")
        self._note(t_sent, now_ms)
        self._lost(lease_id)
        self._take_own(own, t_sent, now_ms)
        return bool(live)

    async def set_capacity(self, capacity: int) -> None:
        """Store a new capacity for the pool; new free slots go to waiters. Shrinking
        never revokes a live lease.
        """
        capacity = capacity_value("capacity", capacity)
        t_sent = self._clock.monotonic()
        reply = await self._call(
            f"set capacity of pool {self.pool!r}",
            self._scripts.set_capacity,
            self._fixed,
            [self._cfg(), capacity],
        )
        fields = split(reply, "set_capacity")
        now_ms = ints(fields, 0, 3, "set_capacity")[2]
        own = own_grants(fields, 3, "set_capacity")
        self._note(t_sent, now_ms)
        self._stored_capacity = capacity
        self._take_own(own, t_sent, now_ms)

    async def status(self) -> PoolStatus:
        """The pool's capacity, live leases and waiters, as Redis holds them.

        Housekeeping first: one batch of expired leases is reclaimed (``leasepool
        status`` does not do that: it only reads).
        """
        try:
            return await read_status(
                self._client, self._scripts, self._keys, reclaim_batch=self._reclaim_batch
            )
        except REDIS_ERRORS as exc:
            raise translate(
                exc,
                action=f"status of pool {self.pool!r}",
                target=self._target,
                secrets=self._hidden,
            ) from exc

    def statistics(self) -> dict[str, object]:
        """This process's view and counters for ``manager.stats()["coordinator"]``; no I/O."""
        return {
            "kind": "redis",
            "pool": self.pool,
            "target": self._target,
            "capacity": self.capacity,
            "fair": self._fair,
            "held": len(self._held),
            "waiting": len(self._waiting),
            "process": f"{self._host}:{os.getpid()}",
            "pool_waiting": self._pool_queued,
            "unclaimed": len(self._unclaimed),
            **self._counters,
        }


__all__ = ["RedisCoordinator", "local_deadline"]
