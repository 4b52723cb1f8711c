"""Reading a pool's state in one go: what ``status()`` and the operator tools show.

Invariants: reading never changes what it reads, except :func:`read_status`, the
coordinator's own status, which first runs ``reclaim.lua`` (housekeeping a
coordinator does on every call anyway). :func:`read_report` sends only
``status.lua`` through ``EVALSHA_RO`` and plain reads, so a read-only ACL user can
run it. A damaged pool fails with :class:`CoordinatorStateError` naming its key.
Replies are decoded by :mod:`leasepool._redis.protocol`; this module adds the
I/O. Both the coordinator and the operator module (``admin``) use it; it uses
neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from leasepool._coordinator import LeaseRecord, PoolStatus, WaitingProcess
from leasepool._errors import CoordinatorStateError
from leasepool._redis.keys import PoolKeys
from leasepool._redis.protocol import (
    DEFAULT_RECLAIM_BATCH,
    GrantedTicket,
    WaitingTicket,
    decode_reclaim,
    decode_status,
    decode_ticket,
    encode_constants,
    encode_reclaim,
    encode_status,
    text,
)
from leasepool._redis.scripts import Scripts
from leasepool._validation import MAX_CAPACITY
from redis import exceptions as redis_exceptions

DEFAULT_STATUS_LIMIT = 1000
OPERATOR_CONSTANTS = encode_constants()
"""Operator tools' constants: the defaults, no origin (see encode_constants)."""


def _int(value: object, default: int = 0) -> int:
    try:
        return int(text(value)) if value is not None else default
    except ValueError:
        return default


def _lease_records(
    entries: Sequence[tuple[str, int]], hashes: list[Any], tickets: dict[str, str]
) -> tuple[LeaseRecord, ...]:
    """Records for live leases (id, expiry score) from their hashes, or, for a grant
    handed to a waiter and not claimed yet (no hash), from its ticket."""
    leases = []
    for (lease_id, score), raw in zip(entries, hashes, strict=True):
        fields = {text(k): text(v) for k, v in (raw or {}).items()}
        if "token" not in fields:
            ticket = decode_ticket(tickets.get(lease_id, ""))
            if isinstance(ticket, GrantedTicket):
                fields = {
                    "owner": ticket.owner,
                    "host": ticket.host,
                    "pid": str(ticket.pid),
                    "token": str(ticket.token),
                    "acquired_ms": str(ticket.acquired_ms),
                    "soft_ms": str(ticket.soft_ms),
                }
        leases.append(
            LeaseRecord(
                lease_id=lease_id,
                owner=fields.get("owner", ""),
                host=fields.get("host", ""),
                pid=_int(fields.get("pid")),
                token=_int(fields.get("token")),
                acquired_ms=_int(fields.get("acquired_ms")),
                soft_ms=_int(fields.get("soft_ms"), score),
                hard_ms=score,
            )
        )
    return tuple(leases)


def _waiting(tickets: dict[str, str], alive: AbstractSet[str]) -> tuple[WaitingProcess, ...]:
    """Live waiting tickets counted per process, most first. A ticket counts while its
    process's heartbeat is current."""
    counts: dict[tuple[str, int], int] = {}
    for raw in tickets.values():
        ticket = decode_ticket(raw)
        if isinstance(ticket, WaitingTicket) and ticket.origin in alive:
            who = (ticket.host, ticket.pid)
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
    tickets per process. Raises redis-py errors and :class:`CoordinatorStateError`;
    callers translate the former.
    """
    constants = encode_constants(batch=reclaim_batch)
    reclaimed = decode_reclaim(
        await scripts.reclaim(keys=list(keys.fixed), args=encode_reclaim(constants))
    )
    now_ms = reclaimed.now_ms
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.leases, f"({now_ms}", "+inf", start=0, num=limit, withscores=True)
    pipe.hgetall(keys.tickets)
    pipe.zrangebyscore(keys.waiters, f"({now_ms}", "+inf")
    entries, raw_tickets, raw_alive = await pipe.execute()
    tickets = {text(k): text(v) for k, v in (raw_tickets or {}).items()}
    alive = {text(origin) for origin in raw_alive or ()}
    pairs = [(text(member), int(score)) for member, score in entries]
    hashes = await _hashes(client, keys, [lease_id for lease_id, _ in pairs])
    waiters = _waiting(tickets, alive)
    capacity = reclaimed.capacity
    return PoolStatus(
        keys.pool,
        capacity if capacity is not None and capacity >= 1 else None,
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


def _stored_capacity(keys: PoolKeys, raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw.isdigit() and int(raw) <= MAX_CAPACITY:
        return int(raw)
    raise CoordinatorStateError(
        f"{keys.meta} field capacity is not an integer from 0 to {MAX_CAPACITY}: {raw!r}"
    )


async def _status_ro(client: Any, script: Any, keys: PoolKeys, limit: int) -> object:
    args = [*keys.fixed, *encode_status(OPERATOR_CONSTANTS, limit)]
    try:
        return await client.evalsha_ro(script.sha, len(keys.fixed), *args)
    except redis_exceptions.NoScriptError:
        # A restarted or flushed server: load it (SCRIPT LOAD writes no key) and retry.
        await client.script_load(script.script)
        return await client.evalsha_ro(script.sha, len(keys.fixed), *args)


async def read_report(
    client: Any, scripts: Scripts, keys: PoolKeys, *, limit: int = DEFAULT_STATUS_LIMIT
) -> PoolReport:
    """A read-only snapshot of one pool (``lua/status.lua``, then the listed leases'
    hashes). Raises redis-py errors and :class:`CoordinatorStateError`."""
    reply = decode_status(await _status_ro(client, scripts.status, keys, limit))
    capacity = _stored_capacity(keys, reply.capacity)
    hashes = await _hashes(client, keys, [lease_id for lease_id, _ in reply.leases])
    waiters = _waiting(reply.tickets, reply.alive)
    status = PoolStatus(
        keys.pool,
        capacity,
        _lease_records(reply.leases, hashes, reply.tickets),
        sum(w.count for w in waiters),
        reply.now_ms,
        waiters,
    )
    return PoolReport(status, reply.present > 0, reply.live, reply.expired, reply.queued)
