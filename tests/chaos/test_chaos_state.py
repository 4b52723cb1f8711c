"""Chaos on the pool's state: cancellation storms, and garbage written into every key.

Promises:

* a storm of acquires with random timeouts, cancelled acquires and cancelled
  releases keeps the cap and leaves nothing behind in Redis once every process
  has stopped (no live lease, ticket, queued id or waiting process); the full
  capacity can then be taken at once;
* garbage in any key (a wrong type, or a bad field in ``meta`` or a lease hash)
  gives every caller a clear answer within a bound: a lease, a timeout, or a
  leasepool error (``CoordinatorStateError`` naming the key when it is the
  damage that stops it); never a hang or a raw redis-py or parsing error. Once
  the key is repaired no slot is left taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from _chaos_harness import Proc, Scenario

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.slow]

FAST = {"claim": 0.5, "recheck": 1.0}


def live_state(client: Any, pool: str) -> dict[str, int]:
    base = f"leasepool:{{{pool}}}"
    now_ms = int(client.time()[0]) * 1000
    return {
        "live_leases": client.zcount(f"{base}:leases", f"({now_ms}", "+inf"),
        "queue": client.zcard(f"{base}:queue"),
        "tickets": client.hlen(f"{base}:tickets"),
        "waiters": client.zcard(f"{base}:waiters"),
    }


def take_all(proc: Proc, capacity: int, since: float) -> list[dict[str, Any]]:
    """``capacity`` acquires at once (waiting up to 5 s), each released after one job."""
    for _ in range(capacity):
        proc.send("acquire", timeout=5.0, then={"n": 1, "hold": 0.01}, bg=True)
    return [
        proc.wait_any("acquired", "acquire_failed", since=since, count=n + 1, timeout=30)
        for n in range(capacity)
    ]


def test_cancellation_storm(scenario: Any, sync_redis: Any) -> None:
    """Three processes x 5 tasks x 15 rounds of acquire/cancel/release at capacity 2."""
    sc: Scenario = scenario("cancellation_storm", 2)
    try:
        procs = [sc.worker(f"S{i}", lease=5.0, **FAST) for i in range(3)]
        sc.fault("random timeouts; 30% of acquires and releases cancelled")
        for proc in procs:
            proc.send("storm", tasks=5, rounds=15, hold=0.01, bg=True)
        for proc in procs:
            proc.wait_for("storm_done", timeout=50)
        cancelled = sum(len(p.of("acquire_cancelled")) for p in procs)
        for proc in procs:
            proc.finish()
        after = live_state(sync_redis, sc.pool)
        t0 = time.time()
        fresh = sc.worker("F", lease=5.0, **FAST)
        answers = take_all(fresh, 2, t0)
        fresh.finish()
        sc.slot_back = max(e["t"] for e in answers) - t0
        sc.extra.update(cancelled_acquires=cancelled, redis_after=after)
        figures = sc.report()
        sc.check(figures)
        assert after == {"live_leases": 0, "queue": 0, "tickets": 0, "waiters": 0}, after
        assert [e["ev"] for e in answers] == ["acquired", "acquired"], answers
        assert [e["elapsed"] < 1.0 for e in answers] == [True, True], "a slot was left taken"
    finally:
        sc.cleanup()


Damage = Callable[[Any, str, str], Any]
"""(client, pool key base, a lease id of the holder) -> what repair() needs."""


def _wrong_type(name: str) -> tuple[Damage, Callable[[Any, str, Any], None]]:
    def damage(client: Any, base: str, lease_id: str) -> Any:
        key = f"{base}:lease:{lease_id}" if name == "lease" else f"{base}:{name}"
        saved = client.dump(key)
        client.delete(key)
        client.set(key, "garbage")
        return key, saved

    def repair(client: Any, base: str, saved: Any) -> None:
        key, dumped = saved
        client.delete(key)
        if dumped is not None and name in ("meta", "lease"):
            client.restore(key, 0, dumped)

    return damage, repair


def _bad_field(key: str, field: str, value: str) -> tuple[Damage, Callable[[Any, str, Any], None]]:
    def target(base: str, lease_id: str) -> str:
        return f"{base}:lease:{lease_id}" if key == "lease" else f"{base}:{key}"

    def damage(client: Any, base: str, lease_id: str) -> Any:
        name = target(base, lease_id)
        saved = (name, client.hget(name, field))
        client.hset(name, field, value)
        return saved

    def repair(client: Any, base: str, saved: Any) -> None:
        name, old = saved
        if old is None:
            client.hdel(name, field)
        else:
            client.hset(name, field, old)

    return damage, repair


def _queue_ghost() -> tuple[Damage, Callable[[Any, str, Any], None]]:
    """A queued id at the head whose ticket is nonsense."""

    def damage(client: Any, base: str, lease_id: str) -> Any:
        client.zadd(f"{base}:queue", {"ghost": 0})
        client.hset(f"{base}:tickets", "ghost", "g|not-a-token|x|y|z")
        return None

    def repair(client: Any, base: str, saved: Any) -> None:
        client.zrem(f"{base}:queue", "ghost")
        client.hdel(f"{base}:tickets", "ghost")

    return damage, repair


CASES: dict[str, tuple[Damage, Callable[[Any, str, Any], None]]] = {
    "meta wrong type": _wrong_type("meta"),
    "meta capacity 2.5": _bad_field("meta", "capacity", "2.5"),
    "meta capacity nan": _bad_field("meta", "capacity", "nan"),
    "meta capacity inf": _bad_field("meta", "capacity", "inf"),
    "meta capacity -1": _bad_field("meta", "capacity", "-1"),
    "meta capacity 1e14": _bad_field("meta", "capacity", "1e14"),
    "meta fence 1e300": _bad_field("meta", "fence", "1e300"),
    "meta qseq abc": _bad_field("meta", "qseq", "abc"),
    "leases wrong type": _wrong_type("leases"),
    "queue wrong type": _wrong_type("queue"),
    "tickets wrong type": _wrong_type("tickets"),
    "waiters wrong type": _wrong_type("waiters"),
    "queue ghost ticket": _queue_ghost(),
    "lease hash wrong type": _wrong_type("lease"),
    "lease hash token zz": _bad_field("lease", "token", "zz"),
    "lease hash hard_ms x": _bad_field("lease", "hard_ms", "x"),
}
ACCEPTABLE = {"CoordinatorStateError", "LeaseUnavailableError", "TimeoutError"}


def _one_case(sc: Scenario, client: Any, holder: Proc, prober: Proc, case: str) -> list[str]:
    """Damage one key under load, probe, repair; return what went wrong (empty: fine)."""
    damage, repair = CASES[case]
    base = f"leasepool:{{{sc.pool}}}"
    problems: list[str] = []
    t0 = time.time()
    holder.send("acquire", wait=False)
    holder.send("acquire", wait=False)
    held = [holder.wait_for("acquired", where=lambda e: e["t"] >= t0, count=n) for n in (1, 2)]
    saved = damage(client, base, held[-1]["lease_id"])
    sc.fault(case)
    t1 = time.time()
    prober.send("acquire", wait=False, then={"n": 1, "hold": 0.01}, bg=True)
    for _ in range(3):
        prober.send("acquire", timeout=1.0, then={"n": 1, "hold": 0.01}, bg=True)
    holder.send("release")  # the damaged lease: its release meets the damage too
    answers = [
        prober.wait_any("acquired", "acquire_failed", since=t1, count=n, timeout=15)
        for n in range(1, 5)
    ]
    released = holder.wait_any("released", "release_failed", since=t1, timeout=15)
    for answer in [*answers, released]:
        kind = answer.get("kind")
        if kind is not None and kind not in ACCEPTABLE:
            problems.append(f"{case}: {answer['error']}")
        if kind == "CoordinatorStateError" and base not in answer["error"]:
            problems.append(f"{case}: the error does not name the key: {answer['error']}")
        if answer.get("elapsed", 0.0) > 5.0:
            problems.append(f"{case}: answered after {answer['elapsed']:.1f}s")
    print(case, [a.get("kind", a["ev"]) for a in [*answers, released]])  # shown on failure
    tokens = [e["token"] for e in answers if e["ev"] == "acquired"]
    if len(set(tokens)) != len(tokens):
        problems.append(f"{case}: duplicate fencing tokens {tokens}")
    time.sleep(0.3)  # let granted probes finish and release
    repair(client, base, saved)
    holder.send("release", all=True)
    t2 = time.time()
    retake = take_all(prober, sc.capacity, t2)
    if [e["ev"] for e in retake] != ["acquired"] * sc.capacity:
        problems.append(f"{case}: a slot stayed taken after repair: {retake}")
    deadline = time.monotonic() + 10
    while (left := live_state(client, sc.pool)["live_leases"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        problems.append(f"{case}: {left} slots still taken 10 s after everyone released")
    return problems


@pytest.mark.timeout(170)
def test_garbage_in_every_key(scenario: Any, sync_redis: Any) -> None:
    """Each case damages one key while two slots are held and four callers arrive."""
    sc: Scenario = scenario("garbage_in_every_key", 2)
    try:
        holder = sc.worker("H", lease=2.0, grace=0.2, **FAST)
        prober = sc.worker("P", lease=30.0, **FAST)
        problems: list[str] = []
        for case in CASES:
            problems += _one_case(sc, sync_redis, holder, prober, case)
        holder.finish()
        prober.finish()
        sc.extra["cases"] = len(CASES)
        sc.extra["problems"] = problems
        figures = sc.report()
        assert not problems, "\n".join(problems)
        sc.check(figures)
    finally:
        sc.cleanup()
