"""``leasepool demo --url URL --processes N``: processes sharing one capacity, live.

The parent starts N worker processes (``python -m leasepool._demo_redis``). Each
runs a few concurrent tasks that lease, work, and release through one Redis
pool, and reports when its work started and ended. The parent shows the pool's
leases as they change, then checks from those reports, independently of Redis,
that no more than ``capacity`` ran at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from leasepool._redis.url import check_url, redact_url
from leasepool._validation import positive_int


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


def _work(seconds: float) -> tuple[float, float]:
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


async def _worker(url: str, pool: str, capacity: int, tasks: int, key_prefix: str) -> None:
    from leasepool._manager import LeasedExecutorManager
    from leasepool._redis.coordinator import RedisCoordinator

    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=tasks,
        workers_per_pool=1,
        default_lease_seconds=10.0,
        lease_grace_seconds=2.0,
        coordinator=RedisCoordinator.from_url(
            url, pool=pool, capacity=capacity, key_prefix=key_prefix
        ),
    )
    await manager.start()

    async def one(index: int) -> None:
        await asyncio.sleep(random.uniform(0, 0.3))
        async with await manager.acquire(owner=f"task-{os.getpid()}-{index}") as lease:
            started, ended = await lease.run(_work, random.uniform(0.3, 0.6))
        print(
            json.dumps(
                {"pid": os.getpid(), "start": started, "end": ended, "token": lease.fencing_token}
            ),
            flush=True,
        )

    try:
        await asyncio.gather(*(one(i) for i in range(tasks)))
    finally:
        await manager.stop()


def _spawn_args(url: str, pool: str, capacity: int, tasks: int, key_prefix: str) -> list[str]:
    return [
        "-m", "leasepool._demo_redis", "--url", url, "--pool", pool,
        "--capacity", str(capacity), "--tasks", str(tasks), "--prefix", key_prefix,
    ]  # fmt: skip


def _summary(
    reports: list[dict[str, Any]], codes: list[int], expected: int, capacity: int
) -> dict[str, Any]:
    peak = max_concurrency([(r["start"], r["end"]) for r in reports])
    tokens = [r["token"] for r in reports]
    ok = peak <= capacity and len(reports) == expected and not any(codes)
    return {
        "tasks_done": len(reports),
        "exit_codes": codes,
        "peak": peak,
        "capacity": capacity,
        "distinct_tokens": len(set(tokens)),
        "grants": len(tokens),
        "cap_held": ok,
    }


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"summary": summary}), flush=True)
        return
    print(f"\nall {summary['tasks_done']} tasks done; exit codes {summary['exit_codes']}")
    print(
        f"highest concurrency seen by the work itself: {summary['peak']} "
        f"(capacity {summary['capacity']})"
    )
    print(f"fencing tokens: {summary['distinct_tokens']} distinct for {summary['grants']} grants")
    print("cap held" if summary["cap_held"] else "CAP EXCEEDED OR TASKS FAILED")


async def run_redis_demo(
    url: str,
    *,
    processes: int,
    capacity: int,
    tasks: int,
    pool: str,
    key_prefix: str = "leasepool",
    as_json: bool = False,
) -> int:
    """Run the demo; 0 when the work itself never saw more than ``capacity`` at once."""
    from leasepool._cli_format import format_status, status_json
    from leasepool._redis.admin import RedisAdmin, connect

    url = check_url(url)
    processes = positive_int("processes", processes)
    capacity = positive_int("capacity", capacity)
    tasks = positive_int("tasks", tasks)
    intro = (
        f"{processes} processes x {tasks} tasks share capacity {capacity} "
        f"in pool {pool!r} on {redact_url(url)}"
    )
    print(json.dumps({"event": intro}) if as_json else intro, flush=True)
    client = await connect(url)
    admin = RedisAdmin(client, key_prefix=key_prefix)
    try:
        await admin.set_capacity(pool, capacity)
        spawn = _spawn_args(url, pool, capacity, tasks, key_prefix)
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable, *spawn, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(processes)
        ]
        reports: list[dict[str, Any]] = []

        async def collect(child: asyncio.subprocess.Process) -> None:
            assert child.stdout is not None
            async for line in child.stdout:
                reports.append(json.loads(line))

        collecting = asyncio.gather(*(collect(child) for child in children))
        while not collecting.done():
            status = await admin.status(pool)
            done = f"{len(reports)}/{processes * tasks}"
            if as_json:
                print(json.dumps({"status": status_json(status), "done": done}), flush=True)
            else:
                print(f"\n{format_status(status)}\n  done: {done}", flush=True)
            await asyncio.wait({collecting}, timeout=0.5)
        await collecting
        codes = [await child.wait() for child in children]
    finally:
        await client.aclose()

    summary = _summary(reports, codes, processes * tasks, capacity)
    _print_summary(summary, as_json)
    return 0 if summary["cap_held"] else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m leasepool._demo_redis")
    parser.add_argument("--url", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--prefix", default="leasepool")
    args = parser.parse_args()
    asyncio.run(_worker(args.url, args.pool, args.capacity, args.tasks, args.prefix))


if __name__ == "__main__":
    main()
