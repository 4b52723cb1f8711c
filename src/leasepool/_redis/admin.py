"""Operator views and actions on pools in Redis: the ``leasepool`` command and exporter.

:class:`RedisAdmin` needs no running manager: it reads and changes the same
keys the coordinators use. Invariants:

* Looking is read-only. ``pools``, ``status`` and ``report`` send only plain
  reads (SCAN, HGETALL) and ``lua/status.lua`` through ``EVALSHA_RO``, so a
  read-only ACL user can run them and they never change what they look at:
  reclaiming expired leases and handing slots to waiters is the coordinators'
  housekeeping, not the viewer's.
* Changing goes through the coordinators' own scripts (``revoke``,
  ``set_capacity``), so an operator action keeps every rule a coordinator keeps.
* A damaged pool fails with :class:`CoordinatorStateError` naming its key; it
  never hides the other pools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from leasepool._coordinator import LeaseRecord, PoolStatus, WaitingProcess
from leasepool._errors import CoordinatorStateError
from leasepool._redis.errors import REDIS_ERRORS, translate
from leasepool._redis.keys import (
    DEFAULT_PREFIX,
    PoolKeys,
    check_key_prefix,
    check_lease_id,
    meta_scan_pattern,
    pool_from_meta_key,
)
from leasepool._redis.scripts import Scripts
from leasepool._redis.url import describe_client
from leasepool._validation import MAX_CAPACITY, capacity_value, positive_int
from redis import exceptions as redis_exceptions

_SCRIPT_SUFFIX = re.compile(r"\s*script: [0-9a-f]+, on @user_script:\d+\.?$")

DEFAULT_RECLAIM_BATCH = 100
DEFAULT_STATUS_LIMIT = 1000
DEFAULT_CLAIM_MS = 5000
DEFAULT_TICKET_MS = 15000


def text(value: object) -> str:
    """A reply item as ``str`` (clients with and without ``decode_responses``)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(text(value)) if value is not None else default
    except ValueError:
        return default


def script_config(
    *,
    capacity: int = 1,
    batch: int = DEFAULT_RECLAIM_BATCH,
    margin_ms: int = 60_000,
    claim_ms: int = DEFAULT_CLAIM_MS,
    ticket_ms: int = DEFAULT_TICKET_MS,
    fair: bool = False,
    origin: str = "",
    pid: int | None = None,
    host: str = "",
) -> str:
    """The scripts' ARGV[1] (see ``lua/_shared.lua``). Operator tools use the defaults:
    no origin, so every grant they hand off is published to its waiter's process."""
    return (
        f"{capacity}|{batch}|{margin_ms}|{claim_ms}|{ticket_ms}|{1 if fair else 0}|{origin}"
        f"|{'' if pid is None else pid}|{host}"
    )


def _granted_fields(ticket: str) -> list[str]:
    """A granted ticket's fields (see ``lua/_shared.lua``); the owner, last, may hold '|'."""
    return ticket.split("|", 7)


def _lease_records(
    entries: list[tuple[str, float]], hashes: list[Any], tickets: dict[str, str]
) -> tuple[LeaseRecord, ...]:
    """Records for live leases (id, expiry score) from their hashes, or, for a grant
    handed to a waiter and not claimed yet (no hash), from its ticket."""
    leases = []
    for (lease_id, score), raw in zip(entries, hashes, strict=True):
        fields = {text(k): text(v) for k, v in (raw or {}).items()}
        ticket = tickets.get(lease_id, "")
        if "token" not in fields and ticket.startswith("g|"):
            _, token, acquired, soft, _hard, pid, host, owner = _granted_fields(ticket)
            fields = {
                "owner": owner,
                "host": host,
                "pid": pid,
                "token": token,
                "acquired_ms": acquired,
                "soft_ms": soft,
            }
        leases.append(
            LeaseRecord(
                lease_id=lease_id,
                owner=fields.get("owner", ""),
                host=fields.get("host", ""),
                pid=_int(fields.get("pid")),
                token=_int(fields.get("token")),
                acquired_ms=_int(fields.get("acquired_ms")),
                soft_ms=_int(fields.get("soft_ms"), int(score)),
                hard_ms=int(score),
            )
        )
    return tuple(leases)


