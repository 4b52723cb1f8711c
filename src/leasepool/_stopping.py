"""How ``stop()`` ends work that is still running: drain it, then free each slot when safe.

The rule this module keeps: **a lease's global slot is released only when no
work of that lease can still run**, that is when

* every future submitted through the lease has finished (ran to its end, or
  was cancelled before it started), or
* the lease's executor had its worker processes killed, and they have been
  reaped (dead, not merely signalled).

The bound. A lease's running work is waited for until ``stop_timeout`` seconds
after ``stop()`` began, on the manager's clock, or until the lease's hard
expiry if that comes first (past it the coordinator no longer counts the slot,
so waiting longer protects nothing). What still runs at the bound:

* process work is killed; the slot is released once the workers are reaped;
* thread (and interpreter) work cannot be stopped, so its slot is *not*
  released here, nor by closing the coordinator: the coordinator frees it at
  the lease's hard expiry. ``stop()`` logs which leases and returns.

Work that was queued but had not started is cancelled at once: it cannot run
any more, and the holder sees ``LeaseExpiredError`` for it, as after a release.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leasepool._backends import ExecutorBackend
from leasepool._clock import Clock
from leasepool._errors import LeaseExpiredError
from leasepool._lease import ExecutorLease
from leasepool._statistics import Counters
from leasepool._terminate import REAP_GRACE_SECONDS, kill_process_workers

if TYPE_CHECKING:
    from leasepool._pool import LocalPool, PoolMember

# Killing, shutting down and reaping a pool's workers takes a fraction of a second;
# a worker that ignores SIGTERM is SIGKILLed after REAP_GRACE_SECONDS. Past this,
# something is badly wrong, and a slot whose workers may live is kept.
REAP_WAIT_SECONDS = REAP_GRACE_SECONDS + 5.0


@dataclass(slots=True)
class StopTarget:
    """A busy executor that stop() must settle, and the slot that waits on it."""

    member: PoolMember
    lease_id: str | None
    """The lease whose global slot is released once no work can run; None: no slot."""
    owner: str | None
    deadline: float
    """The bound, on the manager's clock."""


def stop_targets(
    held: Iterable[tuple[PoolMember, ExecutorLease]],
    draining: Iterable[tuple[PoolMember, ExecutorLease]],
    busy: Iterable[PoolMember],
    now: float,
    stop_timeout: float,
) -> list[StopTarget]:
    """List what must be drained, each with its bound.

    ``held``: the leases that were live when stop() began (already ended by the
    lease book, so no new work gets in). ``draining``: released leases whose
    work still runs (their slots are held until it ends). ``busy``: every other
    executor in use, whose slot is gone already (hard expiry, loss) or was never
    granted (an acquire in progress).
    """
    deadline = now + stop_timeout
    targets: dict[PoolMember, StopTarget] = {}
    for member, lease in [*held, *draining]:
        if member not in targets:
            targets[member] = StopTarget(
                member, lease.lease_id, lease.owner, min(deadline, lease.hard_expires_at)
            )
    for member in busy:
        if member not in targets:
            targets[member] = StopTarget(member, None, None, deadline)
    return list(targets.values())


class Drainer:
    """Settles stop() targets: drain, kill if it must, release, retire."""

    def __init__(
        self,
        *,
        pool: LocalPool,
        clock: Clock,
        backend: ExecutorBackend,
        counters: Counters,
        logger: logging.Logger,
        release: Callable[[str], Awaitable[object]],
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._killable = backend is ExecutorBackend.PROCESS
        self._counters = counters
        self._logger = logger
        self._release = release

    async def settle(self, targets: list[StopTarget]) -> list[PoolMember]:
        """Settle every target at once; the members whose workers stop() should wait for."""
        outcomes = await asyncio.gather(
            *(self._settle(target) for target in targets), return_exceptions=True
        )
        joined = []
        for target, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # The slot stays taken (it frees itself at its hard expiry): safe.
                self._logger.error(
                    "stop(): could not settle lease %s", target.lease_id, exc_info=outcome
                )
            elif outcome:
                joined.append(target.member)
        return joined

    async def _settle(self, target: StopTarget) -> bool:
        """Returns whether the member's workers are (or will soon be) gone."""
        member = target.member
        member.cancel_queued()
        if await self._drained(member, target.deadline):
            if target.lease_id is not None:
                await self._release(target.lease_id)
            self._pool.retire(member, "stopped")
            return True
        if self._killable:
            return await self._kill(target)
        self._logger.warning(
            "stop(): lease %s (owner=%r) still has %d thread task(s) running after its "
            "stop bound; threads cannot be killed, so its global slot stays taken until its "
            "hard expiry",
            target.lease_id,
            target.owner,
            member.running,
        )
        # The shutdown waits (in its own thread) for the work; the executor keeps
        # counting against max_pools until then.
        self._pool.retire(member, "stopped")
        return False

    async def _drained(self, member: PoolMember, deadline: float) -> bool:
        """Wait until ``member`` has no pending work (True) or the bound passes (False)."""
        if not member.pending:
            return True
        clock = self._clock
        if clock.monotonic() >= deadline:
            return False
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def finish(result: bool) -> None:
            if not done.done():
                done.set_result(result)

        member.when_drained(functools.partial(finish, True))
        timer = clock.call_at(deadline, functools.partial(finish, False))
        try:
            return await done
        finally:
            timer.cancel()

    async def _kill(self, target: StopTarget) -> bool:
        member = target.member
        self._logger.warning(
            "stop(): lease %s (owner=%r) still has %d task(s) running after its stop bound: "
            "killing its worker processes",
            target.lease_id,
            target.owner,
            member.running,
        )
        self._counters.kills += 1
        revoke = getattr(member.executor, "revoke", None)
        if revoke is not None:
            revoke(
                functools.partial(
                    LeaseExpiredError,
                    f"lease {target.lease_id} was released by stop(), but this work was "
                    "still running at its stop bound; its worker processes were killed",
                )
            )
        self._pool.retire(member, "terminated", kill=kill_process_workers)
        if not await self._pool.wait_gone([member], REAP_WAIT_SECONDS):
            self._logger.error(
                "stop(): the worker processes of lease %s are not gone after %.0fs; its "
                "global slot stays taken until its hard expiry",
                target.lease_id,
                REAP_WAIT_SECONDS,
            )
            return False
        if target.lease_id is not None:
            await self._release(target.lease_id)
        return True

    async def join(self, members: list[PoolMember]) -> None:
        """Wait (bounded) until the retired members' worker processes are gone."""
        if members and not await self._pool.wait_gone(members, REAP_WAIT_SECONDS):
            self._logger.warning(
                "stop(): process workers still running after %.0fs; not waiting longer",
                REAP_WAIT_SECONDS,
            )
