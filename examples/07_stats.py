"""Step 07: looking inside a manager.

What it teaches:

* the quick counters: ``available_count``, ``leased_count``, ``total_count``
  and ``desired_executor_count()``;
* ``manager.stats()``, one dict for logs and health endpoints: sizing, counts,
  one entry per live lease, plus ``"waiting"`` (callers queued right now) and
  ``"counters"`` (totals since start: acquires, waits, timeouts, rejections,
  expiries, renewals, ...).

Run it: ``python examples/07_stats.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from leasepool import LeasedExecutorManager, LeaseUnavailableError


def show_counts(label: str, manager: LeasedExecutorManager) -> None:
    print(
        f"{label:<22} available={manager.available_count} leased={manager.leased_count} "
        f"total={manager.total_count} desired={manager.desired_executor_count()}"
    )


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, min_pools=2, workers_per_pool=2)
    show_counts("before start:", manager)
    await manager.start()
    try:
        show_counts("after start:", manager)

        first = await manager.acquire(owner="report-job", lease_seconds=60)
        second = await manager.acquire(owner="export-job", lease_seconds=120)
        show_counts("two leases held:", manager)

        # Generate some activity for the counters: one rejection, one timeout,
        # one waiter that is served when a lease comes back.
        with contextlib.suppress(LeaseUnavailableError):
            await manager.acquire(owner="rejected", wait=False)
        with contextlib.suppress(TimeoutError):
            await manager.acquire(owner="timed-out", timeout=0.05)
        waiter = asyncio.create_task(manager.acquire(owner="waiter", timeout=5))
        await asyncio.sleep(0.05)
        print("callers waiting:", manager.stats()["waiting"])
        await first.release()
        third = await waiter
        show_counts("one swapped:", manager)

        stats = manager.stats()
        print("stats() keys:", sorted(stats))
        print("live leases:")
        for entry in stats["leases"]:
            print("  ", entry)
        print("counters:", json.dumps(stats["counters"], sort_keys=True, default=str))

        await second.release()
        await third.release()
        show_counts("all released:", manager)
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
