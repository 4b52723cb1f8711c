"""Chaos soak: short-lived processes churn (a quarter SIGKILLed) around one long-lived one.

The long-lived process L takes leases in a loop (with ``auto_renew``) for the whole
soak. Promises, besides the common ones (peak <= cap, no work lost):

* L stays flat: once idle again, its coordinator tables (``held``, ``waiting``,
  ``unclaimed``), its asyncio task count and its thread count are back at their
  idle baseline, and its RSS grew by less than ``RSS_SLACK``;
* Redis returns to baseline without anyone else touching the pool: within
  ``RECLAIM_BOUND`` seconds no live lease or live waiting process is left, and the
  queue, tickets and waiters are back at their baseline, or what dead processes
  left there sits in keys that expire by themselves within ``LEFTOVER_TTL``; lease
  hashes left by killed holders all carry a TTL;
* once L's ``manager.stop()`` returns, none of its tasks is left running.

The throughput under churn, as a ratio of L's quiet rate, is measured and reported
(a speed figure: reported, not asserted).
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from _chaos_harness import Proc, Scenario

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.slow]

OPTS = {"lease": 2.0, "grace": 0.3, "claim": 0.5, "recheck": 1.0, "auto_renew": True}
QUIET_S = 3.0
CHURN_S = 12.0
ALIVE = 3
RECLAIM_BOUND = 15.0
LEFTOVER_TTL = 300
"""Seconds that a dead process's leftover entries may live on, at most, by their key's TTL."""
RSS_SLACK = 16 * 2**20


def footprint(client: Any, pool: str) -> dict[str, int]:
    base = f"leasepool:{{{pool}}}"
    now_ms = int(client.time()[0]) * 1000
    hashes = list(client.scan_iter(match=f"{base}:lease:*", count=1000))
    parts = ("leases", "queue", "tickets", "waiters")
    return {
        "keys": len(list(client.scan_iter(match=f"{base}:*", count=1000))),
        "live_leases": client.zcount(f"{base}:leases", f"({now_ms}", "+inf"),
        "live_waiters": client.zcount(f"{base}:waiters", f"({now_ms}", "+inf"),
        # The longest time a key of the pool's tables lives on by itself (-1: forever).
        "ttl_s": max(_ttl(client, f"{base}:{part}") for part in parts),
        "leases_zset": client.zcard(f"{base}:leases"),
        "queue": client.zcard(f"{base}:queue"),
        "tickets": client.hlen(f"{base}:tickets"),
        "waiters": client.zcard(f"{base}:waiters"),
        "lease_hashes": len(hashes),
        "lease_hashes_without_ttl": sum(client.ttl(key) < 0 for key in hashes),
    }


def _ttl(client: Any, key: str) -> int:
    """Seconds until ``key`` expires: 0 if it is gone, -1 if it never expires."""
    ttl = int(client.ttl(key))
    return 0 if ttl == -2 else ttl


def idle_stats(proc: Proc, since: float) -> dict[str, Any]:
    proc.send("stats")
    return proc.wait_for("stats", where=lambda e: e["t"] >= since)


def ok_jobs(proc: Proc, start: float, end: float) -> list[float]:
    return sorted(e["t"] for e in proc.of("job") if e["ok"] and start <= e["t"] <= end)


def churn(sc: Scenario, until: float) -> tuple[int, int]:
    """Keep ALIVE short-lived workers going until ``until``; SIGKILL every fourth one."""
    rng = random.Random(8)
    live: list[tuple[Proc, float | None]] = []
    started = killed = 0
    exiting: set[str] = set()
    while (time.time() < until or live) and time.time() < until + 20:
        for proc, kill_at in list(live):
            if kill_at is not None and time.time() >= kill_at:
                sc.fault(f"SIGKILL churner {proc.name}")
                proc.kill9()
                killed += 1
            elif proc.process.poll() is None:
                if proc.of("loop_done") and proc.name not in exiting:
                    exiting.add(proc.name)
                    proc.send("exit")
                continue
            proc.close()
            live.remove((proc, kill_at))
        if time.time() < until - 1.5 and len(live) < ALIVE:
            started += 1
            proc = Proc(f"C{started}", sc_config(sc))
            sc.procs.append(proc)
            proc.send("loop", seconds=rng.uniform(1.0, 2.0), tasks=2, timeout=3.0, hold=0.01)
            kill_at = time.time() + rng.uniform(0.8, 2.5) if started % 4 == 0 else None
            live.append((proc, kill_at))
        time.sleep(0.05)
    # A short-lived worker that did not finish within 20 s of the end is hung.
    sc.extra["hung"] = [{p.name: p.events[-2:]} for p, _ in live]
    return started, killed


def sc_config(sc: Scenario) -> dict[str, Any]:
    return {
        "url": sc.url,
        "pool": sc.pool,
        "capacity": sc.capacity,
        "port": sc.resource.port,
        **OPTS,
    }


def _reclaimed(now: dict[str, int], baseline: dict[str, int]) -> bool:
    """Nothing live is left, and what dead processes left goes away by itself (a TTL)."""
    if now["live_leases"] > baseline["live_leases"] or now["live_waiters"] > 0:
        return False
    tables = ("queue", "tickets", "waiters")
    return all(now[k] <= baseline[k] for k in tables) or 0 <= now["ttl_s"] <= LEFTOVER_TTL


def wait_baseline(client: Any, pool: str, baseline: dict[str, int]) -> tuple[float, dict[str, int]]:
    """Seconds until the pool's structures are back at ``baseline`` (or the bound), and them."""
    start = time.monotonic()
    while True:
        now = footprint(client, pool)
        if _reclaimed(now, baseline):
            return time.monotonic() - start, now
        if time.monotonic() - start > RECLAIM_BOUND:
            return time.monotonic() - start, now
        time.sleep(0.25)


