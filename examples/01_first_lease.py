"""Step 01: your first lease.

What it teaches:

* a ``LeasedExecutorManager`` owns a small, bounded set of executors;
* ``async with await manager.acquire(...) as lease`` borrows one whole executor;
* ``await lease.run(fn, *args)`` runs a blocking function on it without blocking
  the event loop;
* leaving the ``async with`` block gives the executor back, even on error.

Run it: ``python examples/01_first_lease.py``
"""

from __future__ import annotations

import asyncio
import threading
import time

from leasepool import LeasedExecutorManager


def blocking_lookup(customer_id: int) -> str:
    # Stands in for a synchronous SDK call: run directly in a coroutine, this
    # sleep would freeze every other task on the event loop.
    time.sleep(0.1)
    return f"customer {customer_id} looked up on thread {threading.current_thread().name!r}"


async def heartbeat(stop: asyncio.Event) -> int:
    beats = 0
    while not stop.is_set():
        beats += 1
        await asyncio.sleep(0.01)
    return beats


async def main() -> None:
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=2,
        workers_per_pool=2,
        name_prefix="first-lease",
    )
    await manager.start()
    try:
        stop = asyncio.Event()
        beating = asyncio.create_task(heartbeat(stop))

        async with await manager.acquire(owner="first-lease-demo") as lease:
            print("Acquired lease", lease.lease_id, "for owner", repr(lease.owner))
            print("Leases held inside the block:", manager.leased_count)
            print("Result:", await lease.run(blocking_lookup, 42))

        stop.set()
        # The loop kept ticking while the blocking call ran on the leased thread.
        print("Event loop heartbeats during the call:", await beating)
        print("Leases held after the block:", manager.leased_count)
    finally:
        await manager.stop()
    print("Manager stopped")


if __name__ == "__main__":
    asyncio.run(main())
