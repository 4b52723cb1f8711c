"""``leasepool demo``: the library's main job, shown in a few seconds with no server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from leasepool._errors import LeaseExpiredError, LeaseUnavailableError
from leasepool._manager import LeasedExecutorManager

Print = Callable[[str], None]


def _slow_square(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value * value


async def run_local_demo(out: Print = print, *, speed: float = 1.0) -> dict[str, object]:
    """Walk through granting, waiting, refusal, expiry and stats. Returns the final stats."""
    started = time.monotonic()

    def say(message: str) -> None:
        out(f"[{time.monotonic() - started:5.2f}s] {message}")

    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=2,
        workers_per_pool=1,
        default_lease_seconds=30.0,
        lease_grace_seconds=0.2 * speed,
        name_prefix="demo",
        on_soft_expiry=lambda lease: say(f"soft expiry: {lease.owner} ran past its lease time"),
    )
    await manager.start()
    try:
        say("manager started: 2 executors, capacity 2 (embedded coordinator, no server)")

        first = await manager.acquire(owner="report-A")
        second = await manager.acquire(owner="report-B")
        for lease in (first, second):
            say(f"granted {lease.owner}: lease {lease.lease_id[-8:]} token {lease.fencing_token}")
        say(f"report-A computed 7*7 = {await first.run(_slow_square, 7, 0.05 * speed)}")

        try:
            await manager.acquire(owner="impatient", wait=False)
        except LeaseUnavailableError as exc:
            say(f"fail-fast refusal for 'impatient' (wait=False): {exc}")

        waiter = asyncio.ensure_future(manager.acquire(owner="patient", timeout=10.0))
        await asyncio.sleep(0.3 * speed)
        say(f"'patient' is waiting in line (waiting={manager.stats()['waiting']})")
        await first.release()
        say("report-A released its lease ...")
        third = await waiter
        say(f"... and 'patient' was served at once by direct handoff: token {third.fencing_token}")
        await second.release()
        await third.release()

        short = await manager.acquire(owner="overrunner", lease_seconds=0.3 * speed)
        late_executor = short.executor
        say("granted 'overrunner' a 0.3s lease with 0.2s grace; it keeps the executor too long")
        await asyncio.sleep(0.7 * speed)
        try:
            late_executor.submit(_slow_square, 3, 0)
        except LeaseExpiredError as exc:
            say(f"late submission rejected after hard expiry: {exc}")

        stats = manager.stats()
        counters = stats["counters"]
        say(
            "stats: total={total} available={available} leased={leased} waiting={waiting}".format(
                **stats
            )
        )
        say(
            "counters: acquires={acquires} waits={waits} rejections={rejections} "
            "soft_expiries={soft_expiries} hard_expiries={hard_expiries}".format(**counters)
        )
        return dict(stats)
    finally:
        await manager.stop()
        say("manager stopped")
