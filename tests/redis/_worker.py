"""A worker process for the cross-process tests: a real manager with a RedisCoordinator.

Usage: python _worker.py MODE URL POOL CAPACITY [options as JSON]

Modes:
  share  run ``tasks`` concurrent tasks; each leases an executor and runs work
         that records its own start and end time (time.monotonic(), one clock for
         every process on the host) and the lease's fencing token; prints one
         JSON line per task, then {"done": true}.
  hold   lease one executor, print {"lease_id", "token", "acquired_at"}, then sleep
         until killed.
  wait   print {"waiting": true}, lease one executor (waiting as long as needed),
         print {"granted_at", "token", "lease_id"}, release it and exit.

Every line goes to stdout and is flushed at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from leasepool import LeasedExecutorManager
from leasepool._redis_coordinator import RedisCoordinator


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def work(hold: float) -> tuple[float, float]:
    start = time.monotonic()
    time.sleep(hold)
    return start, time.monotonic()


async def main(mode: str, url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    coordinator = RedisCoordinator.from_url(
        url, pool=pool, capacity=capacity, recheck_interval=opts.get("recheck", 5.0)
    )
    tasks = int(opts.get("tasks", 1))
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=tasks,
        workers_per_pool=1,
        coordinator=coordinator,
        default_lease_seconds=float(opts.get("lease", 30.0)),
        lease_grace_seconds=float(opts.get("grace", 1.0)),
    )
    await manager.start()
    try:
        if mode == "share":
            hold = float(opts.get("hold", 0.05))

            async def one(i: int) -> None:
                async with await manager.acquire(owner=f"task-{i}") as lease:
                    start, end = await lease.run(work, hold)
                    emit(start=start, end=end, token=lease.fencing_token, task=i)

            await asyncio.gather(*(one(i) for i in range(tasks)))
            emit(done=True)
        elif mode == "hold":
            lease = await manager.acquire(owner="holder")
            emit(lease_id=lease.lease_id, token=lease.fencing_token, acquired_at=time.monotonic())
            await asyncio.sleep(3600)
        elif mode == "wait":
            emit(waiting=True)
            lease = await manager.acquire(owner="waiter")
            emit(granted_at=time.monotonic(), token=lease.fencing_token, lease_id=lease.lease_id)
            await lease.release()
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await manager.stop()


if __name__ == "__main__":
    _mode, _url, _pool, _capacity = sys.argv[1:5]
    _opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    asyncio.run(main(_mode, _url, _pool, int(_capacity), _opts))
