"""The ACL rule that docs/distributed.md tells operators to paste, proved end to end.

The rule is read from the docs themselves, so the page and the test cannot drift
apart. As that user, two managers go through a whole lease life: a grant,
automatic renewals, a waiter that heartbeats while it waits, a hand-off by event
when the holder releases, status, and an operator's revoke that the holder
learns by event only. Afterwards Redis's ``ACL LOG`` must be empty: nothing was
refused, not even in the background (heartbeats, claims, the subscriber).

A user without the rights gets a ``CoordinatorUnavailableError`` that names
the action and the redacted URL, never a redis-py exception, and never leaves a
slot taken.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import redis
from _redis_server import RedisServer
from leasepool import (
    CoordinatorUnavailableError,
    LeasedExecutorManager,
    RedisCoordinator,
    ReleaseOutcome,
)

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "distributed.md"
USER = "lp-user"
PASSWORD = "acl-Secret-pw-42"


def documented_rule() -> list[str]:
    """The rules of the ready-to-paste ``ACL SETUSER leasepool on >... `` line."""
    found = re.findall(r"^ACL SETUSER leasepool on >\S+ (.+)$", DOCS.read_text(), re.MULTILINE)
    assert len(found) == 1, "docs/distributed.md must show one ready-to-paste ACL rule"
    rules: list[str] = found[0].split()
    assert "-@all" in rules, rules
    return rules


def test_every_command_the_scripts_call_is_in_the_rule() -> None:
    """A quick guard ahead of the end-to-end test: a script that starts calling a new
    command needs the docs' rule to allow it."""
    called: set[str] = set()
    for script in (ROOT / "lua").glob("*.lua"):
        text = script.read_text()
        called |= {name.lower() for name in re.findall(r"redis\.p?call\(\s*'(\w+)'", text)}
    allowed = {rule[1:].lower() for rule in documented_rule() if rule.startswith("+")}
    assert "zadd" in called and "publish" in called  # the pattern still finds the calls
    assert called <= allowed, f"missing from the docs' ACL rule: {sorted(called - allowed)}"


def _admin(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=5, decode_responses=True)


def _set_user(server: RedisServer, rules: list[str]) -> None:
    admin = _admin(server)
    try:
        admin.execute_command("ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}", *rules)
        admin.execute_command("ACL", "LOG", "RESET")
    finally:
        admin.close()


def _acl_log(server: RedisServer) -> list[Any]:
    admin = _admin(server)
    try:
        return list(admin.execute_command("ACL", "LOG"))
    finally:
        admin.close()


def _url(server: RedisServer, db: int = 0, password: str = PASSWORD) -> str:
    return f"redis://{USER}:{password}@127.0.0.1:{server.port}/{db}"


def _manager(url: str, pool: str, *, auto_renew: bool = False) -> LeasedExecutorManager:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=1, recheck_interval=1.0)
    return LeasedExecutorManager(
        max_pools=1,
        workers_per_pool=1,
        coordinator=coordinator,
        auto_renew=auto_renew,
        lease_grace_seconds=1.0,
    )


