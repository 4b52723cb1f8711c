"""The Redis coordinator's options, checked once: a frozen value, and the client checks.

Invariants: a :class:`RedisOptions` exists only with every option in its documented
range (a bad value raises ``ValueError``/``TypeError`` naming the parameter and the
value); every duration is also held in the unit the scripts use (ms) so no script
number gets near 2**53 (:data:`MAX_LEASE_MS`).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from leasepool._coordinator import GrantRequest
from leasepool._redis.keys import check_lease_id
from leasepool._redis.protocol import DEFAULT_RECLAIM_BATCH, encode_acquire_request
from leasepool._validation import (
    ArgumentTypeError,
    boolean,
    capacity_value,
    finite_number,
    non_negative_duration,
    positive_duration,
    positive_int,
)

__all__ = ["DEFAULT_RECLAIM_BATCH", "MAX_LEASE_MS", "RedisOptions"]

_LEASE_ID = re.compile(r"\S+")

MAX_LEASE_MS = 2**41
"""About 70 years: keeps every number the scripts compute far below 2**53."""


def _duration_in(name: str, value: object, low: float, high: float) -> float:
    seconds = positive_duration(name, value)
    if not low <= seconds <= high:
        raise ValueError(f"{name} must be between {low} and {high} seconds, got {value!r}")
    return seconds


def seconds(name: str, value: object, above: float) -> float:
    """A finite number of seconds > ``above`` (0: positive; -1: zero allowed), fast path first."""
    if (type(value) is float or type(value) is int) and above < value < 1e300:
        return value
    if above == 0:
        return positive_duration(name, value)
    return non_negative_duration(name, value)


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The keyword options of :class:`~leasepool.RedisCoordinator`, validated."""

    capacity: int
    fair: bool
    drift: float
    reclaim_batch: int
    recheck: float
    claim_ms: int
    margin_ms: int
    ticket_ms: int
    nowait: float

    @classmethod
    def build(
        cls,
        *,
        capacity: object,
        fair: object,
        clock_drift: object,
        reclaim_batch: object,
        recheck_interval: object,
        claim_window: object,
        record_margin: object,
        nowait_timeout: object,
    ) -> RedisOptions:
        capacity_ok = capacity_value("capacity", capacity)
        fair_ok = boolean("fair", fair)
        drift = finite_number("clock_drift", clock_drift)
        if not 0 <= drift < 0.5:
            raise ValueError(f"clock_drift must be >= 0 and < 0.5, got {clock_drift!r}")
        batch = positive_int("reclaim_batch", reclaim_batch)
        if batch > 10_000:
            raise ValueError(f"reclaim_batch must be <= 10000, got {reclaim_batch!r}")
        recheck = _duration_in("recheck_interval", recheck_interval, 1.0, 60.0)
        claim_ms = round(_duration_in("claim_window", claim_window, 0.1, 60.0) * 1000)
        margin_ms = round(non_negative_duration("record_margin", record_margin) * 1000)
        if margin_ms > MAX_LEASE_MS:
            raise ValueError(f"record_margin is too large, got {record_margin!r}")
        return cls(
            capacity=capacity_ok,
            fair=fair_ok,
            drift=drift,
            reclaim_batch=batch,
            recheck=recheck,
            claim_ms=claim_ms,
            margin_ms=margin_ms,
            ticket_ms=round(recheck * 3000),
            nowait=_duration_in("nowait_timeout", nowait_timeout, 0.01, 60.0),
        )


def lease_id_of(value: object) -> str:
    """A checked lease id (a plain non-blank str without whitespace: the fast path)."""
    if type(value) is str and _LEASE_ID.fullmatch(value):
        return value
    return check_lease_id(value)


def acquire_request(request: GrantRequest, wait: bool) -> tuple[str, str]:
    """The checked lease id of ``request`` and its ``acquire.lua`` request string."""
    lease_id = lease_id_of(request.lease_id)
    lease_ms = max(1, round(seconds("lease_seconds", request.lease_seconds, 0) * 1000))
    grace_ms = round(seconds("grace_seconds", request.grace_seconds, -1) * 1000)
    if lease_ms + grace_ms > MAX_LEASE_MS:
        raise ValueError(
            f"lease_seconds + grace_seconds is too long, got {request.lease_seconds!r}"
            f" + {request.grace_seconds!r}"
        )
    return lease_id, encode_acquire_request(wait, lease_ms, grace_ms, lease_id, request.owner)


def check_client(client: object) -> Any:
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


def client_password(client: object) -> str | None:
    """The password the client's pool connects with (to redact it from messages)."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    password = kwargs.get("password")
    return password if isinstance(password, str) else None


def default_client_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fail fast when Redis is down instead of redis-py's long default retry loop."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    kwargs.setdefault("socket_connect_timeout", 5.0)
    kwargs.setdefault("socket_timeout", 5.0)
    kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
    return kwargs
