"""Bad input is refused up front, naming the parameter and the value; no secret leaks."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

import redis
from leasepool import GrantRequest, RedisCoordinator, ReleaseOutcome
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.admin import RedisAdmin
from leasepool._redis.keys import PoolKeys, meta_scan_pattern, pool_from_meta_key
from leasepool._redis.url import check_url, redact_url

URL = "redis://127.0.0.1:6399/0"


@pytest.mark.parametrize(
    ("capacity", "error"),
    [(1_000_001, ValueError), (-3, ValueError), (True, TypeError), (2.0, TypeError),
     ("3", TypeError), (None, TypeError)],
)  # fmt: skip
def test_bad_capacity(capacity: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"capacity.*{capacity!r}"):
        RedisCoordinator.from_url(URL, pool="p", capacity=capacity)  # type: ignore[arg-type]
    with pytest.raises(error, match="capacity"):
        RedisCoordinator(aioredis.Redis(), pool="p", capacity=capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pool", "error"),
    [("", ValueError), ("a{b", ValueError), ("x}", ValueError), ("{p}", ValueError),
     (3, TypeError), (None, TypeError), (b"p", TypeError)],
)  # fmt: skip
def test_bad_pool_name(pool: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="pool"):
        RedisCoordinator.from_url(URL, pool=pool, capacity=1)  # type: ignore[arg-type]
    with pytest.raises(error, match="pool"):
        PoolKeys.of(pool)


@pytest.mark.parametrize("prefix", ["", "a{", "}", 7])
def test_bad_key_prefix(prefix: object) -> None:
    with pytest.raises((ValueError, TypeError), match="key_prefix"):
        RedisCoordinator.from_url(URL, pool="p", capacity=1, key_prefix=prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://h:1", "redis://", "redis://h:99999", "redis://h:0", "redis://h/abc", "unix://",
     "localhost:6379", "", "redis://user:hunter2pass@h:notaport/0"],
)  # fmt: skip
def test_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="url") as info:
        RedisCoordinator.from_url(url, pool="p", capacity=1)
    assert "hunter2pass" not in str(info.value)


def test_url_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="url"):
        RedisCoordinator.from_url(42, pool="p", capacity=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["redis://h:6379", "rediss://u:p@h:6380/2", "unix:///tmp/r.sock", "redis://h"]
)
def test_good_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
        ("rediss://:pw@h:1", "rediss://:***@h:1"),
        ("redis://pw@h:1", "redis://***@h:1"),
        ("redis://h:1/0?password=pw&db=1", "redis://h:1/0?password=***&db=1"),
        ("redis://h:1/0", "redis://h:1/0"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("name", "value"),
    [("clock_drift", -0.1), ("clock_drift", 0.5), ("clock_drift", float("nan")),
     ("reclaim_batch", 0), ("reclaim_batch", True), ("reclaim_batch", 10**6),
     ("recheck_interval", 0.5), ("recheck_interval", 0), ("record_margin", -1),
     ("claim_window", 0.05), ("claim_window", 61), ("nowait_timeout", 0),
     ("nowait_timeout", -1), ("nowait_timeout", float("nan")), ("nowait_timeout", 61),
     ("nowait_timeout", "0.5"), ("nowait_timeout", True)],
)  # fmt: skip
def test_bad_tuning(name: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        RedisCoordinator.from_url(URL, pool="p", capacity=1, **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("client", [None, "redis://h", object()])
def test_client_must_be_a_redis_client(client: Any) -> None:
    with pytest.raises(TypeError, match="client"):
        RedisCoordinator(client, pool="p", capacity=1)


def test_blocking_client_is_refused() -> None:
    with pytest.raises(TypeError, match="asyncio"):
        RedisCoordinator(redis.Redis(), pool="p", capacity=1)


def test_repr_has_no_password() -> None:
    coordinator = RedisCoordinator.from_url("redis://u:topsecret@h:1/0", pool="p", capacity=2)
    assert "topsecret" not in repr(coordinator)
    assert "topsecret" not in str(coordinator.statistics())


def test_meta_key_scan_round_trip() -> None:
    keys = PoolKeys.of("jobs.gpu", "lp")
    assert keys.meta == "lp:{jobs.gpu}:meta"
    assert pool_from_meta_key("lp", keys.meta) == "jobs.gpu"
    assert pool_from_meta_key("lp", "lp:{jobs.gpu}:leases") is None
    assert meta_scan_pattern("a*b") == "a\\*b:{*}:meta"


@pytest.mark.redis
async def test_unknown_lease_ids_and_bad_ids(redis_url: str, pool_name: str) -> None:
    c = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1)
    await c.start(clock=MONOTONIC_CLOCK, on_lost=lambda _: None)
    try:
        assert await c.release("does-not-exist") is ReleaseOutcome.UNKNOWN
        assert await c.revoke("does-not-exist") is False
        assert await c.renew({"does-not-exist": 5}) == {"does-not-exist": None}
        with pytest.raises(ValueError, match="lease_id"):
            await c.release("has space")
        with pytest.raises(TypeError, match="lease_id"):
            await c.revoke(7)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="lease_seconds"):
            await c.acquire(GrantRequest("x", "", 0, 0), wait=False, deadline=None)
        with pytest.raises(ValueError, match="grace_seconds"):
            await c.acquire(GrantRequest("x", "", 1, -1), wait=False, deadline=None)
        with pytest.raises(ValueError, match="lease_seconds"):
            await c.renew({"x": float("inf")})
        with pytest.raises(ValueError, match="capacity"):
            await c.set_capacity(-1)
        assert (await c.status()).leases == ()
    finally:
        await c.close()


@pytest.mark.redis
async def test_admin_rejects_bad_input(redis_client: Any) -> None:
    admin = RedisAdmin(redis_client)
    with pytest.raises(ValueError, match="pool"):
        await admin.status("a{b}")
    with pytest.raises(TypeError, match="capacity"):
        await admin.set_capacity("p", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease_id"):
        await admin.revoke("p", "")
    with pytest.raises(TypeError, match="client"):
        RedisAdmin(None)
