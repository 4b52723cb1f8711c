"""Where a pool lives in Redis.

Every key (and the events channel) of pool ``P`` carries the hash tag ``{P}``,
so a pool's keys sit in one Cluster slot and different pools spread over slots::

    <prefix>:{P}:meta          HASH   capacity, fence (last fencing token),
                                      qseq (last enqueue sequence)
    <prefix>:{P}:leases        ZSET   lease id -> hard expiry (ms, server time); a grant
                                      handed to a waiter scores its claim deadline
                                      until the waiter claims it
    <prefix>:{P}:lease:<id>    HASH   owner, host, pid, token, acquired_ms, soft_ms,
                                      hard_ms [, renewed_ms]; has a TTL
    <prefix>:{P}:queue         ZSET   waiting lease id -> enqueue sequence (FIFO)
    <prefix>:{P}:tickets       HASH   lease id -> ticket: who waits (process, host,
                                      pid, owner) for how long a lease; or the grant
                                      handed to it, until claimed (see lua/_shared.lua)
    <prefix>:{P}:waiters       ZSET   waiting process (coordinator id) -> ms until which
                                      it counts as alive: its heartbeat; the tickets of
                                      a dead process are dropped
    <prefix>:{P}:events        pub/sub channel: "grant <origin> <id> <token>
                                      <soft_ms> <hard_ms> <claim_ms> ...",
                                      "revoke <id>", "free <n>"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "leasepool"
_NO_SPACE = re.compile(r"\S+")


def check_pool_name(pool: object) -> str:
    """A pool name: a non-empty str without ``{`` or ``}`` (they would break the hash tag)."""
    if not isinstance(pool, str):
        raise TypeError(f"pool must be a str, got {pool!r}")
    if not pool or "{" in pool or "}" in pool:
        raise ValueError(f"pool must be non-empty and contain no '{{' or '}}', got {pool!r}")
    return pool


def check_key_prefix(key_prefix: object) -> str:
    """A key prefix: a non-empty str without ``{`` or ``}``."""
    if not isinstance(key_prefix, str):
        raise TypeError(f"key_prefix must be a str, got {key_prefix!r}")
    if not key_prefix or "{" in key_prefix or "}" in key_prefix:
        raise ValueError(
            f"key_prefix must be non-empty and contain no '{{' or '}}', got {key_prefix!r}"
        )
    return key_prefix


def check_lease_id(lease_id: object) -> str:
    """A lease id: a non-empty str without whitespace."""
    if not isinstance(lease_id, str):
        raise TypeError(f"lease_id must be a str, got {lease_id!r}")
    if not _NO_SPACE.fullmatch(lease_id):
        raise ValueError(f"lease_id must be non-empty and contain no whitespace, got {lease_id!r}")
    return lease_id


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """The names of one pool's keys."""

    prefix: str
    pool: str

    @classmethod
    def of(cls, pool: object, key_prefix: object = DEFAULT_PREFIX) -> PoolKeys:
        return cls(check_key_prefix(key_prefix), check_pool_name(pool))

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.pool}}}"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def leases(self) -> str:
        return f"{self.base}:leases"

    @property
    def queue(self) -> str:
        return f"{self.base}:queue"

    @property
    def tickets(self) -> str:
        return f"{self.base}:tickets"

    @property
    def waiters(self) -> str:
        return f"{self.base}:waiters"

    @property
    def fixed(self) -> tuple[str, str, str, str, str]:
        """The five keys every script but ``init.lua`` takes first, in order."""
        return (self.meta, self.leases, self.queue, self.tickets, self.waiters)

    @property
    def events(self) -> str:
        return f"{self.base}:events"

    def lease(self, lease_id: str) -> str:
        return f"{self.base}:lease:{lease_id}"


def meta_scan_pattern(key_prefix: str) -> str:
    """A SCAN MATCH pattern that finds every pool's meta key under ``key_prefix``."""
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in key_prefix)
    return f"{escaped}:{{*}}:meta"


def pool_from_meta_key(key_prefix: str, key: str) -> str | None:
    """The pool name in a meta key, or None when ``key`` is not one."""
    head, tail = f"{key_prefix}:{{", "}:meta"
    if not key.startswith(head) or not key.endswith(tail):
        return None
    pool = key[len(head) : -len(tail)]
    if not pool or "{" in pool or "}" in pool:
        return None
    return pool