@pytest.mark.timeout(120)
def test_churn_soak(scenario: Any, sync_redis: Any) -> None:
    sc: Scenario = scenario("churn_soak", 2)
    try:
        long_lived = sc.worker("L", **OPTS)
        loop = {"tasks": 2, "jobs": 1, "hold": 0.01, "timeout": 10.0}
        long_lived.send("loop", seconds=1.0, **loop)
        long_lived.wait_for("loop_done", timeout=30)
        start_stats = idle_stats(long_lived, time.time())
        redis_start = footprint(sync_redis, sc.pool)

        q0 = time.time()
        long_lived.send("loop", seconds=QUIET_S, **loop)
        long_lived.wait_for("loop_done", count=2, timeout=30)
        quiet = len(ok_jobs(long_lived, q0, q0 + QUIET_S)) / QUIET_S

        c0 = time.time()
        long_lived.send("loop", seconds=CHURN_S, bg=True, **loop)
        started, killed = churn(sc, c0 + CHURN_S)
        long_lived.wait_for("loop_done", count=3, timeout=60)
        during = ok_jobs(long_lived, c0, c0 + CHURN_S)
        rate = len(during) / CHURN_S
        gaps = [b - a for a, b in zip([c0, *during], [*during, c0 + CHURN_S], strict=True)]

        reclaim_s, redis_end = wait_baseline(sync_redis, sc.pool, redis_start)
        end_stats = idle_stats(long_lived, time.time())
        long_lived.finish()
        left_after_stop = long_lived.of("bye")[0]["tasks_left"]
        sc.slot_back = max(gaps)
        sc.extra.update(
            soak={
                "processes": started,
                "killed": killed,
                "quiet_rate": round(quiet, 1),
                "churn_rate": round(rate, 1),
                "ratio": round(rate / quiet, 3) if quiet else None,
                "max_stall_s": round(max(gaps), 3),
                "reclaim_s": round(reclaim_s, 2),
                "reclaimed": _reclaimed(redis_end, redis_start),
                "tasks_left_after_stop": left_after_stop,
                "process_start": _process(start_stats),
                "process_end": _process(end_stats),
                "redis_start": redis_start,
                "redis_end": redis_end,
            }
        )
        figures = sc.report()
        assert not figures["hung"], f"short-lived workers hung: {figures['hung']}"
        sc.check(figures)
        _check_flat(start_stats, end_stats, redis_start, redis_end)
        assert not left_after_stop, f"tasks left running after manager.stop(): {left_after_stop}"
    finally:
        sc.cleanup()


def _process(stats: dict[str, Any]) -> dict[str, Any]:
    coordinator = stats["coordinator"]
    return {
        "rss_mb": round(stats["rss"] / 2**20, 1),
        "tasks": stats["tasks"],
        "threads": stats["threads"],
        "held": coordinator["held"],
        "waiting": coordinator["waiting"],
        "unclaimed": coordinator["unclaimed"],
    }


def _check_flat(
    start: dict[str, Any], end: dict[str, Any], r_start: dict[str, int], r_end: dict[str, int]
) -> None:
    before, after = _process(start), _process(end)
    for key in ("held", "waiting", "unclaimed", "tasks", "threads"):
        assert after[key] <= before[key], f"{key} grew: {before[key]} -> {after[key]}"
    assert end["rss"] - start["rss"] < RSS_SLACK, f"RSS {before['rss_mb']} -> {after['rss_mb']} MB"
    assert _reclaimed(r_end, r_start), f"Redis not back at its baseline: {r_start} -> {r_end}"
    assert r_end["lease_hashes_without_ttl"] == 0, r_end
