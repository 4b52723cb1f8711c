"""Step 09: CPU-bound work on the process backend.

What it teaches:

* ``backend="process"`` leases a whole ``ProcessPoolExecutor``, so CPU-heavy
  Python code runs on several cores instead of fighting over one GIL;
* functions, arguments and results cross a process boundary, so they must be
  picklable: use module-level functions and plain data (no lambdas, no
  closures, no open sockets or clients);
* the ``if __name__ == "__main__":`` guard is required, because worker
  processes may import this file again and must not start a second manager.

Run it: ``python examples/09_process_backend.py``
"""

from __future__ import annotations

import asyncio
import os

from leasepool import LeasedExecutorManager


def count_primes(start: int, stop: int) -> tuple[int, int]:
    """Count primes in [start, stop) the slow way; returns (count, worker pid)."""
    found = 0
    for candidate in range(max(start, 2), stop):
        if all(candidate % d for d in range(2, int(candidate**0.5) + 1)):
            found += 1
    return found, os.getpid()


async def main() -> None:
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        min_pools=1,
        workers_per_pool=2,
    )
    await manager.start()
    try:
        async with await manager.acquire(owner="prime-counter", lease_seconds=60) as lease:
            chunks = [(n, n + 25_000) for n in range(0, 100_000, 25_000)]
            # Submit every chunk before awaiting any, so both workers stay busy.
            futures = [
                asyncio.wrap_future(lease.executor.submit(count_primes, lo, hi))
                for lo, hi in chunks
            ]
            results = await asyncio.gather(*futures)
            single = await lease.run(count_primes, 0, 10)

        total = sum(count for count, _ in results)
        worker_pids = {pid for _, pid in results}
        print("Primes below 100000:", total)
        print("Primes below 10:", single[0])
        print("Parent pid:", os.getpid())
        print("Worker pids:", sorted(worker_pids))
        print("Ran outside the parent process:", os.getpid() not in worker_pids)
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
