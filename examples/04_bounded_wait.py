"""Step 04: wait for capacity, but only for so long.

What it teaches:

* by default ``acquire()`` waits for a free executor (that is the backpressure);
* ``acquire(timeout=...)`` bounds the wait and raises the builtin
  ``TimeoutError`` when it runs out;
* a caller that gave up leaves nothing behind: the next waiter still gets the
  executor as soon as it is released.

Run it: ``python examples/04_bounded_wait.py``
"""

from __future__ import annotations

import asyncio
import time

from leasepool import LeasedExecutorManager


async def hold(manager: LeasedExecutorManager, seconds: float, holding: asyncio.Event) -> None:
    async with await manager.acquire(owner="slow-holder") as lease:
        holding.set()
        await lease.run(time.sleep, seconds)


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        holding = asyncio.Event()
        holder = asyncio.create_task(hold(manager, 0.5, holding))
        await holding.wait()
        print("The only executor is busy for 0.5 s")

        started = time.monotonic()
        try:
            await manager.acquire(owner="impatient", timeout=0.1)
        except TimeoutError:
            print(f"Gave up after {time.monotonic() - started:.2f} s: TimeoutError")

        started = time.monotonic()
        async with await manager.acquire(owner="patient", timeout=2.0) as lease:
            waited = time.monotonic() - started
            print(f"Patient caller got lease {lease.lease_id} after {waited:.2f} s")

        await holder
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
