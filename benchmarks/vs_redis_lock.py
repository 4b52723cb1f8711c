"""Acquire+release throughput against redis-py's asyncio Lock, side by side in one run.

Two comparisons against one local Redis, each a rate of completed acquire+release cycles:

1. **Sequential**, one task: ours is ``RedisCoordinator.acquire(GrantRequest(...),
   wait=False)`` + ``release(lease_id)`` at capacity 1 (and, for reference, the same through
   ``LeasedExecutorManager.acquire()`` + ``lease.release()``); the Lock is ``lock.acquire()``
   + ``lock.release()`` on one name. Same job, same server, one cycle at a time.
   Target: ours (the coordinator) >= 1.2x the Lock.

2. **32 tasks at capacity 16**: ours is 32 tasks looping ``acquire(wait=True)`` + ``release``
   on one coordinator of capacity 16, so about half of them are always waiting. A Lock has
   capacity 1, so the Lock side needs a choice; three are measured:

   * ``16 Locks, 16 tasks`` (the one the target is judged on): 16 tasks, each looping on its
     own Lock name. Nothing ever waits or retries, so this is the ceiling of any
     16-slot scheme built from Locks on this server and client: a real one (below) can only
     add waiting and retries to it. Judging against the ceiling keeps the comparison from
     flattering us with a poorly built rival.
   * ``16 Locks, 32 tasks``: what a user might build, two tasks per Lock name, each blocking
     in ``acquire()`` with ``sleep=0.001`` (redis-py's default 0.1 s would make it far
     slower).
   * ``Lock, 1 task``: the sequential figure from comparison 1, the denominator
     ``redis_throughput.py`` has always used.

   Target: ours >= 3x ``16 Locks, 16 tasks``.

Every variant runs back to back for ``--seconds``; within a round the variants run one
after another, and every other round in reverse order (ABBA), so drift of the machine hits
all of them alike. The median over rounds is printed, with the ratio of medians and the
median of same-round ratios (steadier when the machine changes speed between rounds).

    python benchmarks/vs_redis_lock.py                 # starts its own server, ~40 s
    python benchmarks/vs_redis_lock.py --quick
    python benchmarks/vs_redis_lock.py --url redis://127.0.0.1:6379/0 --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from _common import (
    MonotonicClock,
    bounded,
    bounded_cleanup,
    exit_if_hung,
    format_table,
    ignore_lost,
    leasepool_banner,
    local_server,
    verdict,
)

from leasepool import GrantRequest, LeasedExecutorManager, RedisCoordinator

Cycle = Callable[[int], Awaitable[object]]

# (label, numerator, denominator, target)
RATIOS = (
    ("sequential: ours coordinator / Lock", "ours_seq", "lock_seq", 1.2),
    ("sequential: ours manager / Lock", "ours_mgr", "lock_seq", None),
    ("32 tasks cap 16: ours / 16 Locks, 16 tasks", "ours_32", "locks_16", 3.0),
    ("32 tasks cap 16: ours / 16 Locks, 32 tasks", "ours_32", "locks_32", None),
    ("32 tasks cap 16: ours / Lock, 1 task", "ours_32", "lock_seq", None),
)
LABELS = {
    "ours_seq": "ours RedisCoordinator, 1 task",
    "ours_mgr": "ours LeasedExecutorManager, 1 task",
    "lock_seq": "redis-py Lock, 1 task",
    "ours_32": "ours 32 tasks, capacity 16",
    "locks_16": "16 Locks, 16 tasks (ceiling)",
    "locks_32": "16 Locks, 32 tasks (sleep 1 ms)",
}


async def ops_per_second(cycle: Cycle, seconds: float, tasks: int) -> float:
    """Cycles per second of ``tasks`` concurrent loops (task ``i`` calls ``cycle(i)``)."""
    stop = time.perf_counter() + seconds
    counts = [0] * tasks

    async def loop(i: int) -> None:
        while time.perf_counter() < stop:
            await cycle(i)
            counts[i] += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - start)


class Bench:
    """The variants, sharing one client; every pool and Lock name is unique to this run."""

    def __init__(self, url: str) -> None:
        self.ids = itertools.count()
        self.prefix = f"bench-vl-{uuid.uuid4().hex[:8]}"
        self.client = aioredis.Redis.from_url(url, max_connections=64)
        self.seq = RedisCoordinator(self.client, pool=f"{self.prefix}-seq", capacity=1)
        self.shared = RedisCoordinator(self.client, pool=f"{self.prefix}-32", capacity=16)
        self.manager = LeasedExecutorManager(
            backend="thread",
            max_pools=1,
            workers_per_pool=1,
            coordinator=RedisCoordinator(self.client, pool=f"{self.prefix}-mgr", capacity=1),
        )
        self.lock = self.client.lock(f"{self.prefix}-lock", timeout=30)
        self.locks16 = [self.client.lock(f"{self.prefix}-l16-{i}", timeout=30) for i in range(16)]
        # Two tasks per name: each task needs its own Lock object (a Lock holds its token).
        self.locks32 = [
            self.client.lock(f"{self.prefix}-l32-{i % 16}", timeout=30, sleep=0.001)
            for i in range(32)
        ]

    def variants(self) -> dict[str, tuple[Cycle, int]]:
        return {
            "ours_seq": (self.ours_seq, 1),
            "lock_seq": (self.lock_seq, 1),
            "ours_mgr": (self.ours_mgr, 1),
            "ours_32": (self.ours_32, 32),
            "locks_16": (self.locks_16, 16),
            "locks_32": (self.locks_32, 32),
        }

    async def start(self) -> None:
        await self.seq.start(clock=MonotonicClock(), on_lost=ignore_lost)
        await self.shared.start(clock=MonotonicClock(), on_lost=ignore_lost)
        await self.manager.start()

    async def close(self) -> None:
        await self.manager.stop()
        await self.shared.close()
        await self.seq.close()
        keys = [k async for k in self.client.scan_iter(match=f"*{self.prefix}*")]
        if keys:
            await self.client.delete(*keys)
        await self.client.aclose()

    def request(self) -> GrantRequest:
        return GrantRequest(f"b{next(self.ids)}", "bench", 30, 5)

    async def ours_seq(self, _: int) -> None:
        grant = await self.seq.acquire(self.request(), wait=False, deadline=None)
        await self.seq.release(grant.lease_id)

    async def ours_mgr(self, _: int) -> None:
        lease = await self.manager.acquire(lease_seconds=30)
        await lease.release()

    async def ours_32(self, _: int) -> None:
        grant = await self.shared.acquire(self.request(), wait=True, deadline=None)
        await self.shared.release(grant.lease_id)

    async def lock_seq(self, _: int) -> None:
        await self.lock.acquire()
        await self.lock.release()

    async def locks_16(self, i: int) -> None:
        await self.locks16[i].acquire()
        await self.locks16[i].release()

    async def locks_32(self, i: int) -> None:
        await self.locks32[i].acquire()
        await self.locks32[i].release()


async def run(url: str, seconds: float, rounds: int) -> dict[str, list[float]]:
    bench = Bench(url)
    await bench.start()
    variants = bench.variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for cycle, tasks in variants.values():  # warm-up: scripts load, connections open
            await bounded(ops_per_second(cycle, min(0.3, seconds), tasks), 30, "warm-up")
        order = list(variants)
        for index in range(rounds):
            for name in order if index % 2 == 0 else order[::-1]:
                cycle, tasks = variants[name]
                rate = await bounded(ops_per_second(cycle, seconds, tasks), seconds + 30, name)
                samples[name].append(rate)
            line = "  ".join(f"{name}={samples[name][-1]:,.0f}/s" for name in order)
            print(f"round {index + 1}/{rounds}: {line}", file=sys.stderr, flush=True)
    finally:
        # Bounded: a close that never returns is a finding to print, not a reason to hang.
        await bounded_cleanup(bench.close(), 30, "closing the coordinators and the manager")
    return samples


def ratios(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    out = []
    for label, top, bottom, target in RATIOS:
        value = statistics.median(samples[top]) / statistics.median(samples[bottom])
        paired = statistics.median(
            a / b for a, b in zip(samples[top], samples[bottom], strict=True)
        )
        status = "" if target is None else verdict(value >= target)
        out.append(
            {
                "label": label,
                "value": value,
                "per_round": paired,
                "target": target,
                "status": status,
            }
        )
    return out


def report(samples: dict[str, list[float]], seconds: float, rounds: int, as_json: bool) -> None:
    print(leasepool_banner())
    print(f"python {sys.version.split()[0]}, {rounds} rounds x {seconds:g} s per variant, ABBA")
    print()
    rows = [
        [LABELS[name], f"{statistics.median(v):,.0f}", f"{min(v):,.0f}", f"{max(v):,.0f}"]
        for name, v in samples.items()
    ]
    print(format_table(["variant (acquire+release)", "median/s", "min/s", "max/s"], rows))
    print()
    found = ratios(samples)
    rows = [
        [r["label"], f"{r['value']:.2f}x", f"{r['per_round']:.2f}x",
         "" if r["target"] is None else f">= {r['target']:g}x", r["status"]]
        for r in found
    ]  # fmt: skip
    print(format_table(["ratio", "of medians", "per-round", "target", ""], rows))
    if as_json:
        print(json.dumps({"samples": samples, "ratios": found}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", "--redis-url", help="use this server instead of starting one")
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="0.3 s x 2 rounds")
    parser.add_argument("--json", action="store_true", help="also print the samples as JSON")
    args = parser.parse_args(argv)
    seconds, rounds = (0.3, 2) if args.quick else (args.seconds, args.rounds)
    if seconds <= 0 or rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")
    if args.url:
        samples = asyncio.run(run(args.url, seconds, rounds))
    else:
        with local_server() as url:
            samples = asyncio.run(run(url, seconds, rounds))
    report(samples, seconds, rounds, args.json)
    exit_if_hung()


if __name__ == "__main__":
    main()
