"""Useful throughput of one long-lived process while short-lived waiters churn around it.

A long-lived process runs ``acquire`` + ``run(noop)`` + ``release`` in a loop through a
``LeasedExecutorManager`` on a ``RedisCoordinator`` of capacity 3, for ``--seconds``:

* quiet: nobody else uses the pool;
* churn: meanwhile, short-lived waiter processes start, queue for a slot, hold it
  briefly and exit; a quarter of them are SIGKILLed while they wait (their tickets and
  any grant handed to them are left behind).

It prints runs/s quiet, runs/s under churn and their ratio: what dead waiters cost the
pool. Bounded and loopback only: at most ``--churners`` processes alive at once, each
with a deadline, and a server of its own unless ``--url`` is given.

    python benchmarks/churn_throughput.py                 # starts its own server
    python benchmarks/churn_throughput.py --seconds 10 --churners 8
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_throughput import local_server

CAPACITY = 3
_CHURNER = f"""
import asyncio, sys
from leasepool import LeasedExecutorManager, RedisCoordinator
async def main(url, pool):
    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity={CAPACITY})
    manager = LeasedExecutorManager(max_pools=1, coordinator=coordinator)
    await manager.start()
    try:
        lease = await manager.acquire(lease_seconds=5, timeout=20)
        await asyncio.sleep(0.01)
        await lease.release()
    finally:
        await manager.stop()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def noop() -> None:
    pass


async def long_lived(url: str, pool: str, seconds: float) -> float:
    """Runs per second of acquire + run(noop) + release over ``seconds``."""
    from leasepool import LeasedExecutorManager, RedisCoordinator

    coordinator = RedisCoordinator.from_url(url, pool=pool, capacity=CAPACITY)
    manager = LeasedExecutorManager(max_pools=CAPACITY, coordinator=coordinator)
    await manager.start()
    try:
        runs = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            lease = await manager.acquire(lease_seconds=5, timeout=30)
            await lease.run(noop)
            await lease.release()
            runs += 1
        return runs / (time.monotonic() - start)
    finally:
        await manager.stop()


def churn(url: str, pool: str, seconds: float, churners: int, stop: list[bool]) -> dict[str, int]:
    """Start short-lived waiters for ``seconds``; kill a quarter of them while they wait."""
    rng = random.Random(1)
    alive: list[tuple[subprocess.Popen[bytes], float, bool]] = []
    counts = {"started": 0, "killed": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop[0]:
        now = time.monotonic()
        for entry in list(alive):
            process, started, kill = entry
            if process.poll() is not None:
                alive.remove(entry)
            elif kill and now - started > 1.0:
                process.send_signal(signal.SIGKILL)
                process.wait()
                counts["killed"] += 1
                alive.remove(entry)
            elif now - started > 30:
                process.kill()
                process.wait()
                alive.remove(entry)
        while len(alive) < churners:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHURNER, url, pool],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            alive.append((process, time.monotonic(), rng.random() < 0.25))
            counts["started"] += 1
        time.sleep(0.05)
    for process, _, _ in alive:
        process.kill()
        process.wait()
    return counts


async def churned(
    url: str, pool: str, seconds: float, churners: int
) -> tuple[float, dict[str, int]]:
    stop = [False]
    loop = asyncio.get_running_loop()
    background = loop.run_in_executor(None, churn, url, pool, seconds + 3, churners, stop)
    await asyncio.sleep(3)  # let the churn build up
    try:
        rate = await long_lived(url, pool, seconds)
    finally:
        stop[0] = True
        counts = await background
    return rate, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this server instead of starting one")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--churners", type=int, default=6, help="waiter processes alive at once")
    args = parser.parse_args()

    def run(url: str) -> None:
        quiet = asyncio.run(long_lived(url, f"bench-churn-{uuid.uuid4().hex[:8]}", args.seconds))
        rate, counts = asyncio.run(
            churned(url, f"bench-churn-{uuid.uuid4().hex[:8]}", args.seconds, args.churners)
        )
        print(f"churn processes:      {counts['started']} started, {counts['killed']} SIGKILLed")
        print(f"runs/s quiet:         {quiet:.1f}")
        print(f"runs/s under churn:   {rate:.1f}")
        print(f"ratio churn/quiet:    {rate / quiet:.3f}")

    if args.url:
        run(args.url)
    else:
        with local_server() as url:
            run(url)


if __name__ == "__main__":
    main()
