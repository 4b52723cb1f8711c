"""Operator actions on pools in Redis, for the ``leasepool`` command.

:class:`RedisAdmin` needs no running manager: it reads and changes the same
keys the coordinators use, through the same scripts.
"""

from __future__ import annotations

from typing import Any

from leasepool._coordinator import LeaseRecord, PoolStatus, WaitingProcess
from leasepool._redis_errors import REDIS_ERRORS, translate
from leasepool._redis_keys import (
    DEFAULT_PREFIX,
    PoolKeys,
    check_key_prefix,
    check_lease_id,
    meta_scan_pattern,
    pool_from_meta_key,
)
from leasepool._redis_scripts import Scripts
from leasepool._redis_url import describe_client
from leasepool._validation import positive_int

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


async def read_status(
    client: Any,
    scripts: Scripts,
    keys: PoolKeys,
    *,
    reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
    limit: int = DEFAULT_STATUS_LIMIT,
) -> PoolStatus:
    """Reclaim one batch of expired leases (handing free slots to waiters), then list up
    to ``limit`` live leases and count the live waiter tickets per process.

    A lease handed to a waiter and not claimed yet has no hash: its record comes from
    its ticket. A waiter counts while its process is alive (heartbeat). Counting
    waiters reads the whole tickets hash (one entry per waiting caller). Raises
    redis-py errors; callers translate them.
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
    ids = [text(member) for member, _ in entries]
    records: list[Any] = []
    if ids:
        pipe = client.pipeline(transaction=False)
        for lease_id in ids:
            pipe.hgetall(keys.lease(lease_id))
        records = await pipe.execute()
    leases = []
    for (lease_id, (_, score)), raw in zip(zip(ids, entries, strict=True), records, strict=True):
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
    counts: dict[tuple[str, int], int] = {}
    for ticket in tickets.values():
        if ticket.startswith("w|"):
            # "w|<lease_ms>|<grace_ms>|<origin>|<pid>|<host>|<owner>"
            _, _, _, origin, pid, host, _owner = ticket.split("|", 6)
            if origin in alive:
                who = (host, _int(pid))
                counts[who] = counts.get(who, 0) + 1
    waiters = tuple(
        WaitingProcess(host, pid, count)
        for (host, pid), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return PoolStatus(
        keys.pool,
        capacity if capacity >= 1 else None,
        tuple(leases),
        sum(counts.values()),
        now_ms,
        waiters,
    )


class RedisAdmin:
    """Look at and change pools stored in Redis (what the CLI does)."""

    def __init__(self, client: Any, *, key_prefix: str = DEFAULT_PREFIX) -> None:
        if client is None or not hasattr(client, "register_script"):
            raise TypeError(f"client must be a redis.asyncio client, got {client!r}")
        self._client = client
        self._prefix = check_key_prefix(key_prefix)
        self._scripts = Scripts.register(client)
        self._target = describe_client(client)

    def _keys(self, pool: str) -> PoolKeys:
        return PoolKeys.of(pool, self._prefix)

    def _error(self, exc: BaseException, action: str) -> Exception:
        return translate(exc, action=action, target=self._target)

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

    async def status(self, pool: str, *, limit: int = DEFAULT_STATUS_LIMIT) -> PoolStatus:
        """The pool's capacity and live leases (up to ``limit``), oldest expiry first."""
        keys = self._keys(pool)
        limit = positive_int("limit", limit)
        try:
            return await read_status(self._client, self._scripts, keys, limit=limit)
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"status of pool {pool!r}") from exc

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
        """Set the pool's capacity; returns the old one (None if the pool had none)."""
        keys = self._keys(pool)
        capacity = positive_int("capacity", capacity)
        try:
            reply = await self._scripts.set_capacity(
                keys=list(keys.fixed), args=[script_config(), capacity]
            )
            old = reply.split()[0]
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"set capacity of pool {pool!r}") from exc
        return int(old) if int(old) >= 1 else None
