"""An example Starlette app whose requests lease executors from one global capacity.

Run it with several workers; every worker process (of every replica) gets its
own ``LeasedExecutorManager``, and they all share ``LEASEPOOL_CAPACITY`` leases
through Redis::

    LEASEPOOL_REDIS_URL=redis://localhost:6379/0 \\
        uvicorn deploy.webapp.app:app --workers 4

Environment:

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
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from leasepool import (
    CoordinatorUnavailableError,
    LeasedExecutorManager,
    LeasePoolError,
    LeaseUnavailableError,
    RedisCoordinator,
)

HOST = socket.gethostname()
N = TypeVar("N", int, float)


def _env_number(name: str, default: str, kind: type[N]) -> N:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        # Fail the worker's startup with the variable's name, not a bare ValueError.
        raise RuntimeError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value <= 0:
        raise RuntimeError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str
    pool: str
    capacity: int
    acquire_timeout: float
    max_pools: int
    lease_seconds: float
    max_work_ms: int

    @classmethod
    def from_env(cls) -> Settings:
        url = os.environ.get("LEASEPOOL_REDIS_URL")
        if not url:
            raise RuntimeError("LEASEPOOL_REDIS_URL is not set: point it at the shared Redis")
        capacity = _env_number("LEASEPOOL_CAPACITY", "4", int)
        settings = cls(
            redis_url=url,
            pool=os.environ.get("LEASEPOOL_POOL", "web"),
            capacity=capacity,
            acquire_timeout=_env_number("LEASEPOOL_ACQUIRE_TIMEOUT", "5", float),
            # A worker can never use more leases than the global capacity, so more
            # local executors than that would only sit idle.
            max_pools=_env_number("LEASEPOOL_MAX_POOLS", str(capacity), int),
            lease_seconds=_env_number("LEASEPOOL_LEASE_SECONDS", "30", float),
            max_work_ms=_env_number("LEASEPOOL_MAX_WORK_MS", "10000", int),
        )
        # Work that outlives its lease keeps running after Redis has handed the slot
        # to someone else, which would break the global limit this app demonstrates.
        if settings.max_work_ms / 1000 >= settings.lease_seconds:
            raise RuntimeError(
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
        coordinator=RedisCoordinator.from_url(
            settings.redis_url, pool=settings.pool, capacity=settings.capacity
        ),
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
