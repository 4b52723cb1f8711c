"""The coordinator interface.

A lease needs two things: a local executor (owned by this process's pool) and a
*global slot* granted by a coordinator. The coordinator decides who may hold a
slot and until when; the manager never counts global capacity itself.

Rules every implementation keeps (the contract suite in :mod:`leasepool.testing.contract`
checks them against each one):

* ``acquire`` never grants more than ``capacity`` live slots at once.
* ``Grant.hard_deadline`` is on the caller's clock and is never later than the
  moment the coordinator itself stops counting the slot.
* A cancelled or timed-out ``acquire`` leaves no slot behind.
* ``release`` is idempotent and completes even when the awaiting task is
  cancelled.
* ``renew`` only ever extends a live lease; it never revives a gone one and
  never shortens one (so a lost reply can only make the holder's local
  deadline earlier than the coordinator's, never later).
* Fencing tokens strictly increase per pool.
* ``acquire_nowait``/``release_nowait`` are optional fast paths with the same
  rules; they never wait and never do I/O, and raise ``WouldBlock`` instead.
  The manager calls them first on every coordinator and falls back to the
  async calls, so it never needs to know which coordinator it has.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from leasepool._clock import Clock
from leasepool._errors import WouldBlock
from leasepool._statistics import CoordinatorStatistics


class ReleaseOutcome(enum.Enum):
    """What ``release`` found."""

    RELEASED = "released"
    """The lease was live and its slot is now free."""
    EXPIRED = "expired"
    """The lease had already passed its hard expiry; its slot was (or will be) reclaimed."""
    UNKNOWN = "unknown"
    """No such lease: never granted, already released, revoked, or the data was lost."""


class GrantRequest(NamedTuple):
    """What the manager asks a coordinator for."""

    lease_id: str
    owner: str
    lease_seconds: float
    grace_seconds: float


class Grant(NamedTuple):
    """A global slot, as the holder must see it.

    The deadlines are on the clock passed to :meth:`Coordinator.start`. The
    hard deadline is a promise: the coordinator keeps counting the slot at
    least until then, so revoking locally at ``hard_deadline`` can never
    overlap another holder.
    """

    lease_id: str
    fencing_token: int
    soft_deadline: float
    hard_deadline: float


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One live lease, as an operator sees it. Times are coordinator time in ms."""

    lease_id: str
    owner: str
    host: str
    pid: int
    token: int
    acquired_ms: int
    soft_ms: int
    hard_ms: int


@dataclass(frozen=True, slots=True)
class WaitingProcess:
    """How many callers of one process wait for a slot of a pool."""

    host: str
    pid: int
    count: int


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of one pool, for ``leasepool status`` and ``stats()``."""

    pool: str
    capacity: int | None
    """``None`` means unbounded (the embedded coordinator's default)."""
    leases: tuple[LeaseRecord, ...]
    waiting: int
    """Callers waiting for a slot, in total."""
    now_ms: int
    waiters: tuple[WaitingProcess, ...] = ()
    """Who waits, per process (host and pid), most waiters first; empty when unknown."""


LostCallback = Callable[[str], None]
"""Called with a lease id when the coordinator learns the lease is gone."""


class Coordinator(abc.ABC):
    """Grants global slots. See the module docstring for the contract."""

    @property
    @abc.abstractmethod
    def pool(self) -> str:
        """The pool name this coordinator grants slots of."""

    @abc.abstractmethod
    async def start(self, *, clock: Clock, on_lost: LostCallback) -> None:
        """Connect and get ready. May be called once per manager using it.

        ``on_lost`` is called (on the event loop) with the id of a lease this
        process holds when the coordinator learns it is gone, for example
        after an operator revoked it.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Undo one ``start``. The last ``close`` releases connections."""

    @abc.abstractmethod
    async def acquire(self, request: GrantRequest, *, wait: bool, deadline: float | None) -> Grant:
        """Grant a slot for ``request.lease_id``.

        With ``wait=False``: one try; raise :class:`LeaseUnavailableError` when
        full or when others are already queued. With ``wait=True``: wait until
        granted, or until ``deadline`` (on the start clock), then raise
        ``TimeoutError``.
        """

    def acquire_nowait(self, request: GrantRequest, *, now: float) -> Grant:
        """Grant at once, with no I/O and no await, or raise :class:`WouldBlock`.

        ``now`` is the caller's reading of the clock passed to :meth:`start`.
        Raises ``WouldBlock`` when the pool is full, when waiters are queued
        (first in, first out), before ``start`` or after the last ``close``, or
        whenever this coordinator cannot decide without I/O. The default always
        raises ``WouldBlock``. A grant from here counts exactly like one from
        :meth:`acquire`: release it with :meth:`release` or :meth:`release_nowait`.
        """
        raise WouldBlock(f"{type(self).__name__} has no no-wait acquire")

    def release_nowait(self, lease_id: str) -> ReleaseOutcome:
        """Release with no I/O and no await, or raise :class:`WouldBlock`.

        Same outcomes as :meth:`release`. The default always raises ``WouldBlock``;
        the caller then awaits :meth:`release`.
        """
        raise WouldBlock(f"{type(self).__name__} has no no-wait release")

    @abc.abstractmethod
    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Free the slot. Idempotent; completes even if the caller is cancelled."""

    @abc.abstractmethod
    async def renew(self, renewals: Mapping[str, float]) -> dict[str, Grant | None]:
        """Extend leases: lease id -> new ``lease_seconds`` counted from now.

        All ids go in one round trip. The result maps each id to its new
        grant, or to ``None`` when the lease is gone (it is then lost). A
        renewal never shortens a lease.
        """

    @abc.abstractmethod
    async def revoke(self, lease_id: str) -> bool:
        """Remove a lease by id (an operator action). True if it was live."""

    @abc.abstractmethod
    async def set_capacity(self, capacity: int) -> None:
        """Change the pool's capacity. Shrinking never revokes a live lease."""

    @abc.abstractmethod
    async def status(self) -> PoolStatus:
        """The pool's capacity, live leases and waiters."""

    def statistics(self) -> CoordinatorStatistics:
        """Process-local counters for ``manager.stats()["coordinator"]``; cheap, no I/O.

        The default is an empty dict; the built-in coordinators return the common
        keys of :class:`CoordinatorStatistics` plus their own counters.
        """
        return {}
