"""The Redis coordinator: one global capacity shared by every host.

State lives in Redis (see :mod:`leasepool._redis_keys`) and changes only inside
the Lua scripts of the top-level ``lua/`` folder; all timestamps there are the
server's (``TIME``).

Local deadlines. A grant's deadlines are on this host's clock, measured from
the moment the request was *sent*: ``hard = t_sent + (hard_ms - now_ms) *
(1 - clock_drift)``. The script ran after ``t_sent``, so even with clock rates
that differ by ``clock_drift`` the host stops using a lease no later than Redis
stops counting it. Renewals follow the same rule and never move a deadline
earlier than the one already known.

Waiting. A process keeps its waiters in one FIFO queue per coordinator
(:mod:`leasepool._redis_waiters`). A waiter costs no connection: tries for it
run on the shared client, each one ``acquire.lua`` call for the oldest waiters
nobody is trying for yet, and each grant goes to the waiter it was asked for.
What starts tries: a local release (one try), a ``free <n>`` event from
another process (up to ``n`` tries at once), and, one try after another until
the pool is full, the subscriber (re)connecting and a timer set to the
earliest hard expiry Redis reported (nobody announces expiries, and pub/sub
may drop messages), capped at ``recheck_interval``. A process whose waiters
sit behind a long lease sends one command per ``recheck_interval`` at most.
Releases publish only while some process is noted in the pool's waiting set
(a full reply to a waiting acquire notes it, for a while), so a pool without
waiters costs no pub/sub traffic. Within a process waiters are served in
arrival order; only when another process takes a slot between two parallel
tries can a later local waiter be served before an earlier one. ``wait=False``
costs one round trip, and fails at once while this process has waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
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
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)
from leasepool._redis_admin import DEFAULT_RECLAIM_BATCH, read_status
from leasepool._redis_errors import REDIS_ERRORS, is_wrongtype, translate
from leasepool._redis_keys import DEFAULT_PREFIX, PoolKeys, check_lease_id
from leasepool._redis_scripts import Scripts
from leasepool._redis_subscriber import Subscription, subscribe
from leasepool._redis_url import check_url, describe_client, redact_url, url_password
from leasepool._redis_waiters import Waiter, WaiterQueue
from leasepool._validation import (
    ArgumentTypeError,
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
_EXPIRY_SLACK = 0.005
_OUTCOMES = {1: ReleaseOutcome.RELEASED, 2: ReleaseOutcome.EXPIRED, 0: ReleaseOutcome.UNKNOWN}


@dataclass(slots=True)
class _Held:
    token: int
    soft: float
    hard: float


_LEASE_ID = re.compile(r"\S+")


def _seconds(name: str, value: object, above: float) -> float:
    """A finite number of seconds > ``above`` (0: positive; -1: zero allowed), fast path first."""
    if (type(value) is float or type(value) is int) and above < value < math.inf:
        return value
    if above == 0:
        return positive_duration(name, value)
    return non_negative_duration(name, value)


def _consume_result(task: asyncio.Future[Any]) -> None:
    """Mark a background task's exception as seen (the awaiting caller may be gone)."""
    if not task.cancelled():
        task.exception()


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


