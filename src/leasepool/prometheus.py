"""Prometheus metrics for a :class:`~leasepool.LeasedExecutorManager` (``leasepool[prometheus]``).

Register a :class:`ManagerCollector` on a ``prometheus_client`` registry and
every scrape reads the manager's ``stats()``: its counters (acquires, waits,
timeouts, rejections, expiries, renewals, revocations) and gauges (leased,
waiting, executors). Nothing is counted twice: the collector keeps no state of
its own, so the numbers are exactly the manager's.

Invariants: a scrape never blocks the manager's event loop for more than one
``stats()`` call; from another thread (``prometheus_client``'s HTTP server) the
call is handed to the loop the manager runs on, because ``stats()`` is not
thread-safe. Metrics of a pool as Redis sees it, across processes, come from
``leasepool exporter`` instead.

    from prometheus_client import REGISTRY, start_http_server
    from leasepool.prometheus import ManagerCollector

    REGISTRY.register(ManagerCollector(manager))
    start_http_server(9782)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COUNTERS", "GAUGES", "ManagerCollector"]

COUNTERS: dict[str, tuple[str, str]] = {
    "acquires": ("acquires", "Leases granted"),
    "waits": ("waits", "Acquires that had to wait for a lease"),
    "timeouts": ("timeouts", "Acquires that gave up waiting (TimeoutError)"),
    "rejections": ("rejections", "Acquires refused at once (wait=False, or the pool closing)"),
    "soft_expiries": ("soft_expiries", "Leases that passed their soft expiry"),
    "hard_expiries": ("hard_expiries", "Leases revoked locally at their hard expiry"),
    "renewals": ("renewals", "Successful lease renewals"),
    "renewal_failures": ("renewal_failures", "Renewals that failed"),
    "lost": (
        "revocations",
        "Leases taken back before release: revoked by an operator or gone from the coordinator",
    ),
    "releases": ("releases", "Leases released"),
}
"""stats()["counters"] key -> (metric name after ``leasepool_``, help). Exported as
``leasepool_<name>_total``."""

GAUGES: dict[str, tuple[str, str]] = {
    "leased": ("leased", "Executors leased now"),
    "waiting": ("waiting", "Callers waiting for a lease in this process"),
    "available": ("available", "Idle executors ready to lease"),
    "total": ("executors", "Executors that exist (idle, leased and retiring)"),
    "overrunning": ("overrunning", "Tasks still running past their lease's hard expiry"),
}
"""stats() key -> (metric name after ``leasepool_``, help)."""

STATS_TIMEOUT = 5.0


class ManagerCollector(Collector):
    """A ``prometheus_client`` collector of one manager's counters and gauges.

    Every series carries a ``pool`` label (the coordinator's pool, or ``local``
    for the embedded coordinator) plus ``labels``. ``loop`` is the event loop the
    manager runs on; by default the loop running when the collector is created.
    """

    def __init__(
        self,
        manager: Any,
        *,
        labels: Mapping[str, str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not callable(getattr(manager, "stats", None)):
            raise TypeError(f"manager must be a LeasedExecutorManager, got {manager!r}")
        extra = dict(labels or {})
        for key, value in extra.items():
            if not isinstance(key, str) or not isinstance(value, str) or key == "pool":
                raise ValueError(f"labels must map str to str (not 'pool'), got {labels!r}")
        self._manager = manager
        self._labels = extra
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop

    def _stats(self) -> dict[str, Any]:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or loop.is_closed() or not loop.is_running():
            return dict(self._manager.stats())
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

        def read() -> None:
            try:
                future.set_result(dict(self._manager.stats()))
            except BaseException as exc:  # handed to the scraping thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(read)
        return future.result(timeout=STATS_TIMEOUT)

    def collect(self) -> Iterator[Metric]:
        """The metrics, read from ``manager.stats()`` now."""
        stats = self._stats()
        coordinator = stats.get("coordinator") or {}
        pool = str(coordinator.get("pool") or "local")
        names = ["pool", *self._labels]
        values = [pool, *self._labels.values()]
        counters = stats.get("counters") or {}
        for key, (name, help_text) in COUNTERS.items():
            family = CounterMetricFamily(f"leasepool_{name}", help_text, labels=names)
            family.add_metric(values, float(counters.get(key, 0)))
            yield family
        for key, (name, help_text) in GAUGES.items():
            gauge = GaugeMetricFamily(f"leasepool_{name}", help_text, labels=names)
            gauge.add_metric(values, float(stats.get(key, 0)))
            yield gauge

    def describe(self) -> Iterator[Metric]:
        """The metric names, without reading the manager (so registering is free)."""
        names = ["pool", *self._labels]
        for name, help_text in COUNTERS.values():
            yield CounterMetricFamily(f"leasepool_{name}", help_text, labels=names)
        for name, help_text in GAUGES.values():
            yield GaugeMetricFamily(f"leasepool_{name}", help_text, labels=names)
