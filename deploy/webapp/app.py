"""An example Starlette app whose requests lease executors from one global capacity.

Run it with several workers; every worker process (of every replica) gets its
own ``LeasedExecutorManager``, and they all share ``LEASEPOOL_CAPACITY`` leases
through Redis::

    LEASEPOOL_REDIS_URL=redis://localhost:6379/0 \\
        uvicorn deploy.webapp.app:app --workers 4

Environment (read through ``leasepool.LeasePoolSettings`` and
``RedisCoordinator.from_env``, like the ``leasepool`` command; this app's defaults):

* ``LEASEPOOL_REDIS_URL`` (required): the Redis every worker coordinates through.
* ``LEASEPOOL_POOL`` (``web``): the pool name; workers with the same name share.
* ``LEASEPOOL_CAPACITY`` (``4``): initialises a new pool. An existing pool keeps
  the capacity stored in Redis (change it with ``leasepool capacity POOL N``).
* ``LEASEPOOL_ACQUIRE_TIMEOUT`` (``5``): seconds a request waits for a lease
  before it is answered 503.
* ``LEASEPOOL_MAX_POOLS`` (the capacity): local executors per worker process.
* ``LEASEPOOL_LEASE_SECONDS`` (``30``): how long a lease lasts.
* ``LEASEPOOL_MAX_WORK_MS`` (``10000``): the largest ``ms`` a request may ask for.

Endpoints: ``POST /work?ms=200``, ``GET /stats``, ``GET /healthz``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from leasepool import (
    CoordinatorUnavailableError,
    LeasedExecutorManager,
    LeasePoolError,
    LeasePoolSettings,
    LeaseUnavailableError,
    RedisCoordinator,
)

HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Settings:
    """leasepool's own ``LEASEPOOL_*`` variables (read by ``LeasePoolSettings``, the same
    reader the ``leasepool`` command and ``RedisCoordinator.from_env`` use), with this
    app's defaults, plus the one variable that only this app has."""

    base: LeasePoolSettings
    max_work_ms: int

    @property
    def redis_url(self) -> str:
        return self.base.require_url()

    @property
    def acquire_timeout(self) -> float:
        return self.base.acquire_timeout or 5.0

    @property
    def lease_seconds(self) -> float:
        return self.base.lease_seconds or 30.0

    @property
    def max_pools(self) -> int:
        # A worker can never use more leases than the global capacity, so more
        # local executors than that would only sit idle.
        return self.base.max_pools or max(1, self.base.capacity)

    @classmethod
    def from_env(cls) -> Settings:
        # ValueError naming the variable (a URL's password redacted) fails the
        # worker's startup when a value is malformed or the URL is missing.
        base = LeasePoolSettings.from_env(pool="web", capacity=4)
        base.require_url()
        raw = os.environ.get("LEASEPOOL_MAX_WORK_MS", "10000")
        if not raw.strip().isdigit() or int(raw) < 1:
            raise ValueError(f"LEASEPOOL_MAX_WORK_MS must be an integer >= 1, got {raw!r}")
        settings = cls(base, int(raw))
        # Work that outlives its lease keeps running after Redis has handed the slot
        # to someone else, which would break the global limit this app demonstrates.
        if settings.max_work_ms / 1000 >= settings.lease_seconds:
            raise ValueError(
                f"LEASEPOOL_MAX_WORK_MS ({settings.max_work_ms}) must be shorter than "
                f"LEASEPOOL_LEASE_SECONDS ({settings.lease_seconds}) s"
            )
        return settings


def blocking_work(ms: int) -> dict[str, float]:
    """The stand-in for real blocking work; it runs on the leased executor.

    Its own wall-clock start and end are returned so a client can check, across
    processes and hosts, how many ran at the same time.
    """
    started_at = time.time()
    time.sleep(ms / 1000)
    return {"started_at": started_at, "ended_at": time.time()}


def _unavailable(reason: str, detail: str, waited_ms: float) -> JSONResponse:
    return JSONResponse(
        {
            "error": reason,
            "detail": detail,
            "host": HOST,
            "pid": os.getpid(),
            "waited_ms": round(waited_ms, 1),
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def work(request: Request) -> JSONResponse:
    settings: Settings = request.state.settings
    manager: LeasedExecutorManager = request.state.manager
    raw = request.query_params.get("ms", "200")
    try:
        ms = int(raw)
    except ValueError:
        ms = -1
    if not 0 <= ms <= settings.max_work_ms:
        detail = f"ms must be an integer from 0 to {settings.max_work_ms}, got {raw!r}"
        return JSONResponse({"error": "bad_request", "detail": detail}, status_code=400)
    asked = time.monotonic()
    try:
        lease = await manager.acquire(
            timeout=settings.acquire_timeout,
            lease_seconds=settings.lease_seconds,
            # Shown by `leasepool status` next to host:pid, which Redis records anyway.
            owner=f"POST /work?ms={ms}",
        )
    except (LeaseUnavailableError, TimeoutError) as exc:
        return _unavailable("busy", str(exc), (time.monotonic() - asked) * 1000)
    except CoordinatorUnavailableError as exc:
        # Never fall back to local capacity: without Redis there is no global limit.
        return _unavailable("coordinator_unavailable", str(exc), (time.monotonic() - asked) * 1000)
    waited_ms = (time.monotonic() - asked) * 1000
    # `async with` releases even if this request is cancelled; a release while the
    # work still runs keeps the slot taken until the work has finished.
    async with lease:
        timing = await lease.run(blocking_work, ms)
    return JSONResponse(
        {
            "host": HOST,
            "pid": os.getpid(),
            "lease_id": lease.lease_id,
            "token": lease.fencing_token,
            "waited_ms": round(waited_ms, 1),
            "ms": ms,
            **timing,
        }
    )


async def stats(request: Request) -> JSONResponse:
    manager: LeasedExecutorManager = request.state.manager
    # host and pid say which worker answered: each has its own manager.
    body: dict[str, Any] = {"host": HOST, "pid": os.getpid(), **manager.stats()}
    # The coordinator's figures in stats() are this worker's last sight of Redis
    # and can lag behind a capacity changed with `leasepool capacity`; "pool" is
    # read from Redis now.
    try:
        status = await manager.coordinator.status()
    except LeasePoolError as exc:
        body["pool"] = {"error": str(exc)}
    else:
        body["pool"] = {
            "name": status.pool,
            "capacity": status.capacity,
            "leased": len(status.leases),
        }
    return JSONResponse(body)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "host": HOST, "pid": os.getpid()})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # Built here, not at import: each uvicorn worker process runs its own lifespan
    # and so gets its own manager, coordinator and Redis connections.
    settings = Settings.from_env()
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=settings.max_pools,
        # Keep every executor warm: idle threads are cheap, while a pool that shrinks
        # to one executor after each burst would rebuild executors on the next.
        min_pools=settings.max_pools,
        # One request runs one blocking call at a time on its lease.
        workers_per_pool=1,
        name_prefix=f"web-{os.getpid()}",
        coordinator=RedisCoordinator.from_env(pool="web", capacity=4),
    )
    # Raises CoordinatorUnavailableError (password redacted) when Redis is down,
    # which fails the worker's startup instead of serving without a global limit.
    await manager.start()
    try:
        yield {"manager": manager, "settings": settings}
    finally:
        # Releases the leases this worker still holds, so their slots free at once
        # instead of at their hard expiry.
        await manager.stop()


app = Starlette(
    routes=[
        Route("/work", work, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
