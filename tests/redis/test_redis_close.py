"""Closing coordinators that share one client never hangs.

Every coordinator started on one client (in one event loop) shares one pub/sub
listener. Each start and close restarts that listener; a close must end it in
bounded time even when the restarts pile up (a restart that is itself cancelled
while it waits for the one before it must not swallow its own cancellation).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from leasepool import GrantRequest, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK

pytestmark = pytest.mark.redis

CLOSE_BOUND = 15.0  # seconds; a close takes milliseconds, the hang was 600 s


def _ignore(_lease_id: str) -> None:
    return None


async def _start_three(client: Any, pool_name: str) -> list[RedisCoordinator]:
    coordinators = [RedisCoordinator(client, pool=f"{pool_name}-{i}", capacity=2) for i in range(3)]
    for coordinator in coordinators:
        await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=_ignore)
    return coordinators


@pytest.mark.parametrize("round_", range(4))
async def test_back_to_back_closes_on_one_client_end_in_bounded_time(
    redis_client: Any, pool_name: str, round_: int
) -> None:
    coordinators = await _start_three(redis_client, f"{pool_name}-{round_}")
    ids = itertools.count()
    for coordinator in coordinators:
        grant = await coordinator.acquire(
            GrantRequest(f"l{next(ids)}", "o", 30.0, 1.0), wait=False, deadline=None
        )
        await coordinator.release(grant.lease_id)
    # No await between the closes' starts: each restart of the shared listener is
    # cancelled while it still waits for the one before it.
    closes = [asyncio.ensure_future(c.close()) for c in reversed(coordinators)]
    done, pending = await asyncio.wait(closes, timeout=CLOSE_BOUND)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} of 3 closes still running after {CLOSE_BOUND} s"
    for task in done:
        task.result()


async def test_concurrent_starts_then_closes_end_in_bounded_time(
    redis_client: Any, pool_name: str
) -> None:
    coordinators = [
        RedisCoordinator(redis_client, pool=f"{pool_name}-{i}", capacity=1) for i in range(4)
    ]
    await asyncio.gather(*(c.start(clock=MONOTONIC_CLOCK, on_lost=_ignore) for c in coordinators))
    closes = [asyncio.ensure_future(c.close()) for c in coordinators]
    done, pending = await asyncio.wait(closes, timeout=CLOSE_BOUND)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} of 4 closes still running after {CLOSE_BOUND} s"
    for task in done:
        task.result()


async def test_the_shared_listener_stops_after_restarts_that_pile_up(redis_client: Any) -> None:
    from leasepool._redis.subscriber import subscribe

    seen: list[str | None] = []
    first = subscribe(redis_client, "lp-close-a", seen.append)
    assert await first.wait_ready(5.0)
    # Two registrations in one loop step: the second restart cancels the first while
    # that one still waits for the listener it replaced.
    second = subscribe(redis_client, "lp-close-b", seen.append)
    third = subscribe(redis_client, "lp-close-c", seen.append)
    assert await third.wait_ready(5.0), "the newest listener never subscribed"
    await redis_client.publish("lp-close-c", "hello")
    for _ in range(100):
        if "hello" in seen:
            break
        await asyncio.sleep(0.02)
    assert "hello" in seen
    closing = asyncio.ensure_future(asyncio.gather(first.close(), second.close(), third.close()))
    done, _ = await asyncio.wait({closing}, timeout=CLOSE_BOUND)
    if not done:
        closing.cancel()
    assert done, f"closing the listener took more than {CLOSE_BOUND} s"
    closing.result()
