"""A worker process for the cross-process tests: a real manager or coordinator on Redis.

Usage: python _worker.py MODE URL POOL CAPACITY [options as JSON]

Modes:
  share  run ``tasks`` concurrent tasks; each leases an executor and runs work
         that records its own start and end time (time.monotonic(), one clock for
         every process on the host) and the lease's fencing token; prints one
         JSON line per task, then {"done": true}.
  hold   lease one executor, print {"lease_id", "token", "acquired_at"}, then sleep
         until killed.
  wait   print {"waiting": true}, lease one executor (waiting as long as needed),
         print {"granted_at", "token", "lease_id"}, release it and exit.
  block  take ``count`` slots with the coordinator (wait=False), print
         {"held": [ids]}; on the stdin line "release" release them all and print
         {"released_at"}; exit on "exit" (or end of input).
  queue  ``tasks`` concurrent coordinator acquires (wait=True); prints {"queued": n}
         once all of them wait in Redis; each one, when granted, records its start,
         sleeps ``hold`` seconds, records its end, releases, and prints
         {"lease_id", "token", "start", "end"}; then {"done": true, "stats"}; exits on
         the stdin line "exit" (or end of input).
  storm  a manager with ``tasks`` tasks, each ``rounds`` times: acquire with a random
         timeout, sometimes cancelled; run work that records its start and end; release,
         sometimes cancelled mid-way. Prints one line per completed piece of work, then
         {"done": true, "stats"}; stops the manager on the stdin line "exit".

Options (JSON): tasks, hold, lease, grace, recheck, claim, fair, count, rounds, seed,
stagger (queue: seconds between starting two tasks), client_name. Every line goes to
stdout and is flushed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from typing import Any

from leasepool import GrantRequest, LeasedExecutorManager, LeaseUnavailableError, RedisCoordinator
from leasepool._clock import MONOTONIC_CLOCK


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def work(hold: float) -> tuple[float, float]:
    start = time.monotonic()
    time.sleep(hold)
    return start, time.monotonic()


async def stdin_lines() -> asyncio.Queue[str]:
    """Lines of stdin, read in a thread (EOF gives "exit")."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "exit")

    loop.run_in_executor(None, reader)
    return queue


def ignore(_: str) -> None:
    pass


def coordinator_for(url: str, pool: str, capacity: int, opts: dict[str, Any]) -> RedisCoordinator:
    kwargs: dict[str, Any] = {
        "recheck_interval": float(opts.get("recheck", 5.0)),
        "claim_window": float(opts.get("claim", 5.0)),
        "fair": bool(opts.get("fair", False)),
    }
    if opts.get("client_name"):
        kwargs["client_name"] = str(opts["client_name"])
    return RedisCoordinator.from_url(url, pool=pool, capacity=capacity, **kwargs)


