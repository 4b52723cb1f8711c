"""Step 02: acquiring and releasing by hand.

What it teaches:

* ``lease = await manager.acquire(...)`` followed by ``try/finally`` and
  ``await lease.release()``, for control flow that an ``async with`` block
  cannot express (the lease is handed from one function to another);
* ``lease.executor.submit(...)`` gives a ``concurrent.futures.Future``, which
  ``asyncio.wrap_future`` turns into something you can await;
* ``release()`` is idempotent, and ``manager.release(lease_id)`` does the same job;
* a released lease refuses new work with ``LeaseExpiredError``, and its
  executor refuses ``shutdown()``: the manager owns the executor's lifetime.

Run it: ``python examples/02_manual_acquire_release.py``
"""

from __future__ import annotations

import asyncio
import time

from leasepool import ExecutorLease, LeasedExecutorManager, LeaseExpiredError


def resize_image(name: str) -> str:
    time.sleep(0.05)
    return f"{name} -> thumbnail"


async def process_batch(lease: ExecutorLease, names: list[str]) -> list[str]:
    # This function borrows a lease that someone else acquired and will release.
    futures = [asyncio.wrap_future(lease.executor.submit(resize_image, n)) for n in names]
    return list(await asyncio.gather(*futures))


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=3)
    await manager.start()
    try:
        lease = await manager.acquire(owner="manual-flow", lease_seconds=30)
        try:
            print("Submitted three jobs on one lease:")
            for line in await process_batch(lease, ["a.png", "b.png", "c.png"]):
                print("  ", line)
            try:
                lease.executor.shutdown()
            except RuntimeError as exc:
                print("Shutting down a leased executor is refused:", exc)
        finally:
            await lease.release()
        print("Released; leases held now:", manager.leased_count)

        await lease.release()
        print("A second release() is harmless")

        try:
            lease.executor.submit(resize_image, "late.png")
        except LeaseExpiredError as exc:
            print("Submit after release was rejected:", exc)

        other = await manager.acquire(owner="released-by-id")
        await manager.release(other.lease_id)
        print("Released by id through the manager; leases held now:", manager.leased_count)
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
