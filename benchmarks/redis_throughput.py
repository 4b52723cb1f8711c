"""Acquire+release throughput against one local Redis, side by side with redis-py's Lock.

Variants, each run back to back for a fixed time (median of the rounds is shown):

* ours, RedisCoordinator directly: ``acquire(wait=False)`` + ``release``, sequential;
* ours, through LeasedExecutorManager: ``manager.acquire()`` + ``lease.release()``, sequential;
* ours, 32 concurrent tasks sharing capacity 16 (RedisCoordinator, ``wait=True``);
* redis-py asyncio ``Lock``: ``acquire()`` + ``release()``, sequential.

Targets: ours sequential >= 1.0x the Lock; 32 tasks >= 2x the Lock. (The targets of issue 9,
1.2x and 3x, and a fairer Lock side for the 32 tasks, are in ``vs_redis_lock.py``.)

    python benchmarks/redis_throughput.py                 # starts its own server
    python benchmarks/redis_throughput.py --quick         # a short smoke run
    python benchmarks/redis_throughput.py --url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from _common import MonotonicClock, bounded, bounded_cleanup, exit_if_hung, local_server

from leasepool import GrantRequest, LeasedExecutorManager, RedisCoordinator

__all__ = ["local_server", "main"]  # local_server: older scripts import it from here


async def ops_per_second(
    cycle: Callable[[], Awaitable[object]], seconds: float, tasks: int = 1
) -> float:
    """Cycles per second of ``tasks`` concurrent loops running ``cycle`` for ``seconds``."""
    stop = time.perf_counter() + seconds
    counts = [0] * tasks

    async def loop(i: int) -> None:
        while time.perf_counter() < stop:
            await cycle()
            counts[i] += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - start)


def ignore(_: str) -> None:
    pass


async def run(url: str, seconds: float, rounds: int) -> dict[str, float]:
    ids = itertools.count()
    pool = f"bench-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    coordinator = RedisCoordinator(client, pool=pool + "-seq", capacity=1)
    await coordinator.start(clock=MonotonicClock(), on_lost=ignore)
    shared = RedisCoordinator(client, pool=pool + "-32", capacity=16)
    await shared.start(clock=MonotonicClock(), on_lost=ignore)
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=1,
        workers_per_pool=1,
        coordinator=RedisCoordinator(client, pool=pool + "-mgr", capacity=1),
    )
    await manager.start()
    lock = client.lock(f"{pool}-lock", timeout=30)

    async def ours() -> None:
        grant = await coordinator.acquire(
            GrantRequest(f"b{next(ids)}", "bench", 30, 5), wait=False, deadline=None
        )
        await coordinator.release(grant.lease_id)

    async def ours_manager() -> None:
        lease = await manager.acquire(lease_seconds=30)
        await lease.release()

    async def ours_shared() -> None:
        grant = await shared.acquire(
            GrantRequest(f"s{next(ids)}", "bench", 30, 5), wait=True, deadline=None
        )
        await shared.release(grant.lease_id)

    async def redis_lock() -> None:
        await lock.acquire()
        await lock.release()

    variants: dict[str, tuple[Callable[[], Awaitable[object]], int]] = {
        "ours RedisCoordinator acquire+release": (ours, 1),
        "ours LeasedExecutorManager acquire+release": (ours_manager, 1),
        "ours 32 tasks, capacity 16": (ours_shared, 32),
        "redis-py asyncio Lock acquire+release": (redis_lock, 1),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for cycle, tasks in variants.values():  # warm-up: scripts load, pools fill
            await bounded(ops_per_second(cycle, min(0.3, seconds), tasks), 30, "warm-up")
        for _ in range(rounds):  # interleaved, so drift hits every variant alike
            for name, (cycle, tasks) in variants.items():
                rate = await bounded(ops_per_second(cycle, seconds, tasks), seconds + 30, name)
                results[name].append(rate)
    finally:
        # Bounded: a close that never returns is a finding to print, not a reason to hang.
        await bounded_cleanup(manager.stop(), 60, "manager.stop()")
        await bounded_cleanup(shared.close(), 30, "closing the 32-task coordinator")
        await bounded_cleanup(coordinator.close(), 30, "closing the sequential coordinator")
        for key in (f"{pool}-seq", f"{pool}-32", f"{pool}-mgr"):
            keys = [k async for k in client.scan_iter(match=f"leasepool:{{{key}}}:*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()
    return {name: statistics.median(values) for name, values in results.items()}


def report(medians: dict[str, float]) -> None:
    base = medians["redis-py asyncio Lock acquire+release"]
    width = max(map(len, medians))
    print(f"{'variant':<{width}}  {'ops/s':>9}  {'vs Lock':>7}")
    for name, value in medians.items():
        print(f"{name:<{width}}  {value:>9.0f}  {value / base:>6.2f}x")
    seq = medians["ours RedisCoordinator acquire+release"] / base
    par = medians["ours 32 tasks, capacity 16"] / base
    print()
    print(f"target sequential >= 1.0x Lock: {seq:.2f}x {'ok' if seq >= 1.0 else 'MISSED'}")
    print(f"target 32 tasks   >= 2.0x Lock: {par:.2f}x {'ok' if par >= 2.0 else 'MISSED'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this server instead of starting one")
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="0.3 s x 2 rounds")
    args = parser.parse_args(argv)
    seconds, rounds = (0.3, 2) if args.quick else (args.seconds, args.rounds)
    print(f"python {sys.version.split()[0]}, {rounds} rounds x {seconds} s per variant")
    if args.url:
        report(asyncio.run(run(args.url, seconds, rounds)))
        exit_if_hung()
        return
    with local_server() as url:
        report(asyncio.run(run(url, seconds, rounds)))
    exit_if_hung()


if __name__ == "__main__":
    main()
