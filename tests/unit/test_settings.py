"""``LEASEPOOL_*`` variables: one reader for the command, the coordinator and the web app."""

from __future__ import annotations

import pytest

from leasepool import LeasePoolSettings, RedisCoordinator
from leasepool._settings import VARIABLES

URL = "redis://user:s3cret-pw@127.0.0.1:6399/2"


def test_defaults_when_nothing_is_set() -> None:
    settings = LeasePoolSettings.from_env({})
    assert settings == LeasePoolSettings()
    assert (settings.redis_url, settings.pool, settings.capacity) == (None, "default", 1)
    assert settings.manager_kwargs() == {}
    with pytest.raises(ValueError, match="LEASEPOOL_REDIS_URL is not set"):
        settings.require_url()


def test_every_variable_is_read() -> None:
    env = {
        "LEASEPOOL_REDIS_URL": URL,
        "LEASEPOOL_POOL": "gpu",
        "LEASEPOOL_CAPACITY": "0",
        "LEASEPOOL_KEY_PREFIX": "acme",
        "LEASEPOOL_FAIR": "yes",
        "LEASEPOOL_LEASE_SECONDS": "2.5",
        "LEASEPOOL_ACQUIRE_TIMEOUT": "7",
        "LEASEPOOL_MAX_POOLS": "3",
    }
    assert set(env) == set(VARIABLES)
    settings = LeasePoolSettings.from_env(env)
    assert settings.require_url() == URL and settings.shown_url == URL.replace("s3cret-pw", "***")
    assert (settings.pool, settings.capacity, settings.key_prefix) == ("gpu", 0, "acme")
    assert settings.fair is True
    assert (settings.lease_seconds, settings.acquire_timeout, settings.max_pools) == (2.5, 7, 3)
    assert settings.manager_kwargs() == {"default_lease_seconds": 2.5, "max_pools": 3}
    assert "s3cret-pw" not in repr(settings)


def test_caller_defaults_apply_only_to_unset_variables() -> None:
    settings = LeasePoolSettings.from_env({"LEASEPOOL_POOL": "api"}, pool="web", capacity=4)
    assert (settings.pool, settings.capacity) == ("api", 4)
    assert LeasePoolSettings.from_env({"LEASEPOOL_POOL": "  "}, pool="web").pool == "web"
    with pytest.raises(TypeError, match="unknown setting"):
        LeasePoolSettings.from_env({}, colour="red")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEASEPOOL_CAPACITY", "2.5"),
        ("LEASEPOOL_CAPACITY", "-1"),
        ("LEASEPOOL_CAPACITY", "1000001"),
        ("LEASEPOOL_CAPACITY", "lots"),
        ("LEASEPOOL_MAX_POOLS", "0"),
        ("LEASEPOOL_LEASE_SECONDS", "0"),
        ("LEASEPOOL_LEASE_SECONDS", "inf"),
        ("LEASEPOOL_ACQUIRE_TIMEOUT", "nan"),
        ("LEASEPOOL_ACQUIRE_TIMEOUT", "soon"),
        ("LEASEPOOL_FAIR", "maybe"),
        ("LEASEPOOL_POOL", "a{b}"),
        ("LEASEPOOL_KEY_PREFIX", "x}"),
        ("LEASEPOOL_REDIS_URL", "http://localhost"),
    ],
)
def test_a_malformed_variable_is_named_with_its_value(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name) as caught:
        LeasePoolSettings.from_env({name: value})
    assert value in str(caught.value)


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ValueError, match="LEASEPOOL_REDIS_URL") as caught:
        LeasePoolSettings.from_env({"LEASEPOOL_REDIS_URL": "redis://:s3cret-pw@host:99999/0"})
    assert "s3cret-pw" not in str(caught.value)


async def test_redis_coordinator_from_env() -> None:
    env = {"LEASEPOOL_REDIS_URL": URL, "LEASEPOOL_POOL": "gpu", "LEASEPOOL_FAIR": "1"}
    coordinator = RedisCoordinator.from_env(env, capacity=5, recheck_interval=2.0)
    try:
        assert coordinator.pool == "gpu"
        shown = repr(coordinator)
        assert "capacity=5" in shown and "fair=True" in shown and "s3cret-pw" not in shown
    finally:
        await coordinator.close()
    with pytest.raises(ValueError, match="LEASEPOOL_REDIS_URL is not set"):
        RedisCoordinator.from_env({})
    with pytest.raises(ValueError, match="LEASEPOOL_CAPACITY"):
        RedisCoordinator.from_env({"LEASEPOOL_REDIS_URL": URL, "LEASEPOOL_CAPACITY": "x"})
