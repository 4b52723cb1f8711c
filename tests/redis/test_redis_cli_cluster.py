"""On a real local Redis Cluster, ``pools``, ``status`` and the exporter see the pools on
every master, given the URL of one node only."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from test_redis_cluster import cluster, pools_on_different_nodes  # the 3-node fixture

import redis
from _redis_server import RedisServer
from leasepool import GrantRequest, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK

__all__ = ["cluster"]

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def ignore(_: str) -> None:
    pass


def node_of(nodes: list[RedisServer], pool: str) -> int:
    """The port of the master that holds ``pool``'s slot."""
    slot = key_slot(pool.encode())
    client = redis.Redis(port=nodes[0].port, decode_responses=True)
    try:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
    finally:
        client.close()
    raise AssertionError(f"no master for slot {slot}")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leasepool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_and_exporter_see_pools_on_every_master(cluster: list[RedisServer]) -> None:
    pool_a, pool_b = pools_on_different_nodes()
    port_a, port_b = node_of(cluster, pool_a), node_of(cluster, pool_b)
    assert port_a != port_b
    client = RedisCluster(host="127.0.0.1", port=cluster[0].port)
    a = RedisCoordinator(client, pool=pool_a, capacity=1)
    b = RedisCoordinator(client, pool=pool_b, capacity=2)
    await a.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    await b.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        await a.acquire(GrantRequest("a1", "x", 60, 1), wait=False, deadline=None)
        await b.acquire(GrantRequest("b1", "y", 60, 1), wait=False, deadline=None)
        # The URL names the node that does NOT hold pool_a: it must be found anyway.
        url = f"redis://127.0.0.1:{port_b}/0"
        done = await asyncio.to_thread(cli, "pools", "--url", url, "--json")
        assert done.returncode == 0, done.stderr
        assert {pool_a, pool_b} <= set(json.loads(done.stdout))
        done = await asyncio.to_thread(cli, "status", "--url", url, "--json")
        assert done.returncode == 0, done.stderr
        rows = {row["pool"]: row for row in json.loads(done.stdout)}
        assert [lease["lease_id"] for lease in rows[pool_a]["leases"]] == ["a1"]
        assert [lease["lease_id"] for lease in rows[pool_b]["leases"]] == ["b1"]
        done = await asyncio.to_thread(cli, "status", pool_a, "--url", url)
        assert done.returncode == 0 and f"pool {pool_a}: 1/1 leased" in done.stdout
        await asyncio.to_thread(_exporter_sees, url, {pool_a: 1, pool_b: 1})
    finally:
        await a.close()
        await b.close()
        await client.aclose()


def _exporter_sees(url: str, leases: dict[str, int]) -> None:
    from test_redis_exporter import exporter, pool_value, scrape

    with exporter(url, "--interval", "30") as port:
        metrics = scrape(port)
    for pool, count in leases.items():
        assert pool_value(metrics, "leasepool_pool_leases", pool) == count, pool
