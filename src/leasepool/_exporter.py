"""``leasepool exporter``: Prometheus metrics of every pool under a key prefix.

Serves ``/metrics`` over HTTP (``prometheus_client``'s server, in a thread).
Invariants:

* Read-only: a reading is SCAN for the pools plus ``lua/status.lua`` (EVALSHA_RO)
  and the listed leases' hashes per pool, so a read-only ACL user can run it.
* At most one reading of Redis per ``--interval``, whatever the number of
  scrapers or pools: a scrape within the interval is answered from the last
  reading; concurrent scrapes of a stale reading share one new reading.
* A pool that cannot be read gets ``leasepool_pool_up{pool} 0`` and no other
  series; the other pools are still exported. Redis unreachable gives
  ``leasepool_exporter_up 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from leasepool._cli_common import EXIT_OK, CommandError, say
from leasepool._cli_status import Frame, open_admin, read_frame
from leasepool._errors import LeasePoolError
from leasepool._redis.admin import PoolReport, RedisAdmin

READ_TIMEOUT = 30.0

POOL_GAUGES: dict[str, tuple[str, Callable[[PoolReport], float | None]]] = {
    "capacity": (
        "Stored capacity (0: paused; absent when unset)",
        lambda r: None if r.status.capacity is None else float(r.status.capacity),
    ),
    "leases": ("Live leases", lambda r: float(r.live)),
    "waiting": (
        "Callers waiting, in processes whose heartbeat is current",
        lambda r: r.status.waiting,
    ),
    "queued": ("Tickets in the queue (live or not yet found dead)", lambda r: float(r.queued)),
    "expired_unreclaimed": (
        "Expired leases no coordinator has reclaimed yet",
        lambda r: float(r.expired),
    ),
    "oldest_lease_age_seconds": (
        "Age of the oldest listed live lease",
        lambda r: None if r.oldest_age_ms is None else r.oldest_age_ms / 1000,
    ),
    "next_expiry_seconds": (
        "Time until the soonest hard expiry of a live lease",
        lambda r: None if r.next_expiry_ms is None else r.next_expiry_ms / 1000,
    ),
}
"""``leasepool_pool_<name>{pool}`` gauges: help, and the value (None: no sample)."""


@dataclass
class Reading:
    """One reading of Redis: when it was taken, what it found, and whether it worked."""

    taken: float
    frame: Frame
    up: bool
    seconds: float


class PoolsCollector(Collector):
    """Collects every pool's gauges from a reading at most ``interval`` seconds old.

    ``collect`` runs in the HTTP server's threads; Redis is read on ``loop`` (the
    admin's client belongs to it).
    """

    def __init__(
        self,
        admin: RedisAdmin,
        *,
        interval: float,
        loop: asyncio.AbstractEventLoop,
        limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin
        self._interval = interval
        self._loop = loop
        self._limit = limit
        self._clock = clock
        self._reading: Reading | None = None
        self._lock: asyncio.Lock | None = None
        self.readings = 0
        """How many times Redis was read (exported as ``leasepool_exporter_reads_total``)."""

    async def fresh(self) -> Reading:
        """The last reading if younger than the interval, else a new one (one at a time)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            last = self._reading
            if last is not None and self._clock() - last.taken < self._interval:
                return last
            started = self._clock()
            try:
                frame = await read_frame(self._admin, None, self._limit)
                up = True
            except LeasePoolError as exc:
                frame, up = Frame(errors={"": str(exc)}), False
            self.readings += 1
            self._reading = Reading(started, frame, up, self._clock() - started)
            return self._reading

    def collect(self) -> Iterator[Metric]:
        """The metrics of the current reading (taken on the admin's loop)."""
        future = asyncio.run_coroutine_threadsafe(self.fresh(), self._loop)
        reading = future.result(timeout=READ_TIMEOUT)
        yield from self._exporter_metrics(reading)
        yield from self._pool_metrics(reading)

    def _exporter_metrics(self, reading: Reading) -> Iterator[Metric]:
        up = GaugeMetricFamily("leasepool_exporter_up", "1 if the last reading of Redis worked")
        up.add_metric([], 1.0 if reading.up else 0.0)
        yield up
        reads = CounterMetricFamily("leasepool_exporter_reads", "Readings of Redis so far")
        reads.add_metric([], float(self.readings))
        yield reads
        took = GaugeMetricFamily("leasepool_exporter_read_seconds", "Duration of the last reading")
        took.add_metric([], reading.seconds)
        yield took

    def _pool_metrics(self, reading: Reading) -> Iterator[Metric]:
        up = GaugeMetricFamily("leasepool_pool_up", "1 if the pool could be read", labels=["pool"])
        for report in reading.frame.reports:
            up.add_metric([report.status.pool], 1.0)
        for pool in reading.frame.errors:
            if pool:
                up.add_metric([pool], 0.0)
        yield up
        for name, (help_text, value_of) in POOL_GAUGES.items():
            gauge = GaugeMetricFamily(f"leasepool_pool_{name}", help_text, labels=["pool"])
            for report in reading.frame.reports:
                value = value_of(report)
                if value is not None:
                    gauge.add_metric([report.status.pool], float(value))
            yield gauge


def _announce(args: argparse.Namespace, address: str, port: int, admin: RedisAdmin) -> None:
    url = f"http://{address}:{port}/metrics"
    if args.json:
        print(json.dumps({"event": "serving", "url": url, "prefix": admin.key_prefix}), flush=True)
    else:
        say(args, f"serving {url} for pools under {admin.key_prefix!r}; Ctrl-C to stop")


async def serve(args: argparse.Namespace) -> int:
    """Serve ``/metrics`` until interrupted (KeyboardInterrupt ends it)."""
    client, admin = await open_admin(args)
    loop = asyncio.get_running_loop()
    collector = PoolsCollector(admin, interval=args.interval, loop=loop)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server: Any = None
    try:
        first = await collector.fresh()
        if not first.up:  # fail at once when Redis cannot be read at all
            raise CommandError(first.frame.errors[""])
        server, thread = start_http_server(args.port, addr=args.address, registry=registry)
        _announce(args, args.address, args.port, admin)
        await asyncio.Event().wait()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        await client.aclose()
    return EXIT_OK