def _waiting(tickets: dict[str, str], alive: set[str]) -> tuple[WaitingProcess, ...]:
    """Live waiting tickets counted per process, most first. A ticket counts while its
    process's heartbeat is current."""
    counts: dict[tuple[str, int], int] = {}
    for ticket in tickets.values():
        if ticket.startswith("w|"):
            # "w|<lease_ms>|<grace_ms>|<origin>|<pid>|<host>|<owner>"
            parts = ticket.split("|", 6)
            if len(parts) == 7 and parts[3] in alive:
                who = (parts[5], _int(parts[4]))
                counts[who] = counts.get(who, 0) + 1
    return tuple(
        WaitingProcess(host, pid, count)
        for (host, pid), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


async def _hashes(client: Any, keys: PoolKeys, ids: list[str]) -> list[Any]:
    """The lease hashes of ``ids``; a key of the wrong type fails naming that key."""
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for lease_id in ids:
        pipe.hgetall(keys.lease(lease_id))
    replies = list(await pipe.execute(raise_on_error=False))
    for lease_id, reply in zip(ids, replies, strict=True):
        if isinstance(reply, redis_exceptions.ResponseError):
            raise CoordinatorStateError(f"{keys.lease(lease_id)} is not a hash: {reply}")
        if isinstance(reply, BaseException):
            raise reply
    return replies


async def read_status(
    client: Any,
    scripts: Scripts,
    keys: PoolKeys,
    *,
    reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
    limit: int = DEFAULT_STATUS_LIMIT,
) -> PoolStatus:
    """The coordinator's status: reclaim one batch of expired leases (handing free slots
    to waiters), then list up to ``limit`` live leases and count the live waiter
    tickets per process. Raises redis-py errors; callers translate them.
    """
    reply = await scripts.reclaim(keys=list(keys.fixed), args=[script_config(batch=reclaim_batch)])
    fields = reply.split()
    now_ms, capacity = int(fields[1]), int(fields[3])
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.leases, f"({now_ms}", "+inf", start=0, num=limit, withscores=True)
    pipe.hgetall(keys.tickets)
    pipe.zrangebyscore(keys.waiters, f"({now_ms}", "+inf")
    entries, raw_tickets, raw_alive = await pipe.execute()
    tickets = {text(k): text(v) for k, v in (raw_tickets or {}).items()}
    alive = {text(origin) for origin in raw_alive or ()}
    pairs = [(text(member), float(score)) for member, score in entries]
    hashes = await _hashes(client, keys, [lease_id for lease_id, _ in pairs])
    waiters = _waiting(tickets, alive)
    return PoolStatus(
        keys.pool,
        capacity if capacity >= 1 else None,
        _lease_records(pairs, hashes, tickets),
        sum(w.count for w in waiters),
        now_ms,
        waiters,
    )


@dataclass(frozen=True, slots=True)
class PoolReport:
    """One pool as the read-only status script saw it (for the CLI and the exporter)."""

    status: PoolStatus
    """Capacity (0: paused, None: unset), up to ``limit`` live leases, live waiters."""
    exists: bool
    """False when none of the pool's keys exists: no such pool."""
    live: int
    """Live leases, all of them (``status.leases`` stops at the limit)."""
    expired: int
    """Expired leases that no coordinator has reclaimed yet."""
    queued: int
    """Tickets in the queue (live or not yet found dead)."""

    @property
    def next_expiry_ms(self) -> int | None:
        """Milliseconds until the soonest live lease's hard expiry (None: no lease)."""
        leases = self.status.leases
        return min(r.hard_ms for r in leases) - self.status.now_ms if leases else None

    @property
    def oldest_age_ms(self) -> int | None:
        """Age of the oldest listed live lease in milliseconds (None: no lease)."""
        leases = self.status.leases
        return self.status.now_ms - min(r.acquired_ms for r in leases) if leases else None


def _stored_capacity(keys: PoolKeys, raw: object) -> int | None:
    if raw is None:
        return None
    value = text(raw)
    if value.isdigit() and int(value) <= MAX_CAPACITY:
        return int(value)
    raise CoordinatorStateError(
        f"{keys.meta} field capacity is not an integer from 0 to {MAX_CAPACITY}: {value!r}"
    )


async def _status_ro(client: Any, script: Any, keys: PoolKeys, limit: int) -> list[Any]:
    args = [*keys.fixed, limit]
    try:
        return list(await client.evalsha_ro(script.sha, len(keys.fixed), *args))
    except redis_exceptions.NoScriptError:
        # A restarted or flushed server: load it (SCRIPT LOAD writes no key) and retry.
        await client.script_load(script.script)
        return list(await client.evalsha_ro(script.sha, len(keys.fixed), *args))


async def read_report(
    client: Any, scripts: Scripts, keys: PoolKeys, *, limit: int = DEFAULT_STATUS_LIMIT
) -> PoolReport:
    """A read-only snapshot of one pool (``lua/status.lua``, then the listed leases'
    hashes). Raises redis-py errors and :class:`CoordinatorStateError`."""
    reply = await _status_ro(client, scripts.status, keys, limit)
    now_ms, raw_cap, live, expired, queued, flat, raw_tickets, raw_alive, present = reply
    capacity = _stored_capacity(keys, raw_cap)
    pairs = [(text(k), float(text(v))) for k, v in zip(flat[::2], flat[1::2], strict=True)]
    tickets = {
        text(raw_tickets[i]): text(raw_tickets[i + 1]) for i in range(0, len(raw_tickets), 2)
    }
    hashes = await _hashes(client, keys, [lease_id for lease_id, _ in pairs])
    waiters = _waiting(tickets, {text(origin) for origin in raw_alive})
    status = PoolStatus(
        keys.pool,
        capacity,
        _lease_records(pairs, hashes, tickets),
        sum(w.count for w in waiters),
        int(now_ms),
        waiters,
    )
    return PoolReport(status, int(present) > 0, int(live), int(expired), int(queued))


