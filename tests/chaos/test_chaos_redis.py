"""Chaos on the Redis side: a frozen server, a crash and restart, latency and a partition.

Each scenario has a Redis server of its own (``ChaosRedis``) and, for latency and
partitions, the loopback proxy of ``tests/_netproxy.py`` in front of it. Capacity
is 1, so the protected resource fences tokens exactly. Scenario promises:

* frozen Redis (SIGSTOP): ``acquire(timeout=0.5)`` and ``acquire(wait=False)``
  answer within a short bound, with clear errors; held work carries on;
* crash and restart with AOF: the cap holds throughout, tokens keep increasing;
* crash and restart without persistence: tokens granted after the restart are
  all higher than before it; the cap holds among them (the documented failure
  mode lets an old holder overlap a new one until it learns of the loss, and the
  resource's fencing is what refuses the old holder then);
* latency (replies slowed more than requests): local deadlines stay ahead of
  Redis's, so hand-offs at expiry never overlap;
* partition: the cut-off holder stops at its local deadline, before Redis gives
  the slot to another host; its acquire fails within its timeout.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _chaos_harness import ChaosRedis, Scenario, first_after

from _netproxy import NetProxy

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.slow]

FAST = {"claim": 0.5, "recheck": 1.0}
ANSWER_BOUND = 1.5
"""Seconds past its timeout within which a hung-Redis acquire must answer (generous)."""


def own_server(sc: Scenario, *, aof: bool = False) -> ChaosRedis:
    server = ChaosRedis(aof=aof)
    sc.on_cleanup(server.stop)
    server.start()
    sc.url = server.url
    return server


def proxy_for(sc: Scenario, server: ChaosRedis) -> NetProxy:
    proxy = NetProxy("127.0.0.1", server.port)
    sc.on_cleanup(proxy.close)
    return proxy


def test_redis_frozen(scenario: Any) -> None:
    """SIGSTOP Redis for 3.5 s under traffic; a prober's acquires must still answer fast."""
    sc: Scenario = scenario("redis_frozen", 1)
    try:
        server = own_server(sc)
        a = sc.worker("A", lease=3.0, grace=0.5, **FAST)
        b = sc.worker("B", lease=3.0, grace=0.5, **FAST)
        probe = sc.worker("P", lease=3.0, grace=0.5, **FAST)
        for proc in (a, b):
            proc.send("loop", seconds=7.0, timeout=1.0, jobs=2, hold=0.05, bg=True)
        time.sleep(1.5)
        t0 = sc.fault("Redis SIGSTOP for 3.5 s")
        server.pause()
        time.sleep(0.2)
        probe.send("acquire", timeout=0.5)
        probe.send("acquire", wait=False)
        probe.send("acquire", timeout=0)
        time.sleep(3.3)
        server.resume()
        t1 = time.time()
        answers = [
            probe.wait_any("acquired", "acquire_failed", since=t0, count=n, timeout=30)
            for n in (1, 2, 3)
        ]
        for proc in (a, b):
            proc.wait_for("loop_done", timeout=40)
        back = first_after([a, b], "acquired", t1)
        sc.slot_back = None if back is None else back["t"] - t1
        for proc in (a, b, probe):
            proc.finish()
        elapsed = [round(e["elapsed"], 3) for e in answers]
        sc.extra["probe_answers_s"] = elapsed
        figures = sc.report()
        sc.check(figures)
        assert back is not None, "no grant after Redis came back"
        assert [e["ev"] for e in answers] == ["acquire_failed"] * 3, answers
        limits = [0.5 + ANSWER_BOUND, ANSWER_BOUND, ANSWER_BOUND]
        assert all(e <= limit for e, limit in zip(elapsed, limits, strict=True)), (
            f"acquire(timeout=0.5), (wait=False), (timeout=0) took {elapsed} s"
        )
    finally:
        sc.cleanup()


