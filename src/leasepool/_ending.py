"""What ending a lease does to its executor and its global slot.

The lease book (:mod:`leasepool._lease`) decides that a lease ends; this module
frees what the lease held, and only when that is safe.

Invariants:

* A lease's global slot is released only when no work of that lease can still
  run: at once when nothing is pending, otherwise once the pending work has
  drained (or its worker processes were killed). A lease that passed its hard
  expiry is released at once (the coordinator stops counting it then anyway);
  a lost lease has no slot left to release.
* An executor goes back to the pool only once no work submitted through the
  lease is pending; an executor whose workers were killed is retired instead.
* Releasing a slot never raises: a coordinator error is logged, and the slot
  frees itself at its hard expiry on the coordinator.
* The no-wait path is tried first on every coordinator (``release_nowait``);
  ``WouldBlock`` means "await ``release``", never an error.
* ``stop()`` sees every released lease that is still draining (``draining``),
  so it never frees such a slot early either (see :mod:`leasepool._stopping`).

Everything here runs on the manager's event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from leasepool._clock import Clock
from leasepool._coordinator import Coordinator, ReleaseOutcome
from leasepool._errors import LeaseExpiredError, LeasePoolError, WouldBlock
from leasepool._lease import ExecutorLease, LeaseBook, LeaseState
from leasepool._pool import LocalPool, PoolMember
from leasepool._statistics import Counters


class Endings:
    """Frees the executor and the global slot of each lease that ended."""

    def __init__(
        self,
        *,
        pool: LocalPool,
        clock: Clock,
        coordinator: Coordinator,
        counters: Counters,
        logger: logging.Logger,
        terminate: bool,
        spawn: Callable[[Awaitable[Any]], None],
        running: Callable[[], bool],
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._coordinator = coordinator
        self._counters = counters
        self._logger = logger
        self._terminate_on_hard = terminate
        self._spawn = spawn
        self._running = running
        self.draining: dict[PoolMember, ExecutorLease] = {}
        """Released leases whose work still runs; their executors and slots wait for it."""

    # -- release ------------------------------------------------------------

    def released(self, lease: ExecutorLease, member: PoolMember) -> ReleaseOutcome | None:
        """``lease`` was just released: the outcome, or None if the slot needs an await."""
        if member.pending:
            self._start_draining(member, lease)
            return ReleaseOutcome.RELEASED
        self._pool.give_back(member)
        try:
            return self._coordinator.release_nowait(lease.lease_id)
        except WouldBlock:
            return None
        except LeasePoolError as exc:
            self._logger.warning("could not release lease %s globally: %s", lease.lease_id, exc)
            return ReleaseOutcome.RELEASED

    async def release_slot(self, lease_id: str) -> ReleaseOutcome | None:
        """Release the global slot; None if the coordinator failed (it was logged)."""
        try:
            return await self._coordinator.release(lease_id)
        except LeasePoolError as exc:
            self._logger.warning("could not release lease %s globally: %s", lease_id, exc)
            return None

    def _start_draining(self, member: PoolMember, lease: ExecutorLease) -> None:
        member.when_drained(functools.partial(self._drained, member, lease))
        self.draining[member] = lease
        if self._terminate_on_hard:
            # Draining is bounded too: what still runs at the hard expiry is killed.
            self._clock.call_at(
                lease.hard_expires_at, functools.partial(self._drain_deadline, member, lease)
            )

    def _drained(self, member: PoolMember, lease: ExecutorLease) -> None:
        if self.draining:
            self.draining.pop(member, None)
        self._pool.give_back(member)
        self._spawn(self.release_slot(lease.lease_id))

    def _drain_deadline(self, member: PoolMember, lease: ExecutorLease) -> None:
        """A released lease's work still runs at its hard expiry: kill it (terminate)."""
        if self.draining.get(member) is not lease or not self._running():
            return
        del self.draining[member]
        if all(future.done() for future in list(member.pending)):
            return
        self._logger.warning(
            "lease %s (owner=%r) was released but %d task(s) still run at its hard expiry: "
            "killing its workers",
            lease.lease_id,
            lease.owner,
            member.running,
        )
        member.cancel_queued()
        self._kill(member, lease)

    # -- revocation (hard expiry, loss) --------------------------------------------

    def revoked(self, lease: ExecutorLease, member: PoolMember, state: LeaseState) -> None:
        """The book revoked ``lease``: stop its queued work, free what is safe to free."""
        member.cancel_queued()
        if self._terminate_on_hard and not all(future.done() for future in list(member.pending)):
            self._kill(member, lease)
        else:
            # Work still running now over-runs the lease (stats()["overrunning"]).
            member.revoked = bool(member.pending)
            member.when_drained(functools.partial(self._revoked_drained, member))
        if state is LeaseState.EXPIRED:
            self._spawn(self.release_slot(lease.lease_id))

    def _revoked_drained(self, member: PoolMember) -> None:
        member.revoked = False
        self._pool.give_back(member)

    def _kill(self, member: PoolMember, lease: ExecutorLease) -> None:
        """Kill the lease's worker processes; its unfinished work fails with its error."""
        from leasepool._terminate import kill_process_workers

        self._counters.kills += 1
        revoke = getattr(member.executor, "revoke", None)
        if revoke is not None:
            closed = LeaseBook.closed_error(lease)
            if LeaseBook.was_released(lease):
                closed = LeaseExpiredError(
                    f"lease {lease.lease_id} was released, but this work was still running "
                    "at its hard expiry"
                )
            revoke(
                functools.partial(
                    type(closed),
                    f"{closed}; its worker processes were killed (hard_expiry_action='terminate')",
                )
            )
        self._pool.retire(member, "terminated", kill=kill_process_workers)
