"""Step 10: batching many small calls with WorkGrinder.

What it teaches:

* ``WorkGrinder`` collects calls from many coroutines and runs them in batches,
  one lease per batch, instead of one lease per call;
* a batch starts when ``batch_size_threshold`` items are queued, or when the
  oldest item has waited ``max_wait_seconds``, whichever comes first;
* ``await grinder.submit(fn, *args)`` queues a call and waits for its result;
  ``await grinder.enqueue(fn, *args)`` queues it and hands back a future at once;
* ``stop(cancel_pending=False)`` finishes queued work first;
  ``stop(cancel_pending=True)`` cancels whatever has not run yet.

Run it: ``python examples/10_work_grinder.py``
"""

from __future__ import annotations

import asyncio
import time

from leasepool import LeasedExecutorManager, WorkGrinder


def score(item: int) -> int:
    time.sleep(0.01)
    return item * item


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, workers_per_pool=4)
    await manager.start()
    try:
        grinder = WorkGrinder(
            executor_manager=manager,
            batch_size_threshold=4,
            max_wait_seconds=0.2,
            lease_seconds=30,
        )
        await grinder.start()
        started = time.monotonic()
        few = await asyncio.gather(*(grinder.submit(score, i) for i in range(3)))
        elapsed = time.monotonic() - started
        # Three calls never reach the threshold of four, so they run when the
        # oldest has waited max_wait_seconds.
        print(f"3 calls below the threshold: {few} after {elapsed:.2f} s")

        acquires_before = manager.stats()["counters"]["acquires"]
        started = time.monotonic()
        many = await asyncio.gather(
            *(grinder.submit(score, i, owner=f"item-{i}") for i in range(10))
        )
        elapsed = time.monotonic() - started
        leases = manager.stats()["counters"]["acquires"] - acquires_before
        print(f"10 calls over the threshold: {many} after {elapsed:.2f} s")
        print(f"The 10 calls shared {leases} lease(s) instead of taking 10")

        future = await grinder.enqueue(score, 12)
        print("enqueue() returned at once; done yet?", future.done())
        print("enqueue() result:", await future)

        queued = [await grinder.enqueue(score, i) for i in range(3)]
        await grinder.stop(cancel_pending=False)
        print("stop(cancel_pending=False) drained:", [f.result() for f in queued])

        # A grinder that would wait a long time before running anything.
        lazy = WorkGrinder(
            executor_manager=manager,
            batch_size_threshold=100,
            max_wait_seconds=30,
        )
        await lazy.start()
        pending = [await lazy.enqueue(score, i) for i in range(3)]
        print("queued on the lazy grinder:", lazy.stats()["pending"])
        await lazy.stop(cancel_pending=True)
        print("stop(cancel_pending=True) cancelled:", [f.cancelled() for f in pending])
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
