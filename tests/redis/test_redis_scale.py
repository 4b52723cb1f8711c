"""Many waiters over several real processes; and a storm of cancellations and timeouts.

Both check the cap from timestamps recorded by the work itself (one monotonic clock for
every process of the host), not from Redis, and look at Redis afterwards for leftovers.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from _helpers import Worker, wait_until

import redis
from _overlap import max_overlap

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def leftovers(client: Any, pool: str) -> dict[str, int]:
    base = f"leasepool:{{{pool}}}"
    now_ms = int(client.time()[0]) * 1000
    return {
        "live leases": client.zcount(f"{base}:leases", f"({now_ms}", "+inf"),
        "queued tickets": client.zcard(f"{base}:queue"),
        "ticket entries": client.hlen(f"{base}:tickets"),
    }


def overtaking(records: list[dict[str, Any]], seq: dict[str, int]) -> int:
    """The most waiters that queued later and were granted earlier than any one waiter.

    Grant order is fencing-token order (tokens strictly increase with each grant).
    """
    ordered = sorted(records, key=lambda r: seq[r["lease_id"]])
    worst = 0
    for i, record in enumerate(ordered):
        later = ordered[i + 1 :]
        worst = max(worst, sum(1 for other in later if other["token"] < record["token"]))
    return worst


def test_four_hundred_waiters_over_four_processes_are_served_in_queue_order(
    redis_url: str, pool_name: str
) -> None:
    capacity, processes, tasks = 8, 4, 100
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    blocker = Worker("block", redis_url, pool_name, capacity, count=capacity, lease=120)
    workers: list[Worker] = []
    try:
        assert len(blocker.read()["held"]) == capacity
        workers = [
            Worker(
                "queue",
                redis_url,
                pool_name,
                capacity,
                tasks=tasks,
                hold=0.002,
                stagger=0.001,  # the processes' tickets interleave in the queue
                fair=True,
                client_name=f"lp-scale-{i}",
            )
            for i in range(processes)
        ]
        for w in workers:
            assert w.read(timeout=60)["queued"] == tasks
        # Connections: a handful per process, however many of its callers wait.
        names = [c.get("name", "") for c in client.client_list()]
        per_process = [names.count(f"lp-scale-{i}") for i in range(processes)]
        assert all(1 <= n <= 6 for n in per_process), per_process
        seq = {
            member: int(score)
            for member, score in client.zrange(f"leasepool:{{{pool_name}}}:queue", 0, -1,
                                               withscores=True)
        }  # fmt: skip
        assert len(seq) == processes * tasks
        blocker.send("release")
        records = []
        for w in workers:
            lines = w.read_until("done", timeout=120)
            records += [line for line in lines if "lease_id" in line]
            assert lines[-1]["stats"]["waiting"] == 0
        assert len(records) == processes * tasks, "every waiter was served"
        assert max_overlap([(r["start"], r["end"]) for r in records]) <= capacity
        assert overtaking(records, seq) == 0, "grants follow the enqueue order (fair=True)"
        owners = [r["lease_id"].split("-")[0] for r in sorted(records, key=lambda r: r["token"])]
        switches = sum(1 for x, y in itertools.pairwise(owners) if x != y)
        assert switches > processes * tasks // 4, "grants went back and forth between processes"
        tokens = [r["token"] for r in records]
        assert len(set(tokens)) == len(tokens)
        assert leftovers(client, pool_name) == {
            "live leases": 0,
            "queued tickets": 0,
            "ticket entries": 0,
        }
    finally:
        for w in [*workers, blocker]:
            w.close()
        client.close()


def test_a_cancellation_storm_leaves_no_ticket_and_no_lease_and_never_exceeds_the_cap(
    redis_url: str, pool_name: str
) -> None:
    """Three processes, eight tasks each: acquires with random timeouts (0 to 0.1 s),
    a quarter of them cancelled at random moments, a third of the releases cancelled
    mid-way. Leases, claim windows and tickets all last far longer than the check below,
    so nothing can expire its way out of a leak."""
    capacity = 3
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    workers = [
        Worker(
            "storm",
            redis_url,
            pool_name,
            capacity,
            tasks=8,
            rounds=40,
            hold=0.003,
            lease=60,
            claim=30,
            recheck=30,
            seed=seed,
        )
        for seed in range(3)
    ]
    try:
        records: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for w in workers:
            lines = w.read_until("done", timeout=120)
            records += [line for line in lines if "start" in line]
            for key, value in lines[-1]["counts"].items():
                counts[key] = counts.get(key, 0) + value
        assert counts["granted"] == len(records) > 0
        assert counts["cancelled_acquires"] > 0 and counts["cancelled_releases"] > 0
        assert counts["timeouts"] > 0
        assert max_overlap([(r["start"], r["end"]) for r in records]) <= capacity
        # Background clean-ups (a cancelled release is finished in the background) take
        # milliseconds; nothing here expires for 30 s or more.
        started = time.monotonic()
        wait_until(
            lambda: (
                leftovers(client, pool_name)
                == {"live leases": 0, "queued tickets": 0, "ticket entries": 0}
            ),
            5.0,
            f"leftovers: {leftovers(client, pool_name)}",
        )
        assert time.monotonic() - started < 5.0
        for w in workers:
            w.send("exit")
        for w in workers:
            w.read_all(timeout=30)
    finally:
        for w in workers:
            w.close()
        client.close()