async def queue_mode(url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    coordinator = coordinator_for(url, pool, capacity, opts)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    tasks = int(opts.get("tasks", 1))
    hold = float(opts.get("hold", 0.0))
    lease = float(opts.get("lease", 30.0))
    pid = os.getpid()

    async def one(i: int) -> None:
        request = GrantRequest(f"q{pid}-{i}", f"task-{i}", lease, 1.0)
        grant = await coordinator.acquire(request, wait=True, deadline=None)
        start = time.monotonic()
        await asyncio.sleep(hold)
        end = time.monotonic()
        await coordinator.release(grant.lease_id)
        emit(lease_id=grant.lease_id, token=grant.fencing_token, start=start, end=end)

    lines = await stdin_lines()
    running = []
    for i in range(tasks):
        running.append(asyncio.ensure_future(one(i)))
        if opts.get("stagger"):
            await asyncio.sleep(float(opts["stagger"]))  # several processes interleave
    while (
        coordinator.statistics()["waiting"] != tasks or coordinator.statistics()["waits"] < tasks
    ):  # every waiter of ours has its ticket in Redis
        if all(task.done() for task in running):
            break
        await asyncio.sleep(0.01)
    emit(queued=tasks, pid=pid)
    await asyncio.gather(*running)
    emit(done=True, stats=coordinator.statistics())
    while await lines.get() != "exit":
        pass
    await coordinator.close()


async def block_mode(url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    coordinator = coordinator_for(url, pool, capacity, opts)
    await coordinator.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    lease = float(opts.get("lease", 60.0))
    grace = float(opts.get("grace", 0.0))
    held = []
    for i in range(int(opts.get("count", 1))):
        request = GrantRequest(f"block{os.getpid()}-{i}", "blocker", lease, grace)
        held.append((await coordinator.acquire(request, wait=False, deadline=None)).lease_id)
    emit(held=held)
    lines = await stdin_lines()
    while (line := await lines.get()) != "exit":
        if line == "release":
            for lease_id in held:
                await coordinator.release(lease_id)
            emit(released_at=time.monotonic())
    await coordinator.close()


async def storm_mode(url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    coordinator = coordinator_for(url, pool, capacity, opts)
    tasks = int(opts.get("tasks", 1))
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=tasks,
        workers_per_pool=1,
        coordinator=coordinator,
        default_lease_seconds=float(opts.get("lease", 30.0)),
        lease_grace_seconds=float(opts.get("grace", 1.0)),
    )
    rng = random.Random(int(opts.get("seed", 0)) ^ os.getpid())
    hold = float(opts.get("hold", 0.005))
    counts = {"granted": 0, "timeouts": 0, "cancelled_acquires": 0, "cancelled_releases": 0}
    await manager.start()

    async def one_round() -> None:
        timeout = rng.choice([None, 0.0, 0.005, 0.02, 0.1])
        acquiring = asyncio.ensure_future(manager.acquire(timeout=timeout))
        if rng.random() < 0.25:
            await asyncio.sleep(rng.choice([0, 0, 0.0005, 0.002, 0.01]))
            acquiring.cancel()
        try:
            lease = await acquiring
        except asyncio.CancelledError:
            counts["cancelled_acquires"] += 1
            return
        except (TimeoutError, LeaseUnavailableError):
            counts["timeouts"] += 1
            return
        counts["granted"] += 1
        start, end = await lease.run(work, hold)
        emit(start=start, end=end, token=lease.fencing_token)
        releasing = asyncio.ensure_future(lease.release())
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice([0, 0, 0.0002, 0.001]))
            releasing.cancel()
            counts["cancelled_releases"] += 1
        with contextlib.suppress(asyncio.CancelledError):
            await releasing

    async def task() -> None:
        for _ in range(int(opts.get("rounds", 10))):
            await one_round()

    lines = await stdin_lines()
    await asyncio.gather(*(task() for _ in range(tasks)))
    emit(done=True, counts=counts, stats=coordinator.statistics())
    while await lines.get() != "exit":
        pass
    await manager.stop()


async def main(mode: str, url: str, pool: str, capacity: int, opts: dict[str, Any]) -> None:
    if mode == "queue":
        await queue_mode(url, pool, capacity, opts)
        return
    if mode == "block":
        await block_mode(url, pool, capacity, opts)
        return
    if mode == "storm":
        await storm_mode(url, pool, capacity, opts)
        return
    coordinator = coordinator_for(url, pool, capacity, opts)
    tasks = int(opts.get("tasks", 1))
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=tasks,
        workers_per_pool=1,
        coordinator=coordinator,
        default_lease_seconds=float(opts.get("lease", 30.0)),
        lease_grace_seconds=float(opts.get("grace", 1.0)),
    )
    await manager.start()
    try:
        if mode == "share":
            hold = float(opts.get("hold", 0.05))

            async def one(i: int) -> None:
                async with await manager.acquire(owner=f"task-{i}") as lease:
                    start, end = await lease.run(work, hold)
                    emit(start=start, end=end, token=lease.fencing_token, task=i)

            await asyncio.gather(*(one(i) for i in range(tasks)))
            emit(done=True)
        elif mode == "hold":
            lease = await manager.acquire(owner="holder")
            emit(lease_id=lease.lease_id, token=lease.fencing_token, acquired_at=time.monotonic())
            await asyncio.sleep(3600)
        elif mode == "wait":
            emit(waiting=True)
            lease = await manager.acquire(owner="waiter")
            emit(granted_at=time.monotonic(), token=lease.fencing_token, lease_id=lease.lease_id)
            await lease.release()
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await manager.stop()


if __name__ == "__main__":
    _mode, _url, _pool, _capacity = sys.argv[1:5]
    _opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    asyncio.run(main(_mode, _url, _pool, int(_capacity), _opts))
