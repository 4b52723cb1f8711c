"""Chaos: holders and waiters that die, freeze, block their loop, or stop mid-work.

Each scenario runs worker processes against the session's Redis at capacity 1, so
the protected resource fences tokens exactly. Every scenario asserts the common
promises (peak <= cap, no work lost, only clear errors) and its own:

* a killed holder's slot comes back at its hard expiry; killed waiters cost the
  queue at most a claim window plus a recheck interval each;
* a holder frozen (SIGSTOP) or blocked past its hard expiry gets LeaseExpiredError
  for new work when it resumes;
* a waiter frozen or blocked past its claim window never runs work on the stale
  grant;
* ``stop()`` during running work keeps the slot until the work is over.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from _chaos_harness import Proc, Scenario, first_after, wait_queued

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.slow]

FAST = {"claim": 0.5, "recheck": 1.0}


def expired_errors(proc: Proc) -> list[str]:
    return [e["kind"] for e in proc.of("job") if not e["ok"]]


def test_kill9_holder(scenario: Any, sync_redis: Any) -> None:
    """SIGKILL a holder mid-work: the waiter gets the slot after its hard expiry."""
    sc: Scenario = scenario("kill9_holder", 1)
    try:
        a = sc.worker("A", lease=2.0, grace=0.5, **FAST)
        b = sc.worker("B", lease=2.0, grace=0.5, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        a.send("run", n=1000, hold=0.05, until_error=True, bg=True)
        b.send("acquire", timeout=30, then={"n": 5, "hold": 0.05})
        wait_queued(sync_redis, sc, 1)
        a.wait_for("job", count=3)
        t0 = sc.fault("SIGKILL holder")
        a.kill9()
        sc.slot_back = b.wait_for("acquired", timeout=30)["t"] - t0
        b.wait_for("released", timeout=30)
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert [e["ok"] for e in b.of("job")] == [True] * 5
        assert sc.slot_back < 2.5 + 1.0 + 5.0, "slot not back within hard expiry + recheck"
    finally:
        sc.cleanup()


def test_kill9_waiters(scenario: Any, sync_redis: Any) -> None:
    """SIGKILL the two first waiters: the third gets the released slot soon after."""
    sc: Scenario = scenario("kill9_waiters", 1)
    try:
        a = sc.worker("A", lease=20.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        dead = []
        for i, name in enumerate(("B1", "B2", "C")):
            proc = sc.worker(name, lease=5.0, **FAST)
            proc.send("acquire", timeout=40, then={"n": 3, "hold": 0.05})
            wait_queued(sync_redis, sc, i + 1)
            dead.append(proc)
        c = dead.pop()
        for proc in dead:
            sc.fault(f"SIGKILL waiter {proc.name}")
            proc.kill9()
        a.send("run", n=2, hold=0.05)
        a.wait_for("job", count=2)
        t0 = time.time()  # the slot is freed from here on
        a.send("release")
        sc.slot_back = c.wait_for("acquired", timeout=40)["t"] - t0
        c.wait_for("released", timeout=30)
        c.finish()
        a.finish()
        figures = sc.report()
        sc.check(figures)
        assert [e["ok"] for e in c.of("job")] == [True] * 3
        # Each dead waiter may hold the slot for a claim window, found by the next heartbeat.
        assert sc.slot_back < 2 * (0.5 + 1.0) + 5.0
    finally:
        sc.cleanup()


def _stalled_holder(name: str, scenario: Any, stall: str) -> None:
    """A holder stalls past its hard expiry; on resuming, its new work must be refused."""
    sc: Scenario = scenario(name, 1)
    try:
        a = sc.worker("A", lease=1.0, grace=0.3, **FAST)
        b = sc.worker("B", lease=5.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        a.send("run", n=3, hold=0.05)
        a.wait_for("job", count=3)
        b.send("acquire", timeout=30, then={"n": 30, "hold": 0.05})
        b.wait_for("acquiring")
        t0 = sc.fault(f"{stall} holder past its hard expiry")
        if stall == "SIGSTOP":
            a.signal(signal.SIGSTOP)
        else:
            a.send("block", seconds=3.0)
        a.send("run", n=3, hold=0.05)  # read only once the holder runs again
        sc.slot_back = b.wait_for("acquired", timeout=30)["t"] - t0
        if stall == "SIGSTOP":
            a.signal(signal.SIGCONT)
        a.wait_for("job", count=4, timeout=30)
        b.wait_for("released", timeout=30)
        a.finish()
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert expired_errors(a)[-3:] == ["LeaseExpiredError"] * 3, a.of("job")
        assert figures["stale_rejected"] == 0
    finally:
        sc.cleanup()


def test_sigstop_holder_past_hard_expiry(scenario: Any) -> None:
    _stalled_holder("sigstop_holder", scenario, "SIGSTOP")


def test_blocked_loop_holder(scenario: Any) -> None:
    _stalled_holder("blocked_loop_holder", scenario, "block")


def _stalled_waiter(name: str, scenario: Any, sync_redis: Any, stall: str) -> None:
    """A waiter stalls past its claim window after the slot was handed to it."""
    sc: Scenario = scenario(name, 1)
    try:
        a = sc.worker("A", lease=20.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        b = sc.worker("B", lease=5.0, **FAST)
        b.send("acquire", timeout=40, then={"n": 5, "hold": 0.05}, bg=True)
        wait_queued(sync_redis, sc, 1)
        c = sc.worker("C", lease=5.0, **FAST)
        c.send("acquire", timeout=40, then={"n": 30, "hold": 0.05})
        wait_queued(sync_redis, sc, 2)
        sc.fault(f"{stall} waiter past its claim window")
        if stall == "SIGSTOP":
            b.signal(signal.SIGSTOP)
        else:
            b.send("block", seconds=3.0)
            b.wait_for("blocking")
        t0 = time.time()
        a.send("release")
        got = c.wait_for("acquired", timeout=30)
        sc.slot_back = got["t"] - t0
        if stall == "SIGSTOP":
            b.signal(signal.SIGCONT)
        c.wait_for("released", timeout=30)
        b.wait_any("released", "acquire_failed", since=t0, timeout=40)
        for proc in (a, b, c):
            proc.finish()
        figures = sc.report()
        sc.check(figures)
        assert figures["stale_rejected"] == 0
        # B either failed clearly or was granted a slot after C's: never the stale grant.
        b_granted = first_after([b], "acquired", 0)
        assert b_granted is None or b_granted["token"] > got["token"], b.events
    finally:
        sc.cleanup()


def test_sigstop_waiter_past_claim_window(scenario: Any, sync_redis: Any) -> None:
    _stalled_waiter("sigstop_waiter", scenario, sync_redis, "SIGSTOP")


def test_blocked_loop_waiter(scenario: Any, sync_redis: Any) -> None:
    _stalled_waiter("blocked_loop_waiter", scenario, sync_redis, "block")


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_stop_during_running_work(scenario: Any, sync_redis: Any, backend: str) -> None:
    """stop() while a job runs: nobody else gets the slot before that job has ended."""
    sc: Scenario = scenario(f"stop_running_{backend}", 1)
    try:
        a = sc.worker("A", lease=10.0, grace=1.0, backend=backend, max_pools=1, **FAST)
        b = sc.worker("B", lease=5.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        a.send("run", n=1, hold=2.0, bg=True)
        b.send("acquire", timeout=30, then={"n": 3, "hold": 0.05})
        wait_queued(sync_redis, sc, 1)
        time.sleep(0.5)  # the job is running by now
        t0 = sc.fault(f"stop() during running work ({backend})")
        a.send("stop")
        a.wait_for("stopped", timeout=30)
        sc.slot_back = b.wait_for("acquired", timeout=30)["t"] - t0
        b.wait_for("released", timeout=30)
        a.finish()
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert len(a.of("job")) == 1, "the running job reported no outcome"
        assert figures["stale_rejected"] == 0
    finally:
        sc.cleanup()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_stop_with_work_past_its_bound(scenario: Any, sync_redis: Any, backend: str) -> None:
    """stop() with a job longer than ``stop_timeout``: process work is killed before the
    slot is freed; thread work keeps the slot until the lease's hard expiry."""
    sc: Scenario = scenario(f"stop_overrun_{backend}", 1)
    try:
        a = sc.worker(
            "A", lease=3.0, grace=0.5, backend=backend, max_pools=1, stop_timeout=0.5, **FAST
        )
        b = sc.worker("B", lease=5.0, **FAST)
        a.send("acquire", timeout=10)
        a.wait_for("acquired")
        a.send("run", n=1, hold=2.5, bg=True)
        b.send("acquire", timeout=30, then={"n": 3, "hold": 0.05})
        wait_queued(sync_redis, sc, 1)
        time.sleep(0.3)  # the job is running by now
        t0 = sc.fault(f"stop() with work past stop_timeout ({backend})")
        a.send("stop")
        a.wait_for("stopped", timeout=30)
        sc.slot_back = b.wait_for("acquired", timeout=30)["t"] - t0
        b.wait_for("released", timeout=30)
        outcome = a.wait_for("job", timeout=30)
        a.finish()
        b.finish()
        figures = sc.report()
        sc.check(figures)
        assert figures["stale_rejected"] == 0
        if backend == "process":
            assert not outcome["ok"] and outcome["clear"], outcome  # killed, said so
        else:
            assert outcome["ok"], outcome  # a thread cannot be stopped: it ran to its end
    finally:
        sc.cleanup()
