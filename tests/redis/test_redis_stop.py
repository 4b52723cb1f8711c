"""stop() while work runs, across two real OS processes sharing capacity 1 on a real Redis.

Process A holds the only slot and calls ``manager.stop()`` in the middle of
1.5 s of work; process B waits for the slot. Each piece of work records its own
start and end (``time.time()`` inside the work), so the check does not trust
leasepool's view: the two must never overlap.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import Worker

from _overlap import max_overlap
from leasepool import GrantRequest, RedisCoordinator

pytestmark = [pytest.mark.redis, pytest.mark.slow]

STOP_WORKER = Path(__file__).resolve().parent / "_stop_worker.py"


class StopWorker(Worker):
    """A ``_stop_worker.py`` process, read with :class:`Worker`'s methods."""

    def __init__(self, role: str, url: str, pool: str, backend: str) -> None:
        # PYTHONFAULTHANDLER: a hung worker sent SIGABRT prints every thread's stack.
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        self.process = subprocess.Popen(
            [sys.executable, str(STOP_WORKER), role, url, pool, backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._queue = None
        self._stderr: list[str] = []
        stderr, kept = self.process.stderr, self._stderr

        def drain() -> None:
            assert stderr is not None
            for line in stderr:
                kept.append(line)

        self._stderr_thread = threading.Thread(target=drain, daemon=True)
        self._stderr_thread.start()

    def read_all_or_dump(self, timeout: float) -> list[dict[str, Any]]:
        """``read_all``; if the worker hangs, fail with the stacks of its threads."""
        try:
            return self.read_all(timeout=timeout)
        except AssertionError as exc:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGABRT)
                self.process.wait(10)
                self._stderr_thread.join(5)
            raise AssertionError(f"{exc}\n{self.stderr_text()[-6000:]}") from None


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_stop_mid_work_never_lets_the_next_holder_overlap(
    redis_url: str, pool_name: str, backend: str
) -> None:
    holder = StopWorker("holder", redis_url, pool_name, backend)
    waiter: StopWorker | None = None
    try:
        assert "acquired" in holder.read(timeout=30)
        waiter = StopWorker("waiter", redis_url, pool_name, backend)
        assert waiter.read(timeout=30) == {"waiting": True}
        time.sleep(0.5)  # the waiter is queued in Redis behind the holder
        holder.send("work")
        assert holder.read(timeout=30) == {"working": True}
        time.sleep(0.3)  # mid-work
        holder.send("stop")
        held = {
            key: value
            for line in holder.read_all_or_dump(timeout=20)
            for key, value in line.items()
        }
        lines = waiter.read_all_or_dump(timeout=20)
    finally:
        holder.close()
        if waiter is not None:
            waiter.close()
    granted = next(line for line in lines if "granted_at" in line)
    served = next(line for line in lines if "start" in line)
    # Not vacuous: stop() was called while the work still ran.
    assert held["stopping_at"] < held["end"]
    # The cap held: the next holder's work never overlapped, and its grant came after.
    assert max_overlap([(held["start"], held["end"]), (served["start"], served["end"])]) == 1
    assert granted["granted_at"] >= held["end"]
    assert served["token"] > held["token"]
    # And stop() itself returned only once the work had ended.
    assert held["stopped_at"] >= held["end"]


class RealClock:
    """The public ``Clock`` protocol on real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.monotonic()), callback)


def ignore(_: str) -> None:
    pass


async def test_closing_keeps_a_handed_off_lease_that_is_still_held(
    redis_url: str, pool_name: str
) -> None:
    """stop() keeps the slot of thread work it could not stop; close() must not free it.

    ``b`` gets its slot by hand-off (the case with a claim step) and closes the
    moment the grant arrives, as a manager does when stop() gives up on a thread.
    The slot must keep counting in Redis past the claim window, until its expiry.
    """
    clock = RealClock()
    a, b = (
        RedisCoordinator.from_url(redis_url, pool=pool_name, capacity=1, claim_window=0.2)
        for _ in range(2)
    )
    await a.start(clock=clock, on_lost=ignore)
    await b.start(clock=clock, on_lost=ignore)
    closing: list[asyncio.Future[None]] = []
    try:
        await a.acquire(GrantRequest("a-1", "a", 30.0, 1.0), wait=False, deadline=None)
        waiting = asyncio.create_task(
            b.acquire(GrantRequest("b-1", "b", 30.0, 1.0), wait=True, deadline=None)
        )
        deadline = time.monotonic() + 10
        while (await a.status()).waiting != 1:
            assert time.monotonic() < deadline, "b never queued"
            await asyncio.sleep(0.01)
        waiting.add_done_callback(lambda _: closing.append(asyncio.ensure_future(b.close())))
        await a.release("a-1")
        await asyncio.wait_for(waiting, 10)
        await asyncio.wait_for(closing[0], 10)
        await asyncio.sleep(0.6)  # well past the claim window
        assert [lease.lease_id for lease in (await a.status()).leases] == ["b-1"]
    finally:
        await b.close()
        await a.close()
