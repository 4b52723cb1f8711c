"""The vocabulary of the waiting state machine (:mod:`leasepool._redis.waiting`).

A :class:`Waiter` is one ``acquire`` request as the machine sees it; its
:class:`Phase` says where the request stands in Redis. The machine answers every
input with a list of *actions*: frozen dataclasses that the coordinator carries
out, in order, with I/O (script calls, futures, timers). Nothing here does I/O.

Invariants:

* A waiter is *resolved* (settled or failed) at most once: after the machine
  emits :class:`Settle` or :class:`Fail` for it, it emits neither again.
* ``PENDING``: not sent (leaving costs nothing); ``SENT``: in an acquire call
  whose reply is due; ``QUEUED``: its ticket waits in Redis (leaving releases
  it, with a tombstone); ``CLAIMING``: a slot was handed to its ticket and the
  claim is asked for (leaving releases the ticket or the grant); ``DONE``:
  nothing of it is left in Redis for this process to clean up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from leasepool._coordinator import Grant

COUNTERS: tuple[str, ...] = (
    *("grants", "handoffs", "refusals", "waits", "timeouts", "round_trips", "events"),
    *("heartbeats", "claims", "claims_lost", "requeued", "orphans_released", "renewals", "lost"),
)
"""The coordinator's counters (``statistics()``), in their documented order."""


class Phase(enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    QUEUED = "queued"
    CLAIMING = "claiming"
    DONE = "done"


class Waiter:
    """One acquire request (``wait=False`` ones too, while their call is out).

    Subclasses may narrow :meth:`live` (the coordinator adds "its future is not
    done": a cancelled caller is gone before it tells the machine so).
    """

    __slots__ = ("deadline", "lease_id", "phase", "resolved", "wait")

    def __init__(self, lease_id: str, wait: bool, deadline: float | None) -> None:
        self.lease_id = lease_id
        self.wait = wait
        self.deadline = deadline
        self.phase = Phase.PENDING
        self.resolved = False
        """True once the machine settled or failed it."""

    def live(self) -> bool:
        """Someone still awaits this request's outcome."""
        return not self.resolved

    def __repr__(self) -> str:
        return f"Waiter({self.lease_id!r}, {self.phase.value})"


@dataclass(slots=True)
class Held:
    """A lease this process holds, as far as the machine knows: its local deadlines."""

    token: int
    soft: float
    hard: float


# -- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settle:
    """Give ``grant`` to the waiter's caller. If that caller turns out to be gone, the
    coordinator reports it with :meth:`~leasepool._redis.waiting.WaitingMachine.orphan`."""

    waiter: Waiter
    grant: Grant


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise ``error`` in the waiter's caller (its ticket is cleaned up when it leaves)."""

    waiter: Waiter
    error: BaseException


@dataclass(frozen=True, slots=True)
class Release:
    """Release ``lease_id`` in the background; ``tomb``: leave a tombstone, so that an
    acquire of it still on its way grants nothing."""

    lease_id: str
    tomb: bool


@dataclass(frozen=True, slots=True)
class Discard:
    """Take the waiter out of the acquire batch not sent yet."""

    waiter: Waiter


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Send the waiter's acquire again (its ticket is gone from Redis)."""

    waiter: Waiter


@dataclass(frozen=True, slots=True)
class ArmDeadline:
    """Call :meth:`~leasepool._redis.waiting.WaitingMachine.deadline_passed` at ``at``."""

    waiter: Waiter
    at: float


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """(Re)arm the one process timer at ``at``; None: cancel it."""

    at: float | None


@dataclass(frozen=True, slots=True)
class StartSync:
    """Run the sync loop (heartbeats, full checks) if it is not running."""


@dataclass(frozen=True, slots=True)
class StartClaims:
    """Run the claim loop if it is not running: a grant waits for its claim."""


@dataclass(frozen=True, slots=True)
class Lost:
    """A lease of ours was revoked: tell the holders (``on_lost``)."""

    lease_id: str


Action = (
    Settle | Fail | Release | Discard | Enqueue | ArmDeadline | ArmTimer | StartSync | StartClaims
) | Lost


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """One heartbeat.lua call (or several chunks of ids), with its flags."""

    flags: str
    chunks: tuple[tuple[str, ...], ...]
