"""The lease, and the one owner of every lease's state: :class:`LeaseBook`.

Invariants:

* A lease's state only ever moves ACTIVE -> RELEASED, ACTIVE -> EXPIRED or
  ACTIVE -> LOST, once, and only inside :class:`LeaseBook` (``release``,
  ``revoke``, ``release_all``). Nothing else in the package writes a lease's
  state or deadlines; other modules read them through the public properties
  and ask the book for the rest.
* A lease is in ``LeaseBook.live`` exactly while it is ACTIVE.
* Deadlines only grow (:meth:`LeaseBook.extend`), so a renewal never shortens a
  lease, and the soft deadline never passes the hard one.
* Every submission compares the clock with the hard deadline itself, so a late
  timer can never let work through after it.
* Expiry: all leases share ONE timer, armed for the earliest pending event (a
  soft deadline, or a hard deadline once the soft one has passed). Opening a
  lease only compares its soft deadline with the armed time and releasing does
  nothing to the timer, which keeps both cheap. When the timer fires, the book
  scans the live leases, runs what is due and re-arms for the earliest of the
  rest (see :mod:`leasepool._expiry`).

The book owns the *lease*; what ending a lease does to its executor and global
slot is the manager's, told through the hooks given to the book.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from leasepool._clock import Clock
from leasepool._coordinator import Grant, ReleaseOutcome
from leasepool._errors import LeaseExpiredError, LeaseLostError
from leasepool._expiry import EarliestTimer
from leasepool._statistics import Counters, LeaseStats
from leasepool._validation import optional_positive_duration

if TYPE_CHECKING:
    from leasepool._pool import PoolMember

R = TypeVar("R")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_threadsafe(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], _done: object
) -> None:
    # Runs in a worker thread once per lease.run: try/except costs nothing here,
    # where contextlib.suppress would build a context manager every call.
    try:  # noqa: SIM105
        loop.call_soon_threadsafe(_wake, waiter)
    except RuntimeError:  # the loop closed: nobody is waiting any more
        pass


class LeaseState(enum.Enum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    LOST = "lost"


# Enum members read through the class cost ~0.1 us each on Python 3.11 (a descriptor
# lookup); these paths run on every acquire, run and release, so read them once here.
_ACTIVE = LeaseState.ACTIVE
_RELEASED = LeaseState.RELEASED
_EXPIRED = LeaseState.EXPIRED
_LOST = LeaseState.LOST
_OUTCOME_RELEASED = ReleaseOutcome.RELEASED
_OUTCOME_EXPIRED = ReleaseOutcome.EXPIRED
_OUTCOME_UNKNOWN = ReleaseOutcome.UNKNOWN


class LeasedExecutor(Executor):
    """The executor a lease hands out: ``submit`` works while the lease is live.

    ``shutdown`` is refused: the executor belongs to the manager.
    """

    __slots__ = ("_lease",)

    def __init__(self, lease: ExecutorLease) -> None:
        self._lease = lease

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return self._lease._submit(fn, args, kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        raise RuntimeError(
            "Do not shut down a leased executor directly: it belongs to the pool. "
            "Release the lease instead, with `await lease.release()`."
        )

    def __repr__(self) -> str:
        return f"<LeasedExecutor lease_id={self._lease.lease_id} state={self._lease.state}>"


class ExecutorLease:
    """A lease on one executor, returned by :meth:`LeasedExecutorManager.acquire`.

    Timestamps (``leased_at``, ``soft_expires_at``, ``hard_expires_at``) are on
    the manager's monotonic clock. After the hard expiry, after ``release()``,
    or once the coordinator has lost the lease, ``executor.submit`` and
    ``run`` raise :class:`LeaseExpiredError` (:class:`LeaseLostError` for the last).
    """

    def __init__(
        self,
        book: LeaseBook,
        member: PoolMember,
        lease_id: str,
        owner: str | None,
        lease_seconds: float,
        grace_seconds: float,
        leased_at: float,
        fencing_token: int,
        soft_deadline: float,
        hard_deadline: float,
    ) -> None:
        self.lease_id = lease_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.leased_at = leased_at
        self.fencing_token = fencing_token
        self._book = book
        self._member = member
        self._soft_deadline = soft_deadline
        self._hard_deadline = hard_deadline
        self._state = _ACTIVE
        self._soft_fired = False
        self._next_event_at = soft_deadline

    # -- what the holder sees ---------------------------------------------

    @functools.cached_property
    def executor(self) -> Executor:
        """An executor proxy: ``submit`` while the lease is live; ``shutdown`` is refused."""
        return LeasedExecutor(self)

    @property
    def soft_expires_at(self) -> float:
        """When the lease passes its soft expiry, on the manager's monotonic clock."""
        return self._soft_deadline

    @property
    def hard_expires_at(self) -> float:
        """When the lease is revoked locally (hard expiry), on the manager's monotonic clock."""
        return self._hard_deadline

    @property
    def state(self) -> str:
        """``"active"``, ``"released"``, ``"expired"`` or ``"lost"``."""
        return self._state.value

    @property
    def active(self) -> bool:
        """True until the lease is released, expires (hard) or is lost."""
        return self._state is _ACTIVE

    @property
    def seconds_left(self) -> float:
        """Seconds until the hard expiry; 0 once the lease is no longer active."""
        if self._state is not _ACTIVE:
            return 0.0
        return max(0.0, self._hard_deadline - self._book.clock.monotonic())

    def __repr__(self) -> str:
        return (
            f"<ExecutorLease id={self.lease_id} owner={self.owner!r} state={self.state} "
            f"token={self.fencing_token}>"
        )

    # -- work ---------------------------------------------------------------

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        if self._state is not _ACTIVE:
            raise self._book.closed_error(self)
        book = self._book
        if book.clock.monotonic() >= self._hard_deadline:
            # The timer has not run yet (busy loop, or a call from another thread):
            # the deadline itself is what counts.
            book.expire_from_any_thread(self)
            raise book.closed_error(self)
        member = self._member
        try:
            future = member.executor.submit(fn, *args, **kwargs)
        except BrokenExecutor as exc:
            member.mark_broken(exc)
            raise
        member.pending.add(future)
        future.add_done_callback(member.finished_in_thread)
        return future

    async def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` on the leased executor and await its result."""
        book = self._book
        if self._state is not _ACTIVE:
            raise book.closed_error(self)
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        # The checks of _submit, inlined: this is the hot path the local benchmark
        # measures, and a call per step costs a measurable share of a no-op run.
        if book.clock.monotonic() >= self._hard_deadline:
            book.expire_from_any_thread(self)
            raise book.closed_error(self)
        member = self._member
        try:
            future = member.executor.submit(fn, *args)
        except BrokenExecutor as exc:
            member.mark_broken(exc)
            raise
        member.pending.add(future)
        loop = book.loop
        assert loop is not None
        # A bare waiter woken straight from the worker's done callback: about 15%
        # cheaper per call than asyncio.wrap_future's two-way future chaining.
        waiter = loop.create_future()
        future.add_done_callback(functools.partial(_wake_threadsafe, loop, waiter))
        try:
            await waiter
        except BaseException:
            future.cancel()  # only stops work that has not started, as wrap_future does
            # Work that an interrupted await left running settles from its own thread.
            if future.done():
                member.finished(future)
            else:
                future.add_done_callback(member.finished_in_thread)
            raise
        pending = member.pending
        pending.discard(future)
        if not pending and member.on_drained is not None:
            member.finished(future)  # runs the drained callback
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            # Queued work that a hard expiry (or loss, or stop) cancelled: say so,
            # instead of a CancelledError the caller's task never asked for.
            if self._state is not _ACTIVE:
                raise book.closed_error(self) from None
            raise asyncio.CancelledError() from None
        except BrokenExecutor as exc:
            member.mark_broken(exc)
            raise

    # -- lifetime -----------------------------------------------------------

    async def release(self) -> ReleaseOutcome:
        """Give the lease back. Idempotent and safe under cancellation.

        Returns RELEASED when this call ended a live lease, EXPIRED when the lease
        had already expired or been lost, UNKNOWN when it was already released.
        """
        book = self._book
        outcome = book.release(self)
        if outcome is None:
            outcome = await book.release_slot(self.lease_id) or _OUTCOME_RELEASED
        return outcome

    async def renew(self, seconds: float | None = None) -> None:
        """Extend a live lease to ``seconds`` (default: ``lease_seconds``) from now.

        Never revives an expired, released or lost lease: those raise
        :class:`LeaseExpiredError` (:class:`LeaseLostError` when the coordinator
        no longer holds it). Never shortens a lease.
        """
        checked = optional_positive_duration("seconds", seconds)
        await self._book.renew_hook(self, self.lease_seconds if checked is None else checked)

    async def __aenter__(self) -> ExecutorLease:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


ReleasedHook = Callable[[ExecutorLease, "PoolMember"], "ReleaseOutcome | None"]
ReleaseSlot = Callable[[str], Awaitable["ReleaseOutcome | None"]]
RenewHook = Callable[[ExecutorLease, float], Awaitable[None]]
RevokedHook = Callable[[ExecutorLease, "PoolMember", LeaseState], None]
SoftExpiryCallback = Callable[[ExecutorLease], object]


class LeaseBook:
    """Every lease of one manager: the live table, the state transitions, the deadlines.

    The hooks are the manager's. ``on_released`` runs right after a lease went
    ACTIVE -> RELEASED, to free its executor and slot: it returns the release
    outcome, or None when the slot must still be released by awaiting
    ``release_slot``. ``on_revoked`` runs after a lease went ACTIVE -> EXPIRED or
    LOST. ``renew_hook`` serves ``lease.renew()``; ``require_loop`` raises the
    manager's error for a call from a loop other than its own.
    ``on_soft_expiry`` is the user's callback, run (and awaited, if it returns an
    awaitable, through ``spawn``) after the book has counted and logged a soft
    expiry; its errors are logged, never raised.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        counters: Counters,
        logger: logging.Logger,
        on_released: ReleasedHook,
        release_slot: ReleaseSlot,
        renew_hook: RenewHook,
        require_loop: Callable[[str], object],
        on_revoked: RevokedHook,
        on_soft_expiry: SoftExpiryCallback | None,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.clock = clock
        self.live: dict[str, ExecutorLease] = {}
        """Active leases by id. Read it; change it only through the book."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The manager's loop while it runs (set by the manager)."""
        self.release_slot = release_slot
        self.renew_hook = renew_hook
        self._on_released = on_released
        self._require_loop = require_loop
        self._counters = counters
        self._logger = logger
        self._on_soft_expiry = on_soft_expiry
        self._spawn = spawn
        self._on_revoked = on_revoked
        self._timer = EarliestTimer(clock, self._on_timer)

    # -- transitions ------------------------------------------------------

    def open(
        self,
        member: PoolMember,
        lease_id: str,
        owner: str | None,
        lease_seconds: float,
        grace_seconds: float,
        leased_at: float,
        grant: Grant,
    ) -> ExecutorLease:
        """A new ACTIVE lease on ``member`` with ``grant``'s token and deadlines."""
        lease = ExecutorLease(
            self,
            member,
            lease_id,
            owner,
            lease_seconds,
            grace_seconds,
            leased_at,
            grant.fencing_token,
            grant.soft_deadline,
            grant.hard_deadline,
        )
        self.live[lease_id] = lease
        self._timer.arm(grant.soft_deadline)
        return lease

    def release(self, lease: ExecutorLease) -> ReleaseOutcome | None:
        """ACTIVE -> RELEASED, then free its executor and slot (``on_released``).

        The outcome, or None when the slot still needs an awaited ``release_slot``.
        A lease already past its hard deadline is revoked instead (EXPIRED); one
        that is no longer active changes nothing (UNKNOWN if released, else EXPIRED).
        """
        state = lease._state
        if state is not _ACTIVE:
            return _OUTCOME_UNKNOWN if state is _RELEASED else _OUTCOME_EXPIRED
        loop = self.loop
        if loop is not None and asyncio.get_running_loop() is not loop:
            self._require_loop("release")  # raises
        if self.clock.monotonic() >= lease._hard_deadline:
            self.revoke(lease, _EXPIRED)
            return _OUTCOME_EXPIRED
        lease._state = _RELEASED
        del self.live[lease.lease_id]
        self._counters.releases += 1
        return self._on_released(lease, lease._member)

    def release_all(self) -> list[ExecutorLease]:
        """ACTIVE -> RELEASED for every live lease (``stop()``); not counted as releases."""
        leases = list(self.live.values())
        for lease in leases:
            lease._state = _RELEASED
        self.live.clear()
        self._timer.cancel()
        return leases

    def revoke(self, lease: ExecutorLease, state: LeaseState) -> bool:
        """ACTIVE -> EXPIRED or LOST: count, log, then tell the manager. False if not active."""
        if lease._state is not _ACTIVE:
            return False
        lease._state = state
        self.live.pop(lease.lease_id, None)
        member = lease._member
        if state is _LOST:
            self._counters.lost += 1
            self._logger.warning("lease %s (owner=%r) was lost", lease.lease_id, lease.owner)
        else:
            self._counters.hard_expiries += 1
            self._logger.warning(
                "lease %s (owner=%r) passed its hard expiry: revoked, %d task(s) still running",
                lease.lease_id,
                lease.owner,
                member.running,
            )
        self._on_revoked(lease, member, state)
        return True

    def extend(self, lease: ExecutorLease, grant: Grant) -> None:
        """Apply a renewal: deadlines only ever grow; re-arm the soft warning if it moved on."""
        if lease._state is not _ACTIVE:
            return  # ended locally while the renewal was in flight: never revive
        lease._soft_deadline = max(lease._soft_deadline, grant.soft_deadline)
        lease._hard_deadline = max(lease._hard_deadline, grant.hard_deadline)
        if lease._soft_deadline > self.clock.monotonic():
            lease._soft_fired = False
        when = lease._hard_deadline if lease._soft_fired else lease._soft_deadline
        lease._next_event_at = when
        self._timer.arm(when)

    def expire_if_due(self, lease: ExecutorLease) -> bool:
        """Revoke ``lease`` if its hard deadline has passed; whether it is (now) not active."""
        if lease._state is _ACTIVE and self.clock.monotonic() >= lease._hard_deadline:
            self.revoke(lease, _EXPIRED)
        return lease._state is not _ACTIVE

    def expire_overdue(self) -> None:
        """Revoke every live lease past its hard deadline (the periodic check)."""
        now = self.clock.monotonic()
        for lease in [lease for lease in self.live.values() if now >= lease._hard_deadline]:
            self.revoke(lease, _EXPIRED)

    def expire_from_any_thread(self, lease: ExecutorLease) -> None:
        """A submission found the hard deadline passed: revoke on the loop."""
        loop = self.loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.revoke(lease, _EXPIRED)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.revoke, lease, _EXPIRED)

    def cancel_timer(self) -> None:
        self._timer.cancel()

    # -- reads ---------------------------------------------------------------

    @staticmethod
    def member(lease: ExecutorLease) -> PoolMember:
        """The executor ``lease`` was granted (also after it ended)."""
        return lease._member

    def members(self) -> set[PoolMember]:
        """The executors of the live leases."""
        return {lease._member for lease in self.live.values()}

    def lease_stats(self) -> list[LeaseStats]:
        """``stats()["leases"]``: one row per live lease."""
        now = self.clock.monotonic()
        return [
            {
                "lease_id": lease.lease_id,
                "owner": lease.owner,
                "fencing_token": lease.fencing_token,
                "seconds_until_soft_expiry": max(0.0, lease._soft_deadline - now),
                "seconds_until_hard_expiry": max(0.0, lease._hard_deadline - now),
                "running": lease._member.running,
            }
            for lease in self.live.values()
        ]

    @staticmethod
    def was_released(lease: ExecutorLease) -> bool:
        return lease._state is _RELEASED

    @staticmethod
    def closed_error(lease: ExecutorLease) -> LeaseExpiredError:
        """What a submission (or renewal) to a lease that is no longer active raises."""
        if lease._state is _LOST:
            return LeaseLostError(
                f"Executor lease is no longer active: lease {lease.lease_id} was lost, "
                "the coordinator no longer holds it"
            )
        if lease._state is _RELEASED:
            return LeaseExpiredError(f"Executor lease has been released: lease {lease.lease_id}")
        return LeaseExpiredError(
            f"Executor lease expired and was revoked: lease {lease.lease_id} passed its hard expiry"
        )

    # -- expiry -------------------------------------------------------------------

    def _on_timer(self, now: float) -> float | None:
        """Run the soft and hard expiries due at ``now``; the next time anything is due."""
        for lease in [lease for lease in self.live.values() if lease._next_event_at <= now]:
            if lease._state is not _ACTIVE:
                continue
            if not lease._soft_fired and now >= lease._soft_deadline:
                lease._soft_fired = True
                self._soft_expired(lease, now)
                if lease._state is not _ACTIVE:
                    continue
            if now >= lease._hard_deadline:
                self.revoke(lease, _EXPIRED)
            else:
                lease._next_event_at = lease._hard_deadline
        return min((lease._next_event_at for lease in self.live.values()), default=None)

    def _soft_expired(self, lease: ExecutorLease, now: float) -> None:
        self._counters.soft_expiries += 1
        self._logger.warning(
            "lease %s (owner=%r) passed its soft expiry after %.3gs; hard expiry in %.3gs",
            lease.lease_id,
            lease.owner,
            lease.lease_seconds,
            max(0.0, lease._hard_deadline - now),
        )
        callback = self._on_soft_expiry
        if callback is None:
            return
        try:
            result = callback(lease)
            if inspect.isawaitable(result):
                self._spawn(self._await_soft_callback(result, lease.lease_id))
        except Exception:
            self._logger.exception("on_soft_expiry callback raised for lease %s", lease.lease_id)

    async def _await_soft_callback(self, awaitable: Awaitable[object], lease_id: str) -> None:
        # Log an async callback's error like a sync one's, not as "never retrieved".
        try:
            await awaitable
        except Exception:
            self._logger.exception("on_soft_expiry callback raised for lease %s", lease_id)