class RedisCoordinator(Coordinator):
    """Global slots stored in Redis, shared by every process that uses the same pool.

    ``client`` is a ``redis.asyncio.Redis`` (a Sentinel master client or a
    ``redis.asyncio.RedisCluster`` work too). ``capacity`` initialises a new
    pool; an existing pool keeps its stored capacity (a warning is logged when
    they differ). Use :meth:`from_url` to let the coordinator own its client.

    Keyword-only tuning:

    * ``clock_drift`` (0.01): the largest relative clock-rate difference
      assumed between this host and Redis; local hard deadlines are shortened
      by this fraction.
    * ``reclaim_batch`` (100): expired leases removed per script call, at most.
    * ``recheck_interval`` (5.0 s): while a process has waiters, it asks Redis
      again at least this often even if no event arrives (pub/sub can lose
      messages). At least 1 s.
    * ``record_margin`` (60.0 s): how long a lease's hash outlives its hard
      expiry, so a late ``release`` can still tell "expired" from "unknown".
    """

    def __init__(
        self,
        client: Any,
        *,
        pool: str,
        capacity: int,
        key_prefix: str = DEFAULT_PREFIX,
        clock_drift: float = 0.01,
        reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
        recheck_interval: float = 5.0,
        record_margin: float = 60.0,
    ) -> None:
        self._client = _check_client(client)
        self._keys = PoolKeys.of(pool, key_prefix)
        self._capacity = positive_int("capacity", capacity)
        drift = finite_number("clock_drift", clock_drift)
        if not 0 <= drift < 0.5:
            raise ValueError(f"clock_drift must be >= 0 and < 0.5, got {clock_drift!r}")
        self._drift = drift
        self._reclaim_batch = positive_int("reclaim_batch", reclaim_batch)
        if self._reclaim_batch > 10_000:
            raise ValueError(f"reclaim_batch must be <= 10000, got {reclaim_batch!r}")
        self._recheck = positive_duration("recheck_interval", recheck_interval)
        if self._recheck < 1.0:
            raise ValueError(f"recheck_interval must be >= 1 second, got {recheck_interval!r}")
        self._margin_ms = round(non_negative_duration("record_margin", record_margin) * 1000)
        if self._margin_ms > _MAX_LEASE_MS:
            raise ValueError(f"record_margin is too large, got {record_margin!r}")
        # A waiting process asks again at least every recheck interval; its note
        # in the waiting set outlives that comfortably.
        self._waiting_ms = round(self._recheck * 2000) + 1000
        self._scripts = Scripts.register(client)
        self._owns_client = False
        self._target = describe_client(client)
        self._hidden: tuple[str | None, ...] = (self._client_password(),)
        self._host = socket.gethostname()
        self._origin = secrets.token_hex(6)
        self._config: tuple[int, str] | None = None

        self._clock: Clock = MONOTONIC_CLOCK
        self._starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost_callbacks: list[LostCallback] = []
        self._waiters: WaiterQueue | None = None
        self._held: dict[str, _Held] = {}
        self._tries: dict[asyncio.Task[None], str] = {}
        """Tries in flight on behalf of waiters: task -> lease id."""
        self._probing = False
        """Keep trying the next waiter after each success (until the pool is full)."""
        self._timer: TimerHandle | None = None
        self._earliest: float | None = None
        self._event_seq = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._subscription: Subscription | None = None
        self._stored_capacity: int | None = None
        self._counters = {
            "grants": 0,
            "refusals": 0,
            "waits": 0,
            "timeouts": 0,
            "round_trips": 0,
            "events": 0,
            "rechecks": 0,
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
        clock_drift: float = 0.01,
        reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
        recheck_interval: float = 5.0,
        record_margin: float = 60.0,
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
        positive_int("capacity", capacity)
        client = Redis.from_url(url, **_default_client_kwargs(dict(client_kwargs)))
        coordinator = cls(
            client,
            pool=pool,
            capacity=capacity,
            key_prefix=key_prefix,
            clock_drift=clock_drift,
            reclaim_batch=reclaim_batch,
            recheck_interval=recheck_interval,
            record_margin=record_margin,
        )
        coordinator._owns_client = True
        coordinator._target = redact_url(url)
        coordinator._hidden = (url_password(url), coordinator._client_password())
        return coordinator

    def _client_password(self) -> str | None:
        pool = getattr(self._client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        password = kwargs.get("password")
        return password if isinstance(password, str) else None

    def __repr__(self) -> str:
        return (
            f"RedisCoordinator(pool={self._keys.pool!r}, capacity={self._capacity}, "
            f"key_prefix={self._keys.prefix!r}, target={self._target!r})"
        )

    # -- properties ----------------------------------------------------------

    @property
    def pool(self) -> str:
        return self._keys.pool

    @property
    def keys(self) -> PoolKeys:
        """The Redis key names of this pool."""
        return self._keys

    @property
    def client(self) -> Any:
        return self._client

    @property
    def capacity(self) -> int:
        """The pool's capacity as last seen in Redis (the constructor's before start)."""
        return self._stored_capacity if self._stored_capacity is not None else self._capacity

    # -- plumbing ------------------------------------------------------------

    async def _call(
        self, action: str, script: Callable[..., Awaitable[T]], keys: Sequence[str], args: list[Any]
    ) -> T:
        """Run one script; every redis-py error comes out as a leasepool error."""
        self._counters["round_trips"] += 1
        try:
            return await script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            if is_wrongtype(exc):
                raise await self._wrongtype_error(action, keys) from exc
            raise translate(exc, action=action, target=self._target, secrets=self._hidden) from exc

    async def _wrongtype_error(self, action: str, keys: Sequence[str]) -> LeasePoolError:
        expected = {self._keys.meta: "hash", self._keys.leases: "zset"}
        try:
            for key in keys:
                kind = await self._client.type(key)
                kind = kind.decode() if isinstance(kind, bytes) else str(kind)
                want = expected.get(key, "hash")
                if key != self._keys.events and kind not in (want, "none"):
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

    def _require_started(self) -> WaiterQueue:
        if self._starts == 0 or self._waiters is None:
            raise LeasePoolNotStartedError(f"{self!r} is not started")
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError(f"{self!r} is bound to the event loop that started it")
        return self._waiters

    def _to_grant(
        self, lease_id: str, t_sent: float, token: int, now_ms: int, soft_ms: int, hard_ms: int
    ) -> Grant:
        hard = t_sent + (hard_ms - now_ms) / 1000 * (1 - self._drift)
        soft = min(t_sent + (soft_ms - now_ms) / 1000, hard)
        held = self._held.get(lease_id)
        if held is not None and held.token == token:
            soft, hard = max(soft, held.soft), max(hard, held.hard)
        self._held[lease_id] = _Held(token, soft, hard)
        return Grant(lease_id, token, soft, hard)

    # -- lifecycle -------------------------------------------------------------

    async def start(self, *, clock: Clock, on_lost: LostCallback) -> None:
        loop = asyncio.get_running_loop()
        if self._starts:
            if loop is not self._loop:
                raise RuntimeError(f"{self!r} is bound to the event loop that started it")
            self._starts += 1
            self._lost_callbacks.append(on_lost)
            return
        self._clock = clock
        try:
            reply = await self._call(
                f"start pool {self.pool!r}",
                self._scripts.init,
                [self._keys.meta, self._keys.leases],
                [self._capacity],
            )
        except BaseException:
            if self._owns_client:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._client.aclose()
            raise
        stored = int(reply[0])
        self._stored_capacity = stored
        if stored != self._capacity:
            log.warning(
                "pool %r already has capacity %d in Redis; using it instead of %d",
                self.pool,
                stored,
                self._capacity,
            )
        self._loop = loop
        self._waiters = WaiterQueue(clock, self._on_orphan)
        self._subscription = subscribe(self._client, self._keys.events, self._on_event)
        self._starts = 1
        self._lost_callbacks.append(on_lost)
        await self._subscription.wait_ready(_READY_TIMEOUT)

    async def close(self) -> None:
        if self._starts == 0:
            return
        self._starts -= 1
        if self._starts:
            return
        self._lost_callbacks.clear()
        self._cancel_timer()
        tries, self._tries = self._tries, {}
        for task in tries:
            task.cancel()
        for task, lease_id in tries.items():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._spawn(self._quiet_release(lease_id, cancelled=True))
        if self._waiters is not None:
            self._waiters.fail_all(
                lambda: LeasePoolNotStartedError(f"coordinator for pool {self.pool!r} closed")
            )
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        if self._background:
            await asyncio.wait(set(self._background), timeout=_CLOSE_TIMEOUT)
        self._held.clear()
        self._loop = None
        if self._owns_client:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.aclose()

    # -- acquiring -------------------------------------------------------------

    def _config_arg(self) -> str:
        """The acquire script's per-process constants, in one argument (fewer to encode)."""
        pid = os.getpid()
        if self._config is None or self._config[0] != pid:
            text = (
                f"{self._capacity}|{self._reclaim_batch}|{self._margin_ms}|{self._origin}"
                f"|{pid}|{self._host}"
            )
            self._config = (pid, text)
        return self._config[1]

    def _acquire_args(self, request: GrantRequest) -> tuple[list[str], list[Any]]:
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
        keys = [self._keys.meta, self._keys.leases, self._keys.lease(lease_id), self._keys.waiting]
        args: list[Any] = [lease_id, request.owner, lease_ms, grace_ms, 0, self._config_arg()]
        return keys, args

    async def _try_acquire(self, request: GrantRequest, wait: bool) -> Grant | None:
        """One round trip: a grant, or None when the pool is full (then the timer is noted).

        With ``wait``, a full pool notes this process as waiting (for a while
        longer than it takes to try again), so releases announce freed slots.
        """
        keys, args = self._acquire_args(request)
        if wait:
            args[4] = self._waiting_ms
        t_sent = self._clock.monotonic()
        reply = await self._call(
            f"acquire a slot in pool {self.pool!r}", self._scripts.acquire, keys, args
        )
        if int(reply[0]) == -1:
            return None  # this id's acquire was cancelled (tombstone)
        if int(reply[0]) == 1:
            _, token, now_ms, soft_ms, hard_ms = (int(x) for x in reply)
            self._counters["grants"] += 1
            return self._to_grant(request.lease_id, t_sent, token, now_ms, soft_ms, hard_ms)
        _, now_ms, earliest_ms, _, capacity = (int(x) for x in reply)
        self._stored_capacity = capacity
        if earliest_ms >= 0:
            self._earliest = t_sent + (earliest_ms - now_ms) / 1000 + _EXPIRY_SLACK
        return None

    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        waiters = self._require_started()
        self._acquire_args(request)  # validate before any I/O
        if waiters:
            if not wait:
                self._counters["refusals"] += 1
                raise LeaseUnavailableError(
                    f"pool {self.pool!r} has {len(waiters)} waiting in this process"
                )
        else:
            seq = self._event_seq
            try:
                grant = await self._try_acquire(request, wait)
            except (asyncio.CancelledError, LeasePoolError):
                # The script may have run (or may still run): free the id, and leave
                # a tombstone so that a late-arriving acquire of it grants nothing.
                self._held.pop(request.lease_id, None)
                self._spawn(self._quiet_release(request.lease_id, cancelled=True))
                raise
            if grant is not None:
                return grant
            if not wait:
                self._counters["refusals"] += 1
                raise LeaseUnavailableError(
                    f"pool {self.pool!r} is at its capacity of {self.capacity}"
                )
            if self._event_seq != seq:
                # A slot may have been freed while we asked: look again at once.
                self._kick(math.inf)
        self._counters["waits"] += 1
        if self._timer is None:
            self._arm_timer(force=True)
        try:
            return await waiters.wait(
                request, deadline, f"timed out waiting for a slot in pool {self.pool!r}"
            )
        except TimeoutError:
            self._counters["timeouts"] += 1
            raise

    def _on_orphan(self, grant: Grant) -> None:
        """A grant whose waiter left: free it, then pass the slot to the next waiter."""
        self._held.pop(grant.lease_id, None)
        self._counters["orphans_released"] += 1
        self._spawn(self._quiet_release(grant.lease_id, kick=True))

    # -- the pump: serving local waiters in order ---------------------------------

    def _kick(self, budget: float) -> None:
        """Try for up to ``budget`` waiters at once; ``inf`` probes one by one until full."""
        if budget == math.inf:
            self._probing = True
            if self._tries:
                return  # the last try in flight goes on probing if it succeeds
            budget = 1
        waiters = self._waiters
        if waiters is None:
            return
        launched = 0
        while launched < budget:
            waiter = waiters.claim_next()
            if waiter is None:
                break
            task = asyncio.get_running_loop().create_task(self._try_for(waiter))
            self._tries[task] = waiter.request.lease_id
            task.add_done_callback(self._tries_done)
            launched += 1
        if not launched and not self._tries:
            self._probing = False

    def _tries_done(self, task: asyncio.Task[None]) -> None:
        self._tries.pop(task, None)
        _consume_result(task)

    async def _try_for(self, waiter: Waiter) -> None:
        """One try on behalf of one waiter; its grant goes to that waiter only."""
        waiters = self._waiters
        assert waiters is not None
        try:
            grant = await self._try_acquire(waiter.request, True)
        except LeasePoolError as exc:
            waiters.unclaim(waiter)
            kind, message = type(exc), str(exc)
            waiters.fail_all(lambda: kind(message))
            self._spawn(self._quiet_release(waiter.request.lease_id, cancelled=True))
            return
        if grant is None:
            waiters.unclaim(waiter)
            self._probing = False
            self._arm_timer()
            return
        if not waiters.resolve(waiter, grant):
            # The waiter left (timeout, cancellation) while we asked.
            self._on_orphan(grant)
        elif self._probing and len(self._tries) <= 1:  # (this try is still listed)
            self._kick(1)
        if self._timer is None:
            self._arm_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self, *, force: bool = False) -> None:
        """While anyone waits: recheck at the earliest expiry, or after recheck_interval."""
        self._cancel_timer()
        waiters = self._waiters
        if waiters is None or (not force and not waiters):
            return
        now = self._clock.monotonic()
        when = now + self._recheck
        if self._earliest is not None:
            when = min(when, max(self._earliest, now + _MIN_RETRY_GAP))
        self._timer = self._clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._earliest = None
        self._counters["rechecks"] += 1
        self._kick(math.inf)

    def _on_event(self, message: str | None) -> None:
        self._event_seq += 1
        if message is None:  # (re)subscribed: events may have been missed
            self._kick(math.inf)
            return
        self._counters["events"] += 1
        kind, _, arg = message.partition(" ")
        if kind == "free":
            count, _, origin = arg.partition(" ")
            if origin == self._origin:
                return  # our own release: it already woke our waiters
            with contextlib.suppress(ValueError):
                self._kick(max(1, int(count)))
        elif kind == "revoke":
            self._lost(arg)
            self._kick(1)

    def _lost(self, lease_id: str) -> None:
        if self._held.pop(lease_id, None) is None:
            return
        self._counters["lost"] += 1
        for callback in list(self._lost_callbacks):
            try:
                callback(lease_id)
            except Exception:
                log.exception("on_lost callback failed for lease %s", lease_id)

    # -- holding -------------------------------------------------------------------

    async def _release_script(self, lease_id: str, *, cancelled: bool = False) -> ReleaseOutcome:
        keys = [
            self._keys.leases,
            self._keys.lease(lease_id),
            self._keys.meta,
            self._keys.events,
            self._keys.waiting,
        ]
        code = await self._call(
            f"release lease {lease_id!r} in pool {self.pool!r}",
            self._scripts.release,
            keys,
            [lease_id, self._origin, max(self._margin_ms, 60_000) if cancelled else 0],
        )
        return _OUTCOMES.get(int(code), ReleaseOutcome.UNKNOWN)

    async def _quiet_release(
        self, lease_id: str, *, cancelled: bool = False, kick: bool = False
    ) -> None:
        """Release in the background; with ``kick``, a freed slot goes to our next waiter.

        (Our own "free" events are ignored, so whoever frees a slot here wakes
        this process's waiters itself.)
        """
        try:
            outcome = await self._release_script(lease_id, cancelled=cancelled)
        except LeasePoolError as exc:
            log.debug("background release of %s failed (it will expire): %s", lease_id, exc)
            return
        if kick and outcome is ReleaseOutcome.RELEASED and self._waiters:
            self._kick(1)

    async def release(self, lease_id: str) -> ReleaseOutcome:
        lease_id = check_lease_id(lease_id)
        self._held.pop(lease_id, None)
        try:
            outcome = await self._release_script(lease_id)
        except asyncio.CancelledError:
            # Finish in the background: a repeated release is harmless.
            self._spawn(self._quiet_release(lease_id, kick=True))
            raise
        if outcome is ReleaseOutcome.RELEASED and self._waiters:
            self._kick(1)
        return outcome

    async def renew(self, renewals: Mapping[str, float]) -> dict[str, Grant | None]:
        if not renewals:
            return {}
        ids = [check_lease_id(lease_id) for lease_id in renewals]
        keys = [self._keys.leases, *(self._keys.lease(lease_id) for lease_id in ids)]
        args: list[Any] = [self._margin_ms]
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
        now_ms = int(reply[0])
        result: dict[str, Grant | None] = {}
        for i, lease_id in enumerate(ids):
            token, soft_ms, hard_ms = (int(x) for x in reply[1 + 3 * i : 4 + 3 * i])
            if token == 0:
                self._held.pop(lease_id, None)
                result[lease_id] = None
            else:
                self._counters["renewals"] += 1
                result[lease_id] = self._to_grant(lease_id, t_sent, token, now_ms, soft_ms, hard_ms)
        return result

    async def revoke(self, lease_id: str) -> bool:
        lease_id = check_lease_id(lease_id)
        keys = [self._keys.leases, self._keys.lease(lease_id), self._keys.events]
        live = await self._call(
            f"revoke lease {lease_id!r} in pool {self.pool!r}",
            self._scripts.revoke,
            keys,
            [lease_id],
        )
        self._lost(lease_id)
        return bool(int(live))

    async def set_capacity(self, capacity: int) -> None:
        capacity = positive_int("capacity", capacity)
        keys = [self._keys.meta, self._keys.leases, self._keys.events]
        _, live = await self._call(
            f"set capacity of pool {self.pool!r}",
            self._scripts.set_capacity,
            keys,
            [capacity, self._origin],
        )
        self._stored_capacity = capacity
        if self._waiters and capacity > int(live):
            # Our own event is skipped: try for exactly as many waiters as there is room.
            self._kick(capacity - int(live))

    async def status(self) -> PoolStatus:
        try:
            return await read_status(
                self._client,
                self._scripts,
                self._keys,
                waiting=len(self._waiters or ()),
                reclaim_batch=self._reclaim_batch,
            )
        except REDIS_ERRORS as exc:
            raise translate(
                exc,
                action=f"status of pool {self.pool!r}",
                target=self._target,
                secrets=self._hidden,
            ) from exc

    def statistics(self) -> dict[str, object]:
        return {
            "kind": "redis",
            "pool": self.pool,
            "target": self._target,
            "capacity": self.capacity,
            "held": len(self._held),
            "waiting": len(self._waiters or ()),
            **self._counters,
        }


__all__ = ["RedisCoordinator"]
