"""The ``leasepool`` command against a real Redis: output, error paths and exit status.

Commands run as real processes (``python -m leasepool``) where the point is the
process boundary (pipes, terminals, signals, exit status); else through
``main()`` in a thread, with pytest's capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import redis
from _redis_server import RedisServer
from leasepool import GrantRequest, RedisCoordinator
from leasepool._cli import main
from leasepool._clock import MONOTONIC_CLOCK

pytestmark = pytest.mark.redis

CLI = [sys.executable, "-m", "leasepool"]


def ignore(_: str) -> None:
    pass


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Any:
    """Run the command as a process; its stdout, stderr and exit status."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@contextlib.asynccontextmanager
async def coordinator(url: str, pool: str, capacity: int = 1) -> AsyncIterator[RedisCoordinator]:
    c = RedisCoordinator.from_url(url, pool=pool, capacity=capacity)
    await c.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        yield c
    finally:
        await c.close()


async def hold(c: RedisCoordinator, lease_id: str, seconds: float = 60) -> None:
    await c.acquire(GrantRequest(lease_id, "op-test", seconds, 1), wait=False, deadline=None)


def queue_waiter(c: RedisCoordinator, lease_id: str) -> asyncio.Future[Any]:
    return asyncio.ensure_future(
        c.acquire(GrantRequest(lease_id, "waiter", 60, 1), wait=True, deadline=None)
    )


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(url: str, pool: str) -> dict[str, Any]:
    """Every key of the pool, with its type, content and TTL presence."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        found: dict[str, Any] = {}
        for key in client.scan_iter(match=f"leasepool:{{{pool}}}:*"):
            kind = client.type(key)
            read = {
                "hash": client.hgetall,
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                "string": client.get,
            }[kind]
            found[key] = (kind, read(key))
        return found
    finally:
        client.close()


def write_pool_by_hand(url: str, pool: str) -> None:
    """Capacity 1, one expired lease nobody reclaimed, and one live waiter's ticket: what a
    status that did housekeeping would change (reclaim the lease, grant the waiter)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        base = f"leasepool:{{{pool}}}"
        client.hset(f"{base}:meta", mapping={"capacity": 1, "fence": 5, "qseq": 1})
        client.zadd(f"{base}:leases", {"old": now_ms - 5000})
        client.hset(f"{base}:lease:old", mapping={"owner": "gone", "token": 5})
        client.zadd(f"{base}:queue", {"w1": 1})
        client.hset(f"{base}:tickets", "w1", "w|60000|1000|origin-x|4242|host-x|waiter")
        client.zadd(f"{base}:waiters", {"origin-x": now_ms + 60_000})
    finally:
        client.close()


