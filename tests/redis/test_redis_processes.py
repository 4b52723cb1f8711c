"""Several real OS processes, each with its own manager, share one pool in one Redis."""

from __future__ import annotations

import time

import pytest
from _helpers import Worker

from _overlap import max_overlap

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_four_processes_with_twelve_tasks_each_never_exceed_capacity_three(
    redis_url: str, pool_name: str
) -> None:
    workers = [Worker("share", redis_url, pool_name, 3, tasks=12, hold=0.05) for _ in range(4)]
    try:
        results = [w.read_all(timeout=90) for w in workers]
    finally:
        for w in workers:
            w.close()
    records = [r for lines in results for r in lines if "start" in r]
    assert all(lines[-1] == {"done": True} for lines in results), "every process finished"
    assert len(records) == 48, "every task completed"
    intervals = [(r["start"], r["end"]) for r in records]
    assert max_overlap(intervals) <= 3
    assert max_overlap(intervals) >= 2, "the processes did run side by side"
    # Fencing: a holder that started after another one ended has a larger token.
    tokens = [r["token"] for r in records]
    assert len(set(tokens)) == len(tokens)
    for a in records:
        for b in records:
            if a["end"] < b["start"]:
                assert a["token"] < b["token"], (a, b)


def test_a_killed_holders_slot_goes_to_a_waiter_in_another_process(
    redis_url: str, pool_name: str
) -> None:
    lease, grace, recheck = 2.0, 1.0, 1.0
    holder = Worker("hold", redis_url, pool_name, 1, lease=lease, grace=grace)
    waiter = None
    try:
        held = holder.read()
        waiter = Worker("wait", redis_url, pool_name, 1, recheck=recheck)
        assert waiter.read() == {"waiting": True}
        time.sleep(0.3)  # the waiter is queued behind the holder
        holder.kill9()
        granted = waiter.read(timeout=lease + grace + recheck + 10)
        waited = granted["granted_at"] - held["acquired_at"]
        # Never before the dead holder's hard expiry, and within one reclaim interval after.
        assert waited >= lease + grace - 0.05, waited
        assert waited <= lease + grace + recheck + 1.0, waited
        assert granted["token"] > held["token"]
        waiter.read_all(timeout=30)
    finally:
        holder.close()
        if waiter is not None:
            waiter.close()
