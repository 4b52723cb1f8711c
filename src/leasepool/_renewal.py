"""Renewal: extending live leases, one on request or all of them on a timer.

``auto_renew`` renews every lease a manager holds in ONE coordinator call per
interval (a third of the shortest lease), not one call per lease. A renewal
never revives a lease: if the lease ended locally while the call was in
flight, the reply is ignored. A reply saying the lease is gone marks it lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from leasepool._clock import Clock, TimerHandle
from leasepool._coordinator import Coordinator, Grant
from leasepool._errors import LeasePoolError
from leasepool._lease import ExecutorLease, LeaseBook, LeaseState
from leasepool._statistics import Counters


class Renewals:
    def __init__(
        self,
        *,
        coordinator: Coordinator,
        clock: Clock,
        counters: Counters,
        book: LeaseBook,
        logger: logging.Logger,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._counters = counters
        self._book = book
        self._logger = logger
        self._spawn = spawn
        self._timer: TimerHandle | None = None
        self._leases: Mapping[str, ExecutorLease] = {}

    async def renew(self, lease: ExecutorLease, seconds: float) -> None:
        """Extend one lease to ``seconds`` from now; raise if it is no longer active."""
        book = self._book
        if book.expire_if_due(lease):
            raise book.closed_error(lease)
        results = await self._coordinator.renew({lease.lease_id: seconds})
        self.apply(lease, results.get(lease.lease_id))
        if not lease.active:
            raise book.closed_error(lease)

    def apply(self, lease: ExecutorLease, grant: Grant | None) -> None:
        if not lease.active:
            return  # ended locally while the renewal was in flight: never revive
        if grant is None:
            self._counters.renewal_failures += 1
            self._book.revoke(lease, LeaseState.LOST)
            return
        self._counters.renewals += 1
        self._book.extend(lease, grant)

    # -- auto_renew ---------------------------------------------------------------

    def watch(self, leases: Mapping[str, ExecutorLease]) -> None:
        """Keep ``leases`` (the manager's live mapping) renewed; idempotent."""
        self._leases = leases
        if self._timer is None:
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._leases = {}

    def _schedule(self) -> None:
        if not self._leases:
            self._timer = None
            return
        interval = min(lease.lease_seconds for lease in self._leases.values()) / 3
        self._timer = self._clock.call_at(
            self._clock.monotonic() + interval, lambda: self._spawn(self._renew_all())
        )

    async def _renew_all(self) -> None:
        leases = {lid: lease for lid, lease in self._leases.items() if lease.active}
        if leases:
            try:
                results = await self._coordinator.renew(
                    {lid: lease.lease_seconds for lid, lease in leases.items()}
                )
            except LeasePoolError as exc:
                self._logger.warning("auto-renewal failed: %s", exc)
            else:
                for lid, lease in leases.items():
                    self.apply(lease, results.get(lid))
        if self._timer is not None:
            self._schedule()