async def test_status_and_pools_write_nothing(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pool_by_hand(redis_url, pool_name)
    before = snapshot(redis_url, pool_name)
    code, out, err = await cli(capsys, "status", pool_name, "--url", redis_url, "--json")
    assert (code, err) == (0, "")
    (row,) = json.loads(out)
    assert row["capacity"] == 1 and row["leases"] == []
    assert row["waiting"] == 1 and row["waiters"] == [{"host": "host-x", "pid": 4242, "count": 1}]
    code, out, _ = await cli(capsys, "status", "--url", redis_url)
    assert code == 0 and f"pool {pool_name}: 0/1 leased, 1 waiting" in out
    code, out, _ = await cli(capsys, "pools", "--url", redis_url, "--json")
    assert code == 0 and pool_name in json.loads(out)
    code, out, _ = await cli(capsys, "capacity", pool_name, "--url", redis_url)
    assert (code, out) == (0, "1\n")
    # The expired lease is still there and the waiter was not granted its slot.
    assert snapshot(redis_url, pool_name) == before


async def test_status_shows_live_leases_and_waiters_per_process(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with coordinator(redis_url, pool_name) as c:
        await hold(c, "held")
        waiters = [queue_waiter(c, f"w{i}") for i in range(2)]
        await asyncio.sleep(0.3)
        try:
            code, out, err = await cli(capsys, "status", pool_name, "--url", redis_url)
            assert (code, err) == (0, "")
            assert f"pool {pool_name}: 1/1 leased, 2 waiting" in out
            assert f":{os.getpid()} 2" in out
            assert "held" in out and "op-test" in out
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


async def test_unknown_pool_fails_with_a_clear_message(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ["status", pool_name],
        ["status", pool_name, "--watch", "0.2"],
        ["capacity", pool_name],
        ["revoke", pool_name, "some-lease"],
    ):
        code, out, err = await cli(capsys, *args, "--url", redis_url)
        assert code == 1, args
        assert out == "", args
        assert f"no pool {pool_name!r} under key prefix 'leasepool'" in err, args
        assert "Traceback" not in err


async def test_one_damaged_pool_does_not_hide_the_others(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = f"{pool_name}-bad"
    client = redis.Redis.from_url(redis_url)
    client.set(f"leasepool:{{{damaged}}}:leases", "not a zset")
    client.hset(f"leasepool:{{{damaged}}}:meta", "capacity", "2")
    try:
        async with coordinator(redis_url, pool_name) as c:
            await hold(c, "fine")
            code, out, err = await cli(capsys, "status", "--url", redis_url)
            assert code == 1
            assert f"pool {pool_name}: 1/1 leased" in out and "fine" in out
            assert f"leasepool:{{{damaged}}}:leases is a string, not a zset" in err
            assert "script:" not in err and "Traceback" not in err
            code, out, err = await cli(capsys, "status", "--url", redis_url, "--json")
            rows = {row["pool"]: row for row in json.loads(out)}
            assert code == 1 and rows[pool_name]["leases"][0]["lease_id"] == "fine"
            assert "not a zset" in rows[damaged]["error"]
        # A lease hash of the wrong type is named too.
        client.delete(f"leasepool:{{{damaged}}}:leases")
        async with coordinator(redis_url, damaged, capacity=2) as d:
            await hold(d, "odd")
            client.delete(f"leasepool:{{{damaged}}}:lease:odd")
            client.rpush(f"leasepool:{{{damaged}}}:lease:odd", "x")
            code, out, err = await cli(capsys, "status", damaged, "--url", redis_url)
            assert code == 1 and f"leasepool:{{{damaged}}}:lease:odd is not a hash" in err
        client.hset(f"leasepool:{{{damaged}}}:meta", "capacity", "2.5")
        code, _, err = await cli(capsys, "capacity", damaged, "--url", redis_url)
        assert code == 1
        assert f"leasepool:{{{damaged}}}:meta field capacity is not an integer" in err
    finally:
        client.delete(*client.keys(f"leasepool:{{{damaged}}}:*"))
        client.close()


async def test_revoke_and_capacity_exit_status_and_json(
    redis_url: str, pool_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with coordinator(redis_url, pool_name, capacity=2) as c:
        await hold(c, "held")
        url = ["--url", redis_url]
        code, out, err = await cli(capsys, "revoke", pool_name, "nope", *url)
        assert (code, out) == (1, "") and "no live lease 'nope'" in err
        code, out, _ = await cli(capsys, "revoke", pool_name, "held", *url, "--json")
        assert code == 0 and json.loads(out) == {
            "pool": pool_name, "lease_id": "held", "revoked": True,
        }  # fmt: skip
        code, out, _ = await cli(capsys, "capacity", pool_name, "0", *url, "--json")
        assert code == 0 and json.loads(out) == {
            "pool": pool_name, "old": 2, "capacity": 0, "paused": True,
        }  # fmt: skip
        code, out, _ = await cli(capsys, "capacity", pool_name, *url)
        assert (code, out) == (0, "0 (paused)\n")
        code, out, _ = await cli(capsys, "status", pool_name, *url)
        assert code == 0 and "0/0 leased (paused: capacity 0)" in out
        code, out, err = await cli(capsys, "capacity", pool_name, "-1", *url)
        assert code == 2 and "from 0 (paused) to 1000000" in err


def test_watch_json_into_head_ends_quietly(redis_url: str, pool_name: str) -> None:
    """A real shell pipe: head exits after two lines, the command must end quietly."""
    run("capacity", pool_name, "3", "--url", redis_url)
    command = f"{shlex.join([*CLI, 'status', pool_name, '--watch', '0.2', '--json'])} | head -n 2"
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LEASEPOOL_REDIS_URL": redis_url},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        frame = json.loads(line)  # one JSON object per line
        assert [p["pool"] for p in frame["pools"]] == [pool_name]
    assert "\x1b" not in done.stdout


def test_watch_into_a_pipe_writes_no_escape_codes(redis_url: str, pool_name: str) -> None:
    run("capacity", pool_name, "3", "--url", redis_url)
    process = subprocess.Popen(
        [*CLI, "status", pool_name, "--watch", "0.2", "--url", redis_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(["head", "-n", "6"], stdin=process.stdout, stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()  # only head reads it now, so head's exit closes the pipe
    out, _ = head.communicate(timeout=30)
    assert process.wait(timeout=30) == 0
    assert process.stderr is not None
    with process.stderr:
        assert process.stderr.read() == b""
    assert b"\x1b" not in out
    assert out.count(f"pool {pool_name}: 0/3 leased".encode()) >= 2


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    parent, child = pty.openpty()
    try:
        yield parent, child
    finally:
        for fd in (parent, child):
            with contextlib.suppress(OSError):
                os.close(fd)


def read_for(fd: int, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
    return data


def test_watch_on_a_terminal_redraws_in_place_and_ctrl_c_ends_it(
    redis_url: str, pool_name: str, terminal: tuple[int, int]
) -> None:
    parent, child = terminal
    run("capacity", pool_name, "3", "--url", redis_url)
    process = subprocess.Popen(
        [*CLI, "status", pool_name, "--watch", "0.2", "--url", redis_url],
        stdout=child,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        shown = read_for(parent, 3.0)
        assert shown.count(b"\x1b[H") >= 2, shown  # the cursor goes home for every frame
        assert f"pool {pool_name}: 0/3 leased".encode() in shown
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            read_for(parent, 0.2)  # a terminal keeps reading: never let the writer block
        assert process.wait(timeout=5) == 130
        assert process.stderr is not None
        with process.stderr:
            err = process.stderr.read().decode()
        assert "leasepool status: interrupted after" in err and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_one_url_option_on_every_command(redis_url: str, pool_name: str) -> None:
    unset = {"LEASEPOOL_REDIS_URL": ""}
    for command in (["status"], ["pools"], ["capacity", "p"], ["revoke", "p", "x"]):
        done = run(*command, env=unset)
        assert done.returncode == 2 and "no Redis URL: pass --url or set LEASEPOOL_REDIS_URL" in (
            done.stderr
        ), command
    done = run("pools", "--url", "redis://:secret-pw@127.0.0.1:1/0", env=unset)
    assert done.returncode == 1 and "cannot reach Redis" in done.stderr
    assert "secret-pw" not in done.stderr and "Traceback" not in done.stderr
    done = run("pools", "--url", "http://x", env=unset)
    assert done.returncode == 2 and "url must start with redis://" in done.stderr
    # demo takes the environment's URL like every other command, and --redis still works.
    args = ["demo", "--pool", pool_name, "--processes", "2", "--tasks", "2", "--json"]
    done = run(*args, env={"LEASEPOOL_REDIS_URL": redis_url}, timeout=60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["summary"]["cap_held"] is True and events[-1]["summary"]["peak"] <= 2
    done = run(
        "demo", "--redis", redis_url, "--pool", pool_name, "--processes", "1", "--tasks", "1",
        env=unset, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0 and "--redis is deprecated" in done.stderr
    assert "cap held" in done.stdout


READ_ONLY_ACL = (
    "~leasepool:* resetchannels -@all +@read +@connection +@transaction "
    "+evalsha_ro +eval_ro +script|load +time"
)


async def test_a_read_only_acl_user_can_look_but_not_touch(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = redis.Redis(port=own_redis.port)
    admin.execute_command(
        "ACL", "SETUSER", "viewer", "on", ">viewer-pw", "resetkeys", *READ_ONLY_ACL.split()
    )
    admin.close()
    url = f"redis://viewer:viewer-pw@127.0.0.1:{own_redis.port}/0"
    async with coordinator(own_redis.url, "ro", capacity=1) as c:
        await hold(c, "held")
        waiter = queue_waiter(c, "queued")
        await asyncio.sleep(0.2)
        try:
            code, out, err = await cli(capsys, "status", "--url", url)
            assert (code, err) == (0, ""), err
            assert "pool ro: 1/1 leased, 1 waiting" in out and "held" in out
            assert await cli(capsys, "pools", "--url", url) == (0, "ro\n", "")
            assert await cli(capsys, "capacity", "ro", "--url", url) == (0, "1\n", "")
            code, out, err = await cli(capsys, "revoke", "ro", "held", "--url", url)
            assert code == 1 and "no permissions" in err and "viewer-pw" not in err
            code, out, err = await cli(capsys, "capacity", "ro", "5", "--url", url)
            assert code == 1 and "no permissions" in err
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
