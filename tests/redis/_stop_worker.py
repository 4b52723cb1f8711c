"""A worker process for the stop() tests: a real manager on a real Redis.

Usage: python _stop_worker.py ROLE URL POOL BACKEND

Roles (capacity 1; every line is one JSON object on stdout):
  holder  lease one executor, print {"acquired": token}; on the stdin line "work"
          start work that runs ``HOLD`` seconds and print {"working": true}; on
          "stop" print {"stopping_at"}, call manager.stop(), then print
          {"stopped_at"} and the work's own {"start", "end"}.
  waiter  print {"waiting": true}, lease one executor (waiting as long as needed),
          print {"granted_at"}, run short work, print its {"start", "end"}, exit.

Times are ``time.time()``, read inside the work itself (one clock for every
process on the host).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from leasepool import LeasedExecutorManager, RedisCoordinator

HOLD = 1.5


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def work(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


async def next_line() -> str:
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() or "eof"


async def holder(manager: LeasedExecutorManager) -> None:
    lease = await manager.acquire(owner="holder")
    emit(acquired=lease.fencing_token)
    running: asyncio.Task[tuple[float, float]] | None = None
    while (line := await next_line()) != "stop":
        if line == "eof":
            return
        if line == "work":
            running = asyncio.ensure_future(lease.run(work, HOLD))
            emit(working=True)
    emit(stopping_at=time.time())
    await manager.stop()
    emit(stopped_at=time.time())
    if running is not None:
        start, end = await running
        emit(start=start, end=end, token=lease.fencing_token)


async def waiter(manager: LeasedExecutorManager) -> None:
    emit(waiting=True)
    lease = await manager.acquire(owner="waiter")
    emit(granted_at=time.time())
    start, end = await lease.run(work, 0.2)
    emit(start=start, end=end, token=lease.fencing_token)
    await lease.release()


async def main(role: str, url: str, pool: str, backend: str) -> None:
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=1, recheck_interval=1.0)
    manager = LeasedExecutorManager(
        backend=backend,
        max_pools=1,
        workers_per_pool=1,
        coordinator=coordinator,
        default_lease_seconds=60.0,
        lease_grace_seconds=1.0,
    )
    await manager.start()
    try:
        await (holder if role == "holder" else waiter)(manager)
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
