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
from typing import Any

from leasepool._coordinator import PoolStatus
from leasepool._redis.errors import REDIS_ERRORS, translate
from leasepool._redis.keys import (
    DEFAULT_PREFIX,
    PoolKeys,
    check_key_prefix,
    check_lease_id,
    meta_scan_pattern,
    pool_from_meta_key,
)
from leasepool._redis.protocol import (
    RevokeStatus,
    decode_revoke,
    decode_set_capacity,
    encode_revoke,
    encode_set_capacity,
    text,
)
from leasepool._redis.scripts import Scripts
from leasepool._redis.snapshot import (
    DEFAULT_STATUS_LIMIT,
    OPERATOR_CONSTANTS,
    PoolReport,
    read_report,
)
from leasepool._redis.url import describe_client
from leasepool._validation import capacity_value, positive_int
from redis import exceptions as redis_exceptions

_SCRIPT_SUFFIX = re.compile(r"\s*script: [0-9a-f]+, on @user_script:\d+\.?$")


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
                keys=[*keys.fixed, keys.lease(lease_id)],
                args=encode_revoke(OPERATOR_CONSTANTS, lease_id),
            )
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"revoke {lease_id!r} in pool {pool!r}") from exc
        return decode_revoke(reply).status is RevokeStatus.WAS_LIVE

    async def set_capacity(self, pool: str, capacity: int) -> int | None:
        """Set the pool's capacity (0 pauses it); returns the old one (None if unset)."""
        keys = self._keys(pool)
        capacity = capacity_value("capacity", capacity)
        try:
            reply = await self._scripts.set_capacity(
                keys=list(keys.fixed), args=encode_set_capacity(OPERATOR_CONSTANTS, capacity)
            )
        except REDIS_ERRORS as exc:
            raise self._error(exc, f"set capacity of pool {pool!r}") from exc
        return decode_set_capacity(reply).old


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


__all__ = ["DEFAULT_STATUS_LIMIT", "PoolReport", "RedisAdmin", "connect"]
