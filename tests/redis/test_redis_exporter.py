"""``leasepool exporter`` as a real process, scraped over HTTP while leases are held and
callers wait; and ``leasepool.prometheus.ManagerCollector`` on a live manager."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import redis  # noqa: E402
from _redis_server import free_port  # noqa: E402
from leasepool import GrantRequest, LeasedExecutorManager, RedisCoordinator  # noqa: E402
from leasepool._clock import MONOTONIC_CLOCK  # noqa: E402
from leasepool.prometheus import ManagerCollector  # noqa: E402

pytestmark = pytest.mark.redis

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def ignore(_: str) -> None:
    pass


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def pool_value(metrics: dict[Any, float], name: str, pool: str) -> float | None:
    return metrics.get((name, (("pool", pool),)))


@contextlib.contextmanager
def exporter(url: str, *args: str) -> Iterator[int]:
    """A running ``leasepool exporter``; yields its port once /metrics answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "leasepool", "exporter", "--url", url, "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the exporter never answered"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@contextlib.asynccontextmanager
async def started(url: str, pool: str, capacity: int) -> AsyncIterator[RedisCoordinator]:
    c = RedisCoordinator.from_url(url, pool=pool, capacity=capacity)
    await c.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    try:
        yield c
    finally:
        await c.close()


async def test_exporter_shows_every_pool_while_leases_are_held_and_callers_wait(
    redis_url: str, pool_name: str
) -> None:
    other = f"{pool_name}-b"
    async with started(redis_url, pool_name, 1) as a, started(redis_url, other, 3) as b:
        await a.acquire(GrantRequest("a1", "o", 60, 1), wait=False, deadline=None)
        await b.acquire(GrantRequest("b1", "o", 60, 1), wait=False, deadline=None)
        waiters = [
            asyncio.ensure_future(
                a.acquire(GrantRequest(f"w{i}", "o", 60, 1), wait=True, deadline=None)
            )
            for i in range(2)
        ]
        await asyncio.sleep(0.5)
        try:
            with exporter(redis_url, "--interval", "30") as port:
                metrics = await asyncio.to_thread(scrape, port)
                assert metrics[("leasepool_exporter_up", ())] == 1
                assert pool_value(metrics, "leasepool_pool_up", pool_name) == 1
                assert pool_value(metrics, "leasepool_pool_capacity", pool_name) == 1
                assert pool_value(metrics, "leasepool_pool_leases", pool_name) == 1
                assert pool_value(metrics, "leasepool_pool_waiting", pool_name) == 2
                assert pool_value(metrics, "leasepool_pool_queued", pool_name) == 2
                assert pool_value(metrics, "leasepool_pool_capacity", other) == 3
                assert pool_value(metrics, "leasepool_pool_leases", other) == 1
                assert pool_value(metrics, "leasepool_pool_waiting", other) == 0
                next_expiry = pool_value(metrics, "leasepool_pool_next_expiry_seconds", other)
                assert next_expiry is not None and 30 < next_expiry <= 61
                age = pool_value(metrics, "leasepool_pool_oldest_lease_age_seconds", other)
                assert age is not None and 0 <= age < 30
                # Within the interval, scrapes are answered from one reading.
                reads = metrics[("leasepool_exporter_reads_total", ())]
                for _ in range(3):
                    again = await asyncio.to_thread(scrape, port)
                assert again[("leasepool_exporter_reads_total", ())] == reads
                # The sample alert rules only use series the exporter serves.
                served = {name for name, _ in metrics}
                assert set(re.findall(r"\bleasepool_[a-z_]+", ALERTS.read_text())) <= served
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


async def test_exporter_rereads_after_the_interval_and_reports_a_damaged_pool(
    redis_url: str, pool_name: str
) -> None:
    damaged = f"{pool_name}-bad"
    client = redis.Redis.from_url(redis_url)
    client.hset(f"leasepool:{{{damaged}}}:meta", "capacity", "lots")
    try:
        async with started(redis_url, pool_name, 2):
            with exporter(redis_url, "--interval", "0.5") as port:
                first = await asyncio.to_thread(scrape, port)
                assert pool_value(first, "leasepool_pool_up", damaged) == 0
                assert pool_value(first, "leasepool_pool_capacity", damaged) is None
                assert pool_value(first, "leasepool_pool_up", pool_name) == 1
                assert pool_value(first, "leasepool_pool_leases", pool_name) == 0
                await asyncio.sleep(1.0)
                second = await asyncio.to_thread(scrape, port)
                reads = ("leasepool_exporter_reads_total", ())
                assert second[reads] > first[reads]
    finally:
        client.delete(f"leasepool:{{{damaged}}}:meta")
        client.close()


def test_exporter_fails_fast_without_redis() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leasepool", "exporter", "--url", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1 and "cannot reach Redis" in done.stderr
    assert "Traceback" not in done.stderr


async def test_manager_collector_exports_the_managers_counters(
    redis_url: str, pool_name: str
) -> None:
    coordinator = RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1)
    manager = LeasedExecutorManager(
        backend="thread", max_pools=1, workers_per_pool=1, coordinator=coordinator
    )
    await manager.start()
    registry = prometheus_client.CollectorRegistry()
    registry.register(ManagerCollector(manager, labels={"app": "test"}))
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        lease = await manager.acquire(owner="x")
        waiter = asyncio.ensure_future(manager.acquire(owner="y", timeout=0.3))
        await asyncio.sleep(0.1)
        # Scraped from the HTTP server's thread while the loop holds a lease and a caller waits.
        metrics = await asyncio.to_thread(scrape, port)
        labels = (("app", "test"), ("pool", pool_name))
        assert metrics[("leasepool_acquires_total", labels)] == 1
        assert metrics[("leasepool_leased", labels)] == 1
        assert metrics[("leasepool_waiting", labels)] == 1
        with pytest.raises(TimeoutError):
            await waiter
        await lease.release()
        metrics = await asyncio.to_thread(scrape, port)
        assert metrics[("leasepool_timeouts_total", labels)] == 1
        assert metrics[("leasepool_waits_total", labels)] == 1
        assert metrics[("leasepool_releases_total", labels)] == 1
        assert metrics[("leasepool_leased", labels)] == 0
        assert metrics[("leasepool_revocations_total", labels)] == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        await manager.stop()


def test_manager_collector_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="manager"):
        ManagerCollector(object())
    with pytest.raises(ValueError, match="labels"):
        ManagerCollector(LeasedExecutorManager(max_pools=1), labels={"pool": "x"})
