"""Many waiters over several processes: 2,000 over 4 processes at capacity 8, by default.

The parent process takes every slot of a fresh pool, starts the child processes, and
waits until all their waiters are queued in Redis. Optionally it then measures what the
waiting costs the server (``INFO stats`` ``total_commands_processed``) for a while. Then
it releases its slots, and the queue drains: each waiter, when granted, holds its lease
``--hold`` seconds (an ``asyncio.sleep``), records the times, and releases it, which hands
the slot straight to the next ticket. Printed, per run (``fair=True`` and ``fair=False``):

* throughput (grants per second while draining) and wait percentiles (from the
  ``acquire`` call to its return: mostly the time spent queued);
* the largest overtaking: for each waiter, how many waiters that queued after it were
  granted before it (enqueue order from the queue's sequence numbers, grant order from
  the fencing tokens, which strictly increase with each grant);
* the most slots in use at once, from the times the work recorded (never above the
  capacity), connections per process (``CLIENT LIST``), and leftovers in Redis after.

    python benchmarks/waiting_scale.py                       # starts its own server
    python benchmarks/waiting_scale.py --waiters 400 --processes 4 --idle 0
    python benchmarks/waiting_scale.py --url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import MonotonicClock, local_server  # noqa: E402


def ignore(_: str) -> None:
    pass


async def child(url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    """One process of waiters: prints one JSON line with every waiter's times."""
    from leasepool import GrantRequest, RedisCoordinator

    coordinator = RedisCoordinator.from_url(
        url, pool=pool, capacity=capacity, fair=opts["fair"], client_name=opts["name"]
    )
    await coordinator.start(clock=MonotonicClock(), on_lost=ignore)
    pid = os.getpid()
    hold = float(opts["hold"])

    async def one(i: int) -> list[Any]:
        request = GrantRequest(f"w{pid}-{i}", "bench", 60.0, 5.0)
        called = time.monotonic()
        grant = await coordinator.acquire(request, wait=True, deadline=None)
        granted = time.monotonic()
        await asyncio.sleep(hold)
        done = time.monotonic()
        await coordinator.release(grant.lease_id)
        return [grant.lease_id, grant.fencing_token, called, granted, done]

    tasks = []
    for i in range(int(opts["waiters"])):
        tasks.append(asyncio.ensure_future(one(i)))
        if opts["stagger"]:
            await asyncio.sleep(float(opts["stagger"]))  # the processes' waiters interleave
    rows = await asyncio.gather(*tasks)
    stats = coordinator.statistics()
    await coordinator.close()
    sys.stdout.write(json.dumps({"rows": rows, "stats": stats}) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def largest_overtaking(rows: list[list[Any]], seq: dict[str, int]) -> int:
    """Max over waiters of how many later-queued waiters were granted before it."""
    import bisect

    by_seq = sorted(rows, key=lambda r: seq[r[0]])
    worst = 0
    later_tokens: list[int] = []  # tokens of waiters queued after, sorted
    for row in reversed(by_seq):
        worst = max(worst, bisect.bisect_left(later_tokens, row[1]))
        bisect.insort(later_tokens, row[1])
    return worst


async def run_once(
    url: str,
    capacity: int,
    processes: int,
    waiters: int,
    hold: float,
    fair: bool,
    idle: float,
    stagger: float,
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from leasepool import GrantRequest, RedisCoordinator

    pool = f"scale-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url, decode_responses=True)
    blocker = RedisCoordinator.from_url(url, pool=pool, capacity=capacity, fair=fair)
    await blocker.start(clock=MonotonicClock(), on_lost=ignore)
    held = [
        (await blocker.acquire(GrantRequest(f"blocker-{i}", "bench", 600, 0), wait=False,
                               deadline=None)).lease_id
        for i in range(capacity)
    ]  # fmt: skip
    per = waiters // processes
    names = [f"lp-scale-{pool}-{i}" for i in range(processes)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", url, pool, str(capacity),
            json.dumps({"fair": fair, "name": name, "hold": hold, "waiters": per,
                        "stagger": stagger}),
            stdout=asyncio.subprocess.PIPE,
        )
        for name in names
    ]  # fmt: skip
    queue_key = blocker.keys.queue
    deadline = time.monotonic() + 120
    while await client.zcard(queue_key) < per * processes:
        if time.monotonic() > deadline:
            raise SystemExit("the waiters did not all queue within 120 s")
        await asyncio.sleep(0.05)
    listed = [c.get("name", "") for c in await client.client_list()]
    connections = [listed.count(name) for name in names]
    idle_rate = None
    if idle > 0:
        await asyncio.sleep(5.5)  # one heartbeat each first
        before = int((await client.info("stats"))["total_commands_processed"])
        started = time.monotonic()
        await asyncio.sleep(idle)
        after = int((await client.info("stats"))["total_commands_processed"])
        idle_rate = (after - before - 1) / processes / (time.monotonic() - started)
    seq = {m: int(s) for m, s in await client.zrange(queue_key, 0, -1, withscores=True)}
    released = time.monotonic()
    for lease_id in held:
        await blocker.release(lease_id)
    outputs = [json.loads((await p.communicate())[0].decode().splitlines()[-1]) for p in procs]
    rows = [row for out in outputs for row in out["rows"]]
    now_ms = int((await client.time())[0]) * 1000
    leftovers = {
        "live leases": await client.zcount(blocker.keys.leases, f"({now_ms}", "+inf"),
        "queued tickets": await client.zcard(queue_key),
        "ticket entries": await client.hlen(blocker.keys.tickets),
    }
    await blocker.close()
    keys = [k async for k in client.scan_iter(match=f"leasepool:{{{pool}}}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    last = max(row[4] for row in rows)
    waits = [row[3] - max(row[2], released) for row in rows]
    return {
        "fair": fair,
        "served": len(rows),
        "waiters": per * processes,
        "drain_s": last - released,
        "grants_per_s": len(rows) / (last - released),
        "wait_p50_ms": percentile(waits, 0.5) * 1000,
        "wait_p90_ms": percentile(waits, 0.9) * 1000,
        "wait_p99_ms": percentile(waits, 0.99) * 1000,
        "wait_max_ms": max(waits) * 1000,
        "largest_overtaking": largest_overtaking(rows, seq),
        "max_in_use": max_overlap([(row[3], row[4]) for row in rows]),
        "capacity": capacity,
        "connections_per_process": connections,
        "leftovers": leftovers,
        "idle_commands_per_s_per_process": idle_rate,
        "handoffs": sum(int(out["stats"]["handoffs"]) for out in outputs),
        "claims": sum(int(out["stats"]["claims"]) for out in outputs),
        "round_trips": sum(int(out["stats"]["round_trips"]) for out in outputs),
    }


def show(result: dict[str, Any]) -> None:
    print(f"fair={result['fair']}")
    print(f"  served              {result['served']} of {result['waiters']}")
    print(f"  drain               {result['drain_s']:.2f} s, {result['grants_per_s']:.0f} grants/s")
    print(
        "  wait (queued)       "
        f"p50 {result['wait_p50_ms']:.0f} ms, p90 {result['wait_p90_ms']:.0f} ms, "
        f"p99 {result['wait_p99_ms']:.0f} ms, max {result['wait_max_ms']:.0f} ms"
    )
    print(f"  largest overtaking  {result['largest_overtaking']}")
    print(f"  most in use at once {result['max_in_use']} (capacity {result['capacity']})")
    print(f"  connections/process {result['connections_per_process']}")
    print(f"  leftovers in Redis  {result['leftovers']}")
    print(
        f"  round trips         {result['round_trips']} over the children "
        f"({result['handoffs']} hand-offs, {result['claims']} claims)"
    )
    if result["idle_commands_per_s_per_process"] is not None:
        rate = result["idle_commands_per_s_per_process"]
        print(f"  idle cost           {rate:.2f} commands/s per waiting process (target <= 1)")


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, url, pool, capacity, opts = sys.argv[1:6]
        asyncio.run(child(url, pool, int(capacity), json.loads(opts)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this server instead of starting one")
    parser.add_argument("--waiters", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--hold", type=float, default=0.002, help="seconds each lease is held")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds to measure the idle cost (0: skip)"
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=0.0005,
        help="seconds between two waiters of a process starting (so processes interleave)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def run(url: str) -> None:
        print(
            f"python {sys.version.split()[0]}, {args.waiters} waiters over {args.processes}"
            f" processes, capacity {args.capacity}, hold {args.hold * 1000:g} ms,"
            f" stagger {args.stagger * 1000:g} ms"
        )
        results = []
        for fair in (True, False):
            idle = args.idle if fair else 0.0
            result = asyncio.run(
                run_once(
                    url,
                    args.capacity,
                    args.processes,
                    args.waiters,
                    args.hold,
                    fair,
                    idle,
                    args.stagger,
                )
            )
            show(result)
            results.append(result)
        ok = all(
            r["served"] == r["waiters"]
            and r["max_in_use"] <= r["capacity"]
            and set(r["leftovers"].values()) == {0}
            for r in results
        )
        print()
        print(f"every waiter served, cap kept, nothing left in Redis: {'ok' if ok else 'NO'}")
        print(f"largest overtaking with fair=True: {results[0]['largest_overtaking']}")
        if args.json:
            print(json.dumps(results))

    if args.url:
        run(args.url)
        return
    with local_server() as url:
        run(url)


if __name__ == "__main__":
    main()