async def _until(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _double(x: int) -> int:
    return 2 * x


@pytest.fixture
def acl_server(own_redis: RedisServer) -> Iterator[RedisServer]:
    _set_user(own_redis, documented_rule())
    yield own_redis


async def test_documented_rule_runs_a_whole_lease_life(
    acl_server: RedisServer, pool_name: str
) -> None:
    url = _url(acl_server)
    holder = _manager(url, pool_name, auto_renew=True)
    waiter = _manager(url, pool_name)
    admin = _admin(acl_server)
    key = f"leasepool:{{{pool_name}}}"
    await holder.start()
    await waiter.start()
    try:
        lease = await holder.acquire(lease_seconds=3)  # auto-renewed every second
        assert await lease.run(_double, 21) == 42
        first_hard = int(admin.hget(f"{key}:lease:{lease.lease_id}", "hard_ms") or 0)
        waiting = asyncio.ensure_future(waiter.acquire(lease_seconds=30, timeout=30))

        # The waiter's process heartbeats (its `waiters` score moves on) and the
        # holder's renewals reach Redis (its hard expiry moves on), as this user.
        await _until(lambda: admin.zcard(f"{key}:waiters") == 1, "the waiter's enqueue")
        beat = admin.zrange(f"{key}:waiters", 0, 0, withscores=True)[0][1]
        await _until(
            lambda: admin.zrange(f"{key}:waiters", 0, 0, withscores=True)[0][1] > beat,
            "a heartbeat",
        )
        await _until(
            lambda: int(admin.hget(f"{key}:lease:{lease.lease_id}", "hard_ms") or 0) > first_hard,
            "an automatic renewal",
        )
        assert lease.active and not waiting.done()

        assert await lease.release() is ReleaseOutcome.RELEASED
        handed = await asyncio.wait_for(waiting, 10)
        assert handed.fencing_token > lease.fencing_token
        assert await handed.run(_double, 4) == 8
        status = await holder.coordinator.status()
        assert [record.lease_id for record in status.leases] == [handed.lease_id]

        # Once its claim has written the lease hash, the waiter's manager renews
        # nothing and waits for nothing: it can learn of the revoke only from the
        # event, so this proves its subscription works.
        await _until(lambda: admin.exists(f"{key}:lease:{handed.lease_id}") == 1, "the claim")
        assert await holder.coordinator.revoke(handed.lease_id) is True
        await _until(lambda: handed.state == "lost", "the revoke event")
    finally:
        await waiter.stop()
        await holder.stop()
        admin.close()
    assert _acl_log(acl_server) == []
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    assert leftover == [], "stop() left tasks running"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEASEPOOL_")}
    return subprocess.run(
        [sys.executable, "-m", "leasepool", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


async def test_documented_rule_runs_the_operator_commands(
    acl_server: RedisServer, pool_name: str
) -> None:
    """The docs say the same rule suits operators who run the CLI."""
    url = _url(acl_server)
    manager = _manager(url, pool_name)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=30)
        for args in (["pools"], ["status", pool_name]):
            done = await asyncio.to_thread(_cli, *args, "--url", url)
            assert done.returncode == 0, f"leasepool {args[0]}: {done.stderr}"
            assert PASSWORD not in done.stdout + done.stderr
            assert pool_name in done.stdout or lease.lease_id in done.stdout, done.stdout
        await lease.release()
    finally:
        await manager.stop()
    assert _acl_log(acl_server) == []


def _assert_clean(exc: BaseException, action: str, url_shown: str) -> None:
    """leasepool's error, naming the action and the redacted URL; no password anywhere."""
    assert type(exc) is CoordinatorUnavailableError
    assert not isinstance(exc, redis.RedisError)
    text = str(exc)
    assert text.startswith(action), text
    assert url_shown in text, text
    assert PASSWORD not in "".join(traceback.format_exception(exc))  # the cause included


def _shown(server: RedisServer, db: int = 0) -> str:
    return f"redis://{USER}:***@127.0.0.1:{server.port}/{db}"


async def _fails(call: Callable[[], Awaitable[object]]) -> BaseException:
    with pytest.raises(CoordinatorUnavailableError) as caught:
        await call()
    return caught.value


async def test_a_user_with_no_commands_is_refused_at_start(
    own_redis: RedisServer, pool_name: str
) -> None:
    _set_user(own_redis, ["resetkeys", "resetchannels", "~leasepool:*", "&leasepool:*", "-@all"])
    manager = _manager(_url(own_redis), pool_name)
    exc = await _fails(manager.start)
    _assert_clean(exc, f"start pool {pool_name!r}", _shown(own_redis))
    assert "evalsha" in str(exc).lower()
    assert PASSWORD not in repr(manager.coordinator)


async def test_a_wrong_password_is_refused_and_redacted(
    acl_server: RedisServer, pool_name: str
) -> None:
    wrong = "not-the-" + PASSWORD
    manager = _manager(_url(acl_server, password=wrong), pool_name)
    with pytest.raises(CoordinatorUnavailableError) as caught:
        await manager.start()
    exc = caught.value
    assert str(exc).startswith(f"start pool {pool_name!r}")
    assert wrong not in "".join(traceback.format_exception(exc))


async def test_a_database_number_needs_select(own_redis: RedisServer, pool_name: str) -> None:
    """redis-py sends SELECT on connect for a database other than 0 (see the docs)."""
    _set_user(own_redis, documented_rule())
    exc = await _fails(_manager(_url(own_redis, db=3), pool_name).start)
    _assert_clean(exc, f"start pool {pool_name!r}", _shown(own_redis, 3))
    assert "select" in str(exc).lower()

    _set_user(own_redis, [*documented_rule(), "+select"])
    manager = _manager(_url(own_redis, db=3), pool_name)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=30)
        assert await lease.run(_double, 1) == 2
        assert await lease.release() is ReleaseOutcome.RELEASED
    finally:
        await manager.stop()
    assert _acl_log(own_redis) == []


@pytest.mark.parametrize("missing", ["+zadd", "+hset"])
async def test_a_command_missing_inside_the_acquire_script(
    own_redis: RedisServer, pool_name: str, missing: str
) -> None:
    """Redis refuses the script's command mid-script: the acquire fails clearly, and
    no slot is left taken (the admin still sees a free pool)."""
    _set_user(own_redis, [rule for rule in documented_rule() if rule != missing])
    manager = _manager(_url(own_redis), pool_name)
    await manager.start()
    try:
        exc = await _fails(lambda: manager.acquire(lease_seconds=30, wait=False))
        _assert_clean(exc, "acquire", _shown(own_redis))
        assert pool_name in str(exc)
        assert "refused" in str(exc)
    finally:
        await manager.stop()
    admin = _admin(own_redis)
    try:
        assert admin.zcard(f"leasepool:{{{pool_name}}}:leases") == 0
        refused = {str(entry.get("object")) for entry in admin.acl_log()}
    finally:
        admin.close()
    assert refused == {missing[1:]}, "Redis's ACL LOG names the refused command"
