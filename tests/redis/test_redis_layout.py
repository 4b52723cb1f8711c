"""What an operator sees in Redis, and what ships: key layout, records, scripts, wheel."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from leasepool import GrantRequest, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.admin import RedisAdmin
from leasepool._redis.scripts import SCRIPT_NAMES, loaded_source, script_source

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.redis


def ignore(_: str) -> None:
    pass


def redis_cli(url: str, *args: str) -> list[str]:
    """Run the real ``redis-cli`` and return its output lines."""
    cli = shutil.which("redis-cli")
    assert cli is not None
    out = subprocess.run(
        [cli, "-u", url, "--no-raw", *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [re.sub(r'^\s*\d+\)\s*|"', "", line).strip() for line in out.splitlines()]


async def read_keys(client: Any, url: str, leases_key: str, lease_key: str) -> tuple[Any, Any]:
    """ZRANGE ... WITHSCORES and HGETALL, through redis-cli when present, else redis-py."""
    if shutil.which("redis-cli"):
        zrange = redis_cli(url, "ZRANGE", leases_key, "0", "-1", "WITHSCORES")
        flat = redis_cli(url, "HGETALL", lease_key)
        return (
            [(zrange[i], float(zrange[i + 1])) for i in range(0, len(zrange), 2)],
            dict(zip(flat[::2], flat[1::2], strict=True)),
        )
    zrange = await client.zrange(leases_key, 0, -1, withscores=True)
    return zrange, await client.hgetall(lease_key)


async def test_operators_see_who_holds_what_until_when(
    redis_client: Any, redis_url: str, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=2)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        grant = await coordinator.acquire(
            GrantRequest("lease-a", "billing-job", 30, 5), wait=False, deadline=None
        )
        leases_key = f"leasepool:{{{pool_name}}}:leases"
        lease_key = f"leasepool:{{{pool_name}}}:lease:lease-a"
        assert coordinator.keys.leases == leases_key
        zrange, record = await read_keys(redis_client, redis_url, leases_key, lease_key)
        assert [member for member, _ in zrange] == ["lease-a"]
        hard_ms = int(zrange[0][1])
        assert record["owner"] == "billing-job"
        assert record["host"] == socket.gethostname()
        assert record["pid"] == str(os.getpid())
        assert record["token"] == str(grant.fencing_token)
        assert int(record["hard_ms"]) == hard_ms
        assert int(record["soft_ms"]) == int(record["acquired_ms"]) + 30_000
        assert hard_ms == int(record["soft_ms"]) + 5_000
        seconds, _ = await redis_client.time()
        assert abs(int(record["acquired_ms"]) - int(seconds) * 1000) < 5_000, "server time"
        # The record cannot outlive its lease by much: it carries a TTL near hard expiry.
        expire_at = await redis_client.pexpiretime(lease_key)
        assert hard_ms < expire_at <= hard_ms + 60_000
        meta = await redis_client.hgetall(coordinator.keys.meta)
        assert meta["capacity"] == "2"
        assert meta["fence"] == str(grant.fencing_token)
        # All of the pool's keys share one hash tag, hence one Cluster slot.
        keys = [k async for k in redis_client.scan_iter(match=f"leasepool:{{{pool_name}}}:*")]
        assert sorted(keys) == sorted([leases_key, lease_key, coordinator.keys.meta])
        assert len({key_slot(k.encode()) for k in keys}) == 1
    finally:
        await coordinator.close()


async def test_stored_capacity_wins_and_a_warning_is_logged(
    redis_url: str, pool_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=2)
    await first.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    second = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=5)
    with caplog.at_level(logging.WARNING, logger="leasepool"):
        await second.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        assert second.capacity == 2
        assert any("capacity 2" in r.getMessage() for r in caplog.records)
        for i in range(2):
            await second.acquire(GrantRequest(f"l{i}", "", 30, 0), wait=False, deadline=None)
        with pytest.raises(Exception, match="capacity"):
            await second.acquire(GrantRequest("l2", "", 30, 0), wait=False, deadline=None)
    finally:
        await second.close()
        await first.close()


async def test_admin_lists_pools_reports_revokes_and_resizes(
    redis_client: Any, redis_url: str, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1)
    lost: list[str] = []
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    try:
        admin = RedisAdmin(redis_client)
        assert pool_name in await admin.pools()
        await coordinator.acquire(GrantRequest("held", "me", 30, 0), wait=False, deadline=None)
        status = await admin.status(pool_name)
        assert status.capacity == 1
        assert [(r.lease_id, r.owner, r.pid) for r in status.leases] == [
            ("held", "me", os.getpid())
        ]
        assert status.leases[0].hard_ms - status.now_ms > 25_000
        assert await admin.set_capacity(pool_name, 3) == 1
        assert (await admin.status(pool_name)).capacity == 3
        assert await admin.revoke(pool_name, "nope") is False
        assert await admin.revoke(pool_name, "held") is True
        for _ in range(200):
            if lost:
                break
            await __import__("asyncio").sleep(0.01)
        assert lost == ["held"], "the holder heard of the revoke by event"
        assert (await admin.status(pool_name)).leases == ()
        assert await admin.status("no-such-pool-" + pool_name) is not None
    finally:
        await coordinator.close()


def test_every_script_opens_with_a_header_and_uses_server_time() -> None:
    shared = (ROOT / "lua" / "_shared.lua").read_text()
    assert shared.startswith("-- _shared.lua:")
    assert "redis.call('TIME')" in shared
    for name in SCRIPT_NAMES:
        text = (ROOT / "lua" / f"{name}.lua").read_text()
        assert script_source(name) == text
        header = text.split("\n\n", 1)[0]
        assert header.startswith(f"-- {name}.lua:"), name
        assert "KEYS[1" in header and "ARGV[1]" in header and "Returns" in header, name
        assert "Cost:" in header, name
        # Server time only: TIME directly, or through _shared.lua's clock().
        assert "redis.call('TIME')" in text or "= clock()" in text, name
        if name != "init":
            assert_composed(name, shared, text)


def assert_composed(name: str, shared: str, text: str) -> None:
    """What runs is _shared.lua's base, the script, and _shared.lua's helpers once, before
    the script or at its "-- @helpers" line (lua/_shared.lua, scripts.py)."""
    at = shared.index("\n-- @helpers") + 1
    base, helpers = shared[:at], shared[at:]
    loaded = loaded_source(name)
    assert loaded.startswith(base), name
    assert loaded.count(helpers) == 1, name
    rest = iter(loaded[len(base) :].replace(helpers, "").splitlines())
    assert all(line in rest for line in text.splitlines()), name  # in order
    if "\n-- @helpers" in text:
        fast = text[: text.index("\n-- @helpers")]
        assert loaded.index(fast) < loaded.index(helpers), name


def test_scripts_touch_only_the_keys_they_are_given() -> None:
    """No key name is built inside a script: every key comes from KEYS[]."""
    sources = {name: (ROOT / "lua" / f"{name}.lua").read_text() for name in SCRIPT_NAMES}
    sources["_shared"] = (ROOT / "lua" / "_shared.lua").read_text()
    for name, text in sources.items():
        for command, first in re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", text):
            if command == "TIME":
                continue
            if command == "PUBLISH":  # a channel, not a key; its name derives from KEYS[1]
                assert first in ("EVENTS", "CHANNEL .. origin"), (name, command, first)
                continue
            # Either KEYS[...] itself, or a variable that only ever holds a KEYS[...] value.
            assert first.startswith("KEYS[") or first == "key", (name, command, first)
        for assigned in re.findall(r"\blocal key = ([^\n]+)", text):
            assert assigned.startswith("KEYS["), (name, assigned)
        for passed in re.findall(r"\bwrite_lease\(([^,]+),", text):
            assert passed.startswith("KEYS[") or passed in ("key", "key, owner"), (name, passed)
        for passed in re.findall(r"\bredis\.call\('TYPE', ([^)]+)\)", text):
            assert passed.startswith("KEYS["), (name, passed)
    assert "local EVENTS = string.sub(KEYS[1], 1, -5) .. 'events'" in sources["_shared"]


def test_the_wheel_ships_the_lua_scripts(tmp_path: Path) -> None:
    # Without hatchling installed, build fetches it into an isolated environment.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-isolation"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            *isolation,
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("leasepool-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SCRIPT_NAMES:
        assert f"leasepool/lua/{name}.lua" in names, sorted(names)
    assert "leasepool/_redis/scripts.py" in names