class RedisAdmin:
    """Look at and change pools stored in Redis (what the ``leasepool`` command does).

    ``client`` is a ``redis.asyncio`` client: ``Redis``, ``RedisCluster`` (every
    master is scanned for pools) or a Sentinel-managed one. Looking
    (:meth:`pools`, :meth:`status`, :meth:`report`) only reads; :meth:`revoke`
    and :meth:`set_capacity` change the pool through the coordinators' scripts.
    """

    def __init__(self, client: Any, *, key_prefix: str = DEFAULT_PREFIX) -> None:
        if client is None or not hasattr(client, "register_script"):
            raise TypeError(f"client must be a redis.asyncio client, got {client!r}")
        self._client = client
        self._prefix = check_key_prefix(key_prefix)
        self._scripts = Scripts.register(client)
        self._target = describe_client(client)

    @property
    def key_prefix(self) -> str:
        """The key prefix the pools live under."""
        return self._prefix

    def _keys(self, pool: str) -> PoolKeys:
        return PoolKeys.of(pool, self._prefix)

    def _error(self, exc: BaseException, action: str) -> Exception:
        error = translate(exc, action=action, target=self._target)
        # Redis appends where in the script an error was raised: noise for an operator.
        cleaned = _SCRIPT_SUFFIX.sub("", str(error))
        return type(error)(cleaned) if cleaned != str(error) else error

    async def pools(self, *, limit: int = 10_000) -> list[str]:
        """Pool names under the key prefix (found by SCAN over meta keys, at most ``limit``)."""
        limit = positive_int("limit", limit)
        found: set[str] = set()
        try:
            async for key in self._client.scan_iter(
                match=meta_scan_pattern(self._prefix), count=1000
            ):
                pool = pool_from_meta_key(self._prefix, text(key))
                if pool is not None:
                    found.add(pool)
                    if len(found) >= limit:
                        break
        except REDIS_ERRORS as exc:
            raise self._error(exc, "list pools") from exc
        return sorted(found)

    async def report(self, pool: str, *, limit: int = DEFAULT_STATUS_LIMIT) -> PoolReport:
        """A read-only snapshot of ``pool``: its status and counts (see :class:`PoolReport`)."""
        keys = self._keys(pool)
        limit = positive_int("limit", limit)
        try:
            return await read_report(self._client, self._scripts, keys, limit=limit)
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"status of pool {pool!r}") from exc

    async def status(self, pool: str, *, limit: int = DEFAULT_STATUS_LIMIT) -> PoolStatus:
        """The pool's capacity and live leases (up to ``limit``), soonest expiry first.

        Read-only: expired leases not reclaimed yet are left out, not removed.
        """
        return (await self.report(pool, limit=limit)).status

    async def revoke(self, pool: str, lease_id: str) -> bool:
        """Remove a lease; its holder is told and stops using it. True if it was live."""
        keys = self._keys(pool)
        lease_id = check_lease_id(lease_id)
        try:
            reply = await self._scripts.revoke(
                keys=[*keys.fixed, keys.lease(lease_id)], args=[script_config(), lease_id]
            )
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"revoke {lease_id!r} in pool {pool!r}") from exc
        return bool(int(reply.split()[0]))

    async def set_capacity(self, pool: str, capacity: int) -> int | None:
        """Set the pool's capacity (0 pauses it); returns the old one (None if unset)."""
        keys = self._keys(pool)
        capacity = capacity_value("capacity", capacity)
        try:
            reply = await self._scripts.set_capacity(
                keys=list(keys.fixed), args=[script_config(), capacity]
            )
            old = int(reply.split()[0])
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"set capacity of pool {pool!r}") from exc
        return old if old >= 0 else None


def _server_mode(hello: Any) -> str:
    """The ``mode`` field of a HELLO reply (a map, or a flat list with older clients)."""
    if isinstance(hello, list | tuple):
        hello = dict(zip(hello[::2], hello[1::2], strict=False))
    if isinstance(hello, dict):
        for key, value in hello.items():
            if text(key) == "mode":
                return text(value)
    return "standalone"


async def connect(url: str, *, socket_timeout: float = 5.0) -> Any:
    """A ``redis.asyncio`` client for ``url``: a ``RedisCluster`` when the server says it
    is a cluster node (HELLO, allowed to every user), so pools on every master are seen;
    else a plain ``Redis``. Raises :class:`CoordinatorUnavailableError` when unreachable.
    """
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from leasepool._redis.url import check_url, redact_url, url_password

    url = check_url(url)
    options: dict[str, Any] = {
        "socket_connect_timeout": socket_timeout,
        "socket_timeout": socket_timeout,
    }
    client = Redis.from_url(url, **options)
    try:
        mode = _server_mode(await client.execute_command("HELLO"))  # type: ignore[no-untyped-call]
    except redis_exceptions.ResponseError:
        mode = "standalone"  # a server without HELLO (Redis < 6) is no cluster we support
    except REDIS_ERRORS as exc:
        await client.aclose()
        raise translate(
            exc, action="connect", target=redact_url(url), secrets=[url_password(url)]
        ) from exc
    if mode != "cluster":
        return client
    await client.aclose()
    return RedisCluster.from_url(url, **options)
