"""A chaos worker: one OS process with a LeasedExecutorManager on a real Redis.

Usage: python _chaos_worker.py CONFIG_JSON

CONFIG keys: url, pool, capacity, port (the protected resource), name, and the
options backend, lease, grace, claim, recheck, fair, auto_renew, max_pools,
stop_timeout.

It reads commands from stdin, one JSON object a line, and runs them in order
(``"bg": true`` runs one as a background task instead). It writes events to
stdout, one JSON object a line, each stamped with ``t`` (``time.time()``):

* ``acquire`` {timeout, wait, then: {n, hold}}: acquire a lease and keep it;
  or, with ``then``, run that many jobs on it at once and release it. Emits ``acquiring``, then
  ``acquired`` {token, lease_id, elapsed} or ``acquire_failed`` {error, clear,
  elapsed}.
* ``run`` {n, hold, until_error}: run ``n`` jobs on the newest kept lease.
* ``release`` {all}: release the newest lease (or all) a plain ``acquire`` took;
  emits ``released`` {outcome} or ``release_failed`` {error, clear}.
* ``loop`` {seconds, tasks, jobs, hold, timeout, wait, until_expiry}: ``tasks``
  tasks acquire, run jobs and release until ``seconds`` have passed. With
  ``until_expiry`` a holder runs jobs until its lease ends instead of releasing.
* ``storm`` {tasks, rounds, hold}: acquires with random timeouts and random
  cancellations of the acquire and of the release.
* ``block`` {seconds}: ``time.sleep`` inside the event loop.
* ``stop``: ``await manager.stop()``; emits ``stopped`` {elapsed}.
* ``stats``: emits ``stats`` {rss, tasks, threads, coordinator}.
* ``exit``: wait for background commands, stop the manager, emit ``bye``, exit.

Every job emits ``submit`` before ``lease.run`` and ``job`` {ok, error, clear}
after: a job whose ``submit`` has no ``job`` line in a process that was not
killed is lost work. ``clear`` says the error is one a caller can act on (a
leasepool error, ``TimeoutError``, or the resource's ``StaleTokenError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import itertools
import json
import os
import random
import sys
import threading
import time
from typing import Any

from _chaos_work import StaleTokenError, job

from leasepool import (
    ExecutorLease,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolError,
    RedisCoordinator,
)

CLEAR_ERRORS = (LeasePoolError, TimeoutError, StaleTokenError)


def emit(ev: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"ev": ev, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def describe(exc: BaseException) -> dict[str, Any]:
    return {
        "error": f"{type(exc).__name__}: {exc}"[:300],
        "kind": type(exc).__name__,
        "clear": isinstance(exc, CLEAR_ERRORS),
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.pool = str(config["pool"])
        self.port = int(config["port"])
        self.name = str(config.get("name", "w"))
        self.ids = itertools.count(1)
        self.leases: list[ExecutorLease] = []
        self.rng = random.Random(os.getpid())
        coordinator = RedisCoordinator.from_url(
            str(config["url"]),
            pool=self.pool,
            capacity=int(config["capacity"]),
            claim_window=float(config.get("claim", 0.5)),
            recheck_interval=float(config.get("recheck", 1.0)),
            fair=bool(config.get("fair", False)),
        )
        extra: dict[str, Any] = {}
        if "stop_timeout" in config:  # only where the manager has the option
            extra["stop_timeout"] = float(config["stop_timeout"])
        self.manager = LeasedExecutorManager(
            **extra,
            backend=str(config.get("backend", "thread")),
            max_pools=int(config.get("max_pools", 4)),
            workers_per_pool=1,
            coordinator=coordinator,
            default_lease_seconds=float(config.get("lease", 3.0)),
            lease_grace_seconds=float(config.get("grace", 0.5)),
            auto_renew=bool(config.get("auto_renew", False)),
        )

    async def one_job(self, lease: ExecutorLease, hold: float) -> bool:
        job_id = f"{self.name}:{next(self.ids)}"
        emit("submit", job=job_id, token=lease.fencing_token)
        try:
            await lease.run(job, self.port, self.pool, lease.fencing_token, hold, job_id)
        except asyncio.CancelledError:
            emit("job", job=job_id, ok=False, error="CancelledError", kind="Cancelled", clear=True)
            raise
        except BaseException as exc:
            emit("job", job=job_id, ok=False, token=lease.fencing_token, **describe(exc))
            return False
        emit("job", job=job_id, ok=True, token=lease.fencing_token)
        return True

    async def run_jobs(self, lease: ExecutorLease, n: int, hold: float, until_error: bool) -> None:
        for _ in range(n):
            if not await self.one_job(lease, hold) and until_error:
                return

    async def acquire(self, limit: float | None, wait: bool) -> ExecutorLease | None:
        started = time.monotonic()
        emit("acquiring", timeout=limit, wait=wait)
        try:
            lease = await self.manager.acquire(timeout=limit, wait=wait, owner=self.name)
        except Exception as exc:
            emit("acquire_failed", elapsed=time.monotonic() - started, **describe(exc))
            return None
        emit(
            "acquired",
            token=lease.fencing_token,
            lease_id=lease.lease_id,
            elapsed=time.monotonic() - started,
        )
        return lease

    async def cmd_acquire(self, cmd: dict[str, Any]) -> None:
        lease = await self.acquire(cmd.get("timeout"), bool(cmd.get("wait", True)))
        if lease is None:
            return
        then = cmd.get("then")
        if not then:
            self.leases.append(lease)
            return
        await self.run_jobs(lease, int(then["n"]), float(then["hold"]), True)
        await self.release(lease)

    async def cmd_run(self, cmd: dict[str, Any]) -> None:
        n, hold = int(cmd.get("n", 1)), float(cmd.get("hold", 0.05))
        await self.run_jobs(self.leases[-1], n, hold, bool(cmd.get("until_error", False)))

    async def release(self, lease: ExecutorLease) -> None:
        try:
            outcome = await lease.release()
        except Exception as exc:
            emit("release_failed", lease_id=lease.lease_id, **describe(exc))
        else:
            emit("released", lease_id=lease.lease_id, outcome=str(outcome))

    async def cmd_release(self, cmd: dict[str, Any]) -> None:
        """Release the newest lease (``all``: every lease) taken by a plain ``acquire``."""
        count = len(self.leases) if cmd.get("all") else min(1, len(self.leases))
        for _ in range(count):
            await self.release(self.leases.pop())

    async def hold_until_expiry(self, lease: ExecutorLease, hold: float) -> None:
        while await self.one_job(lease, hold):
            pass

    async def loop_round(self, cmd: dict[str, Any]) -> None:
        lease = await self.acquire(cmd.get("timeout", 5.0), bool(cmd.get("wait", True)))
        if lease is None:
            await asyncio.sleep(0.1)  # Redis may be down: do not spin
            return
        hold = float(cmd.get("hold", 0.02))
        try:
            if cmd.get("until_expiry"):
                await self.hold_until_expiry(lease, hold)
            else:
                await self.run_jobs(lease, int(cmd.get("jobs", 1)), hold, True)
        finally:
            await self.release(lease)

    async def cmd_loop(self, cmd: dict[str, Any]) -> None:
        end = time.monotonic() + float(cmd["seconds"])

        async def one_task() -> None:
            while time.monotonic() < end:
                await self.loop_round(cmd)

        await asyncio.gather(*(one_task() for _ in range(int(cmd.get("tasks", 1)))))
        emit("loop_done")

    async def storm_round(self, hold: float) -> None:
        rng = self.rng
        timeout = rng.choice([None, 0.0, 0.005, 0.02, 0.1, 0.5])
        acquiring = asyncio.ensure_future(self.acquire(timeout, True))
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice([0, 0, 0.0005, 0.002, 0.01, 0.05]))
            acquiring.cancel()
        try:
            lease = await acquiring
        except asyncio.CancelledError:
            emit("acquire_cancelled")
            return
        if lease is None:
            return
        await self.one_job(lease, hold)
        releasing = asyncio.ensure_future(lease.release())
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice([0, 0, 0.0002, 0.001]))
            releasing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await releasing

    async def cmd_storm(self, cmd: dict[str, Any]) -> None:
        hold = float(cmd.get("hold", 0.005))

        async def one_task() -> None:
            for _ in range(int(cmd.get("rounds", 10))):
                await self.storm_round(hold)

        await asyncio.gather(*(one_task() for _ in range(int(cmd.get("tasks", 4)))))
        emit("storm_done")

    async def cmd_block(self, cmd: dict[str, Any]) -> None:
        emit("blocking")
        time.sleep(float(cmd["seconds"]))  # noqa: ASYNC251 - the scenario blocks the loop
        emit("unblocked")

    async def cmd_stop(self, cmd: dict[str, Any]) -> None:
        started = time.monotonic()
        emit("stopping")
        await self.manager.stop()
        emit("stopped", elapsed=time.monotonic() - started)

    async def cmd_stats(self, cmd: dict[str, Any]) -> None:
        stats = self.manager.stats()
        emit(
            "stats",
            rss=rss_bytes(),
            tasks=len(asyncio.all_tasks()),
            threads=threading.active_count(),
            coordinator=stats["coordinator"],
            leases=len(stats["leases"]),
        )


async def read_commands() -> asyncio.Queue[dict[str, Any]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def reader() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(queue.put_nowait, {"cmd": "exit"})

    threading.Thread(target=reader, daemon=True).start()
    return queue


async def main(config: dict[str, Any]) -> None:
    worker = Worker(config)
    await worker.manager.start()
    emit("ready", pid=os.getpid())
    commands = await read_commands()
    background: list[asyncio.Task[None]] = []
    while (cmd := await commands.get())["cmd"] != "exit":
        handler = getattr(worker, "cmd_" + cmd["cmd"])
        if cmd.get("bg"):
            background.append(asyncio.ensure_future(handler(cmd)))
        else:
            await handler(cmd)
    if background:
        await asyncio.wait(background, timeout=30)
    with contextlib.suppress(LeaseExpiredError):
        await worker.manager.stop()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    emit("bye", tasks_left=[repr(t.get_coro())[:200] for t in others])
    # Exit should take no time from here: if it hangs, show the harness where.
    faulthandler.dump_traceback_later(5)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