@pytest.mark.parametrize("aof", [True, False], ids=["aof", "no_persistence"])
def test_redis_crash_and_restart(scenario: Any, aof: bool) -> None:
    """SIGKILL Redis mid-traffic, restart it 1 s later (with its AOF, or empty)."""
    name = "redis_restart_aof" if aof else "redis_restart_empty"
    sc: Scenario = scenario(name, 1)
    try:
        server = own_server(sc, aof=aof)
        opts = dict(lease=1.5, grace=0.3, auto_renew=True, **FAST)
        a = sc.worker("A", **opts)
        b = sc.worker("B", **opts)
        for proc in (a, b):
            proc.send("loop", seconds=8.0, timeout=1.0, jobs=3, hold=0.05, bg=True)
        time.sleep(2.0)
        t0 = sc.fault("Redis SIGKILL, restart 1 s later " + ("with AOF" if aof else "empty"))
        server.crash()
        time.sleep(1.0)
        server.come_back()
        t1 = time.time()
        for proc in (a, b):
            proc.wait_for("loop_done", timeout=40)
        back = first_after([a, b], "acquired", t1)
        sc.slot_back = None if back is None else back["t"] - t1
        a.finish()
        b.finish()
        before = [e["token"] for p in (a, b) for e in p.of("acquired") if e["t"] < t0]
        after = [e["token"] for p in (a, b) for e in p.of("acquired") if e["t"] > t1]
        assert before and after, (before, after)
        assert min(after) > max(before), "fencing tokens went backwards across the restart"
        # With AOF every interval counts; without, only those of post-restart tokens
        # (an old holder may overlap a new one until it learns the lease is gone).
        figures = sc.report(peak_of=None if aof else lambda r: r["token"] > max(before))
        sc.check(figures)
        if aof:
            assert figures["stale_rejected"] == 0
    finally:
        sc.cleanup()


def test_proxy_latency(scenario: Any) -> None:
    """Two holders hand the slot over at hard expiry, one behind a slow, jittery link."""
    sc: Scenario = scenario("proxy_latency", 1)
    try:
        server = own_server(sc)
        proxy = proxy_for(sc, server)
        proxy.set_latency(0.02, jitter=0.01, direction="to_server")
        proxy.set_latency(0.08, jitter=0.02, direction="to_client")
        sc.fault("latency 20-30 ms to Redis, 80-100 ms back")
        opts = dict(lease=0.5, grace=0.1, **FAST)
        a = sc.worker("A", url=proxy.url_for(), **opts)
        b = sc.worker("B", **opts)
        for proc in (a, b):
            proc.send("loop", seconds=6.0, timeout=10.0, until_expiry=True, hold=0.01, bg=True)
        for proc in (a, b):
            proc.wait_for("loop_done", timeout=40)
        a.finish()
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert figures["stale_rejected"] == 0
        assert figures["grants"] >= 4, "too few hand-offs to mean anything"
    finally:
        sc.cleanup()


def test_proxy_partition(scenario: Any) -> None:
    """Cut a holder off from Redis: it stops at its local deadline, another host goes on."""
    sc: Scenario = scenario("proxy_partition", 1)
    try:
        server = own_server(sc)
        proxy = proxy_for(sc, server)
        a = sc.worker("A", url=proxy.url_for(), lease=1.5, grace=0.3, **FAST)
        b = sc.worker("B", lease=5.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        a.send("run", n=1000, hold=0.02, until_error=True)
        b.send("acquire", timeout=30, then={"n": 10, "hold": 0.05})
        a.wait_for("job", count=3)
        t0 = sc.fault("partition between holder and Redis")
        proxy.partition()
        sc.slot_back = b.wait_for("acquired", timeout=30)["t"] - t0
        a.wait_for("job", where=lambda e: not e["ok"], timeout=30)
        asked = time.time()
        a.send("acquire", timeout=1.0)
        cut_off = a.wait_any("acquired", "acquire_failed", since=asked, timeout=30)
        b.wait_for("released", timeout=30)
        proxy.heal()
        a.finish()
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert figures["stale_rejected"] == 0
        assert cut_off["ev"] == "acquire_failed", "acquired a slot through a partition"
        assert cut_off["elapsed"] <= 1.0 + ANSWER_BOUND, f"acquire took {cut_off['elapsed']:.2f}s"
        assert [e["kind"] for e in a.of("job") if not e["ok"]] == ["LeaseExpiredError"]
    finally:
        sc.cleanup()
