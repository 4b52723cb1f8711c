"""A pool on a real local Redis Cluster: three ``redis-server --cluster-enabled yes`` nodes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

import redis
from _redis_server import RedisServer, free_port
from leasepool import GrantRequest, LeaseUnavailableError, RedisCoordinator, ReleaseOutcome
from leasepool._clock import MONOTONIC_CLOCK
from leasepool._redis.admin import RedisAdmin

SERVER, CLI = shutil.which("redis-server"), shutil.which("redis-cli")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(
        SERVER is None or CLI is None,
        reason="the cluster test needs redis-server and redis-cli on PATH",
    ),
]


@pytest.fixture
def cluster() -> Iterator[list[RedisServer]]:
    assert SERVER is not None and CLI is not None
    nodes = [
        RedisServer(
            SERVER,
            port=free_port(below=45000),
            extra_args=(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ),
        )
        for _ in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for node in nodes:
            client = redis.Redis(port=node.port, decode_responses=True)
            try:
                while client.cluster("info")["cluster_state"] != "ok":
                    assert time.monotonic() < deadline, "the cluster never became ok"
                    time.sleep(0.1)
            finally:
                client.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def pools_on_different_nodes() -> tuple[str, str]:
    """Two pool names whose hash tags land in different thirds of the slot range."""
    first = "gpu"
    second = next(
        f"api-{i}"
        for i in range(1000)
        if abs(key_slot(f"api-{i}".encode()) - key_slot(b"gpu")) > 8000
    )
    return first, second


async def test_pools_work_on_a_real_cluster(cluster: list[RedisServer]) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster[0].port)
    pool_a, pool_b = pools_on_different_nodes()
    a = RedisCoordinator(client, pool=pool_a, capacity=1)
    b = RedisCoordinator(client, pool=pool_b, capacity=2)
    lost: list[str] = []
    await a.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    await b.start(clock=MONOTONIC_CLOCK, on_lost=lost.append)
    try:
        held = await a.acquire(GrantRequest("a1", "x", 30, 1), wait=False, deadline=None)
        with pytest.raises(LeaseUnavailableError):
            await a.acquire(GrantRequest("a2", "x", 30, 1), wait=False, deadline=None)
        b1 = await b.acquire(GrantRequest("b1", "y", 30, 1), wait=False, deadline=None)
        await b.acquire(GrantRequest("b2", "y", 30, 1), wait=False, deadline=None)
        waiter = asyncio.ensure_future(
            a.acquire(GrantRequest("a3", "x", 30, 1), wait=True, deadline=None)
        )
        await asyncio.sleep(0.2)
        assert await a.release(held.lease_id) is ReleaseOutcome.RELEASED
        granted = await asyncio.wait_for(waiter, 5)
        assert granted.fencing_token > held.fencing_token
        renewed = await b.renew({"b1": 60, "b2": 60, "gone": 5})
        assert renewed["b1"] is not None and renewed["gone"] is None
        assert renewed["b1"].hard_deadline > b1.hard_deadline
        admin = RedisAdmin(client)
        assert {pool_a, pool_b} <= set(await admin.pools())
        assert [r.lease_id for r in (await admin.status(pool_a)).leases] == ["a3"]
        assert await admin.revoke(pool_b, "b2") is True
        for _ in range(300):
            if "b2" in lost:
                break
            await asyncio.sleep(0.01)
        assert "b2" in lost, "the revoke event reached the holder through cluster pub/sub"
        slots = {key_slot(k.encode()) for k in (a.keys.meta, a.keys.leases, a.keys.lease("a3"))}
        assert len(slots) == 1
        assert key_slot(a.keys.meta.encode()) != key_slot(b.keys.meta.encode())
    finally:
        await a.close()
        await b.close()
        await client.aclose()
