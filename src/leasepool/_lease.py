"""The lease: the right to submit work to one executor until a deadline."""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from leasepool._coordinator import ReleaseOutcome
from leasepool._errors import LeaseExpiredError, LeaseLostError
from leasepool._validation import optional_positive_duration

if TYPE_CHECKING:
    from leasepool._manager import LeasedExecutorManager
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
        manager: LeasedExecutorManager,
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
        self._manager = manager
        self._member = member
        self._soft_deadline = soft_deadline
        self._hard_deadline = hard_deadline
        self._state = LeaseState.ACTIVE
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
        return self._state is LeaseState.ACTIVE

    @property
    def seconds_left(self) -> float:
        """Seconds until the hard expiry; 0 once the lease is no longer active."""
        if self._state is not LeaseState.ACTIVE:
            return 0.0
        return max(0.0, self._hard_deadline - self._manager._clock.monotonic())

    def __repr__(self) -> str:
        return (
            f"<ExecutorLease id={self.lease_id} owner={self.owner!r} state={self.state} "
            f"token={self.fencing_token}>"
        )

    # -- work ---------------------------------------------------------------

    def _closed_error(self) -> LeaseExpiredError:
        if self._state is LeaseState.LOST:
            return LeaseLostError(
                f"Executor lease is no longer active: lease {self.lease_id} was lost, "
                "the coordinator no longer holds it"
            )
        if self._state is LeaseState.RELEASED:
            return LeaseExpiredError(f"Executor lease has been released: lease {self.lease_id}")
        return LeaseExpiredError(
            f"Executor lease expired and was revoked: lease {self.lease_id} passed its hard expiry"
        )

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        if self._state is not LeaseState.ACTIVE:
            raise self._closed_error()
        if self._manager._clock.monotonic() >= self._hard_deadline:
            # The timer has not run yet (busy loop, or a call from another thread):
            # the deadline itself is what counts.
            self._manager._expire_from_any_thread(self)
            raise self._closed_error()
        return self._manager._submit(self, self._member, fn, args, kwargs)

    async def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` on the leased executor and await its result."""
        if self._state is not LeaseState.ACTIVE:
            raise self._closed_error()
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        # The checks of _submit, inlined: this is the hot path the local benchmark
        # measures, and a call per step costs a measurable share of a no-op run.
        manager = self._manager
        if manager._clock.monotonic() >= self._hard_deadline:
            manager._expire_from_any_thread(self)
            raise self._closed_error()
        member = self._member
        try:
            future = member.executor.submit(fn, *args)
        except BrokenExecutor as exc:
            member.mark_broken(exc)
            raise
        member.pending.add(future)
        loop = manager._loop
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
        if not pending and member._on_drained is not None:
            member.finished(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            # Queued work that a hard expiry (or loss, or stop) cancelled: say so,
            # instead of a CancelledError the caller's task never asked for.
            if self._state is not LeaseState.ACTIVE:
                raise self._closed_error() from None
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
        manager = self._manager
        # The embedded coordinator answers synchronously: no inner await for it.
        outcome = manager._release_nowait(self)
        if outcome is None:
            outcome = await manager._release_global(self.lease_id) or ReleaseOutcome.RELEASED
        return outcome

    async def renew(self, seconds: float | None = None) -> None:
        """Extend a live lease to ``seconds`` (default: ``lease_seconds``) from now.

        Never revives an expired, released or lost lease: those raise
        :class:`LeaseExpiredError` (:class:`LeaseLostError` when the coordinator
        no longer holds it). Never shortens a lease.
        """
        checked = optional_positive_duration("seconds", seconds)
        await self._manager._renew_lease(self, self.lease_seconds if checked is None else checked)

    async def __aenter__(self) -> ExecutorLease:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()
