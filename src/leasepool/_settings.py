"""Settings from ``LEASEPOOL_*`` environment variables, read in one place.

The ``leasepool`` command, its exporter, :meth:`RedisCoordinator.from_env` and the
example web app all read the environment through :class:`LeasePoolSettings`, so a
variable means the same thing everywhere. Invariants:

* Every variable is optional except ``LEASEPOOL_REDIS_URL`` where a Redis is needed
  (:meth:`LeasePoolSettings.require_url`); an unset or empty variable takes the
  default the caller gave, else the documented one.
* A malformed value fails at once with ``ValueError`` naming the variable and its
  value (a URL's password redacted), never later with a bare parse error.
* Values are validated with the same rules as the constructors they feed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from leasepool._redis.keys import DEFAULT_PREFIX, check_key_prefix, check_pool_name
from leasepool._redis.url import check_url, redact_url
from leasepool._validation import MAX_CAPACITY

URL_ENV = "LEASEPOOL_REDIS_URL"

VARIABLES: dict[str, str] = {
    URL_ENV: "the Redis URL: redis://, rediss:// (TLS) or unix://",
    "LEASEPOOL_POOL": "the pool name; processes with the same name share one capacity",
    "LEASEPOOL_CAPACITY": "the capacity of a new pool (0 to 1000000, 0 = paused); "
    "an existing pool keeps the one stored in Redis",
    "LEASEPOOL_KEY_PREFIX": "the prefix of every Redis key",
    "LEASEPOOL_FAIR": "1/true: no caller jumps the queue (fair=True)",
    "LEASEPOOL_LEASE_SECONDS": "default lease length in seconds",
    "LEASEPOOL_ACQUIRE_TIMEOUT": "seconds an acquire may wait (unset: forever)",
    "LEASEPOOL_MAX_POOLS": "local executors per process",
}
"""Every variable leasepool reads, with what it means (the docs table is built from it)."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _integer(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = _get(env, name)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    raw = _get(env, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = _get(env, name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")


def _named(name: str, check: Any, raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return check(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class LeasePoolSettings:
    """leasepool's settings as read from ``LEASEPOOL_*`` variables (see :data:`VARIABLES`).

    Build it with :meth:`from_env`; fields left unset by the environment keep the
    defaults given there. ``redis_url`` is None when no URL was set.
    """

    redis_url: str | None = field(default=None, repr=False)
    pool: str = "default"
    capacity: int = 1
    key_prefix: str = DEFAULT_PREFIX
    fair: bool = False
    lease_seconds: float | None = None
    acquire_timeout: float | None = None
    max_pools: int | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **defaults: Any
    ) -> LeasePoolSettings:
        """Read the variables from ``environ`` (default ``os.environ``).

        ``defaults`` (keyword-only, by field name) replace the built-in defaults for
        variables that are unset. Raises ``ValueError`` naming a malformed variable.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(defaults) - names)
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown}; known: {sorted(names)}")
        env = os.environ if environ is None else environ
        read = {
            "redis_url": _named(URL_ENV, check_url, _get(env, URL_ENV)),
            "pool": _named("LEASEPOOL_POOL", check_pool_name, _get(env, "LEASEPOOL_POOL")),
            "capacity": _integer(env, "LEASEPOOL_CAPACITY", 0, MAX_CAPACITY),
            "key_prefix": _named(
                "LEASEPOOL_KEY_PREFIX", check_key_prefix, _get(env, "LEASEPOOL_KEY_PREFIX")
            ),
            "fair": _flag(env, "LEASEPOOL_FAIR"),
            "lease_seconds": _seconds(env, "LEASEPOOL_LEASE_SECONDS"),
            "acquire_timeout": _seconds(env, "LEASEPOOL_ACQUIRE_TIMEOUT"),
            "max_pools": _integer(env, "LEASEPOOL_MAX_POOLS", 1, 1_000_000),
        }
        merged = {**defaults, **{k: v for k, v in read.items() if v is not None}}
        return cls(**merged)

    def require_url(self) -> str:
        """The Redis URL, or ``ValueError`` saying that ``LEASEPOOL_REDIS_URL`` is unset."""
        if self.redis_url is None:
            raise ValueError(f"{URL_ENV} is not set: point it at the shared Redis")
        return self.redis_url

    @property
    def shown_url(self) -> str | None:
        """The URL with its password replaced by ``***`` (for logs and messages)."""
        return None if self.redis_url is None else redact_url(self.redis_url)

    def manager_kwargs(self) -> dict[str, Any]:
        """``LeasedExecutorManager`` keyword arguments for the settings that were given."""
        out: dict[str, Any] = {}
        if self.lease_seconds is not None:
            out["default_lease_seconds"] = self.lease_seconds
        if self.max_pools is not None:
            out["max_pools"] = self.max_pools
        return out


__all__ = ["URL_ENV", "VARIABLES", "LeasePoolSettings"]
