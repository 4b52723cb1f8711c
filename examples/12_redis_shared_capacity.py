"""Step 12: one capacity shared by many processes, through Redis.

What it teaches:

* ``coordinator=RedisCoordinator.from_url(url, pool=..., capacity=...)`` makes
  every manager that uses the same Redis and pool name share ``capacity``
  leases, on one host or many;
* a lease then needs a local executor *and* a global slot: a manager with idle
  local executors still has to wait (or fail fast) when the pool is full;
* a slot freed by one process wakes a waiter in another;
* operators can see who holds what with ``redis-cli`` or ``leasepool status``.

Here two managers in one process stand in for two hosts; each has its own
coordinator and its own Redis connection, exactly as two separate processes would.

Run it against a Redis server:

    LEASEPOOL_REDIS_URL=redis://localhost:6379/0 python examples/12_redis_shared_capacity.py

Without ``LEASEPOOL_REDIS_URL`` it prints these instructions and exits.
"""

from __future__ import annotations

import asyncio
import os
import time

from leasepool import LeasedExecutorManager, LeaseUnavailableError, RedisCoordinator

POOL = "demo"

INSTRUCTIONS = f"""\
LEASEPOOL_REDIS_URL is not set, so there is no Redis server to share capacity through.
To run this example, start a server and point the variable at it, for instance:

    redis-server --port 6379 --save '' &
    LEASEPOOL_REDIS_URL=redis://localhost:6379/0 python examples/12_redis_shared_capacity.py

While it runs, watch the pool from another terminal:

    redis-cli ZRANGE 'leasepool:{{{POOL}}}:leases' 0 -1 WITHSCORES
    leasepool status {POOL}"""


def make_host(url: str, name: str) -> LeasedExecutorManager:
    # Each host has two local executors, but the pool allows only two leases
    # in total across all hosts.
    return LeasedExecutorManager(
        backend="thread",
        max_pools=2,
        min_pools=2,
        workers_per_pool=1,
        name_prefix=name,
        coordinator=RedisCoordinator.from_url(url, pool=POOL, capacity=2),
    )


async def main(url: str) -> None:
    host_a = make_host(url, "host-a")
    host_b = make_host(url, "host-b")
    await host_a.start()
    await host_b.start()
    try:
        a1 = await host_a.acquire(owner="host-a/job-1", lease_seconds=30)
        a2 = await host_a.acquire(owner="host-a/job-2", lease_seconds=30)
        print("host-a holds 2 leases, tokens", a1.fencing_token, "and", a2.fencing_token)
        print("host-b has idle local executors:", host_b.available_count)

        try:
            await host_b.acquire(owner="host-b/job-1", wait=False)
        except LeaseUnavailableError as exc:
            print("host-b could not get a lease, the shared pool is full:", exc)

        waiter = asyncio.create_task(
            host_b.acquire(owner="host-b/job-1", lease_seconds=30, timeout=10)
        )
        await asyncio.sleep(0.2)
        released_at = time.monotonic()
        await a1.release()
        b1 = await waiter
        woke_after = time.monotonic() - released_at
        print(f"host-a released one; host-b got it {woke_after * 1000:.0f} ms later")
        print("host-b's lease token:", b1.fencing_token)

        print("Leases held now, as each host sees its own:")
        for name, host in (("host-a", host_a), ("host-b", host_b)):
            for entry in host.stats()["leases"]:
                print(f"   {name}:", entry)

        await a2.release()
        await b1.release()
        print("All leases released")
    finally:
        await host_b.stop()
        await host_a.stop()


if __name__ == "__main__":
    redis_url = os.environ.get("LEASEPOOL_REDIS_URL")
    if not redis_url:
        print(INSTRUCTIONS)
        raise SystemExit(0)
    asyncio.run(main(redis_url))
