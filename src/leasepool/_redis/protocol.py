"""What Python and the Lua scripts say to each other: every script's ARGV and reply.

One layout for every script (the Lua side is in ``lua/``; ``lua/_shared.lua``
names the status values this module mirrors as :class:`~enum.IntEnum`\\ s):

* ``ARGV[1]`` is the caller's constants (:func:`encode_constants`); what else
  a script takes follows it.
* The reply is one string of fields separated by single spaces, the server
  time ``now`` (ms) first. A string costs the client one read and a split,
  where an array costs redis-py's pure-Python parser a read per element
  (measured: see ``docs/architecture.md``). Lease ids and origins hold no
  whitespace, and no reply carries free text. ``status.lua`` is the one
  exception: an operator's read-only snapshot with the tickets' free text in
  it, it returns an array (``now`` first too), read by :func:`decode_status`.
* Replies that free a slot end with the *own grants*: a count, then five
  fields each (:class:`OwnGrant`).

Invariants: a reply that does not have exactly the shape its script's header
promises (a damaged value came back, a field is missing or left over, a status
outside its enum) raises :data:`ReplyError` and nothing else, so the caller
fails the calls that reply was for and only those. Every decoder returns a
typed, immutable value: no ``Any`` leaves this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import NamedTuple, TypeVar

from leasepool._errors import CoordinatorStateError

ReplyError = CoordinatorStateError
"""What an unreadable script reply raises (damaged state in Redis, or a foreign script)."""

DEFAULT_RECLAIM_BATCH = 100
"""Expired leases removed, and queued tickets examined, per script call, at most."""
DEFAULT_MARGIN_MS = 60_000
DEFAULT_CLAIM_MS = 5000
DEFAULT_TICKET_MS = 15000

HEARTBEAT_FLAGS = frozenset("wfk")
"""heartbeat.lua's flags: w(aiting), f(ull check), k(eep the waiting keys' TTLs)."""

E = TypeVar("E", bound=IntEnum)


# -- statuses (the same names and values as in lua/_shared.lua) -----------------------


class AcquireStatus(IntEnum):
    """One request's outcome in ``acquire.lua``."""

    GRANTED = 1
    """A slot: value = fencing token (also for a retry of a live lease, or a claim)."""
    QUEUED = 2
    """A waiter ticket waits in the queue: value = its enqueue sequence."""
    REFUSED = 3
    """No slot and no wait (full, paused, or fair with tickets queued): value = live leases."""
    CANCELLED = 4
    """This id's acquire was cancelled before it arrived (a tombstone, see release.lua)."""


class ReleaseStatus(IntEnum):
    """One id's outcome in ``release.lua``."""

    RELEASED = 1
    """The lease was live; its slot is free (and handed on to the queue's head)."""
    EXPIRED = 2
    """The lease was past its hard expiry, or only its record was left."""
    DEQUEUED = 3
    """A waiter ticket, not a lease: it left the queue."""
    UNKNOWN = 4
    """Never granted, already released, revoked, or the data was lost."""


class TicketStatus(IntEnum):
    """One id's state in ``heartbeat.lua``."""

    GRANTED = 1
    """A live lease (a handed-off grant is claimed by this call): token, soft, hard."""
    WAITING = 2
    """Still queued."""
    GONE = 3
    """No ticket and no lease: the waiter must queue again."""


class RenewStatus(IntEnum):
    """One id's outcome in ``renew.lua``."""

    RENEWED = 1
    """Still live: token, soft, hard are its (never earlier) expiries."""
    GONE = 2
    """Expired, revoked or lost: the holder must stop."""


class RevokeStatus(IntEnum):
    """``revoke.lua``'s outcome."""

    WAS_LIVE = 1
    """The lease was live; it is removed and its holder told."""
    NOT_LIVE = 2
    """Nothing live had that id (an expired one is removed all the same)."""


# -- values ------------------------------------------------------------------------


class OwnGrant(NamedTuple):
    """A slot handed to one of the caller's tickets (see "own grants" in lua/_shared.lua).

    ``claim_ms < hard_ms``: not claimed yet, Redis counts it until ``claim_ms``;
    ``claim_ms == hard_ms``: claimed in the same call.
    """

    lease_id: str
    token: int
    soft_ms: int
    hard_ms: int
    claim_ms: int


class InitReply(NamedTuple):
    now_ms: int
    capacity: int
    """The stored capacity (a stored one wins over the caller's)."""
    created: bool
    """True when this call set it (a new pool)."""


class AcquireRow(NamedTuple):
    status: AcquireStatus
    value: int
    """GRANTED: the fencing token; QUEUED: the enqueue sequence; REFUSED: live leases."""
    soft_ms: int
    hard_ms: int


class AcquireReply(NamedTuple):
    now_ms: int
    earliest_ms: int
    """The earliest live expiry when a ticket was queued and it was looked at, else -1."""
    queued: int
    """Queued tickets (-1: not counted, which happens without fair)."""
    capacity: int
    revived: bool
    """A ticket was queued while the caller's process was not counted alive: its older
    tickets may have been dropped, it should check them."""
    rows: tuple[AcquireRow, ...]
    own: tuple[OwnGrant, ...]


class ReleaseReply(NamedTuple):
    now_ms: int
    statuses: tuple[ReleaseStatus, ...]
    own: tuple[OwnGrant, ...]


class TicketRow(NamedTuple):
    status: TicketStatus
    token: int
    soft_ms: int
    hard_ms: int


class HeartbeatReply(NamedTuple):
    now_ms: int
    alive: bool
    """False when the caller's process was not counted alive before this call."""
    earliest_ms: int
    """The earliest live expiry (-1: none, or not looked at)."""
    queued: int
    """Queued tickets (-1 unless a full check ran)."""
    capacity: int
    """The stored capacity (-1 unless a full check ran)."""
    rows: tuple[TicketRow, ...]
    own: tuple[OwnGrant, ...]


class RenewRow(NamedTuple):
    status: RenewStatus
    token: int
    soft_ms: int
    hard_ms: int


class RenewReply(NamedTuple):
    now_ms: int
    rows: tuple[RenewRow, ...]


class ReclaimReply(NamedTuple):
    now_ms: int
    reclaimed: int
    live: int
    capacity: int | None
    """None when the pool has no capacity yet."""
    earliest_ms: int
    own: tuple[OwnGrant, ...]


class RevokeReply(NamedTuple):
    now_ms: int
    status: RevokeStatus
    own: tuple[OwnGrant, ...]


class SetCapacityReply(NamedTuple):
    now_ms: int
    old: int | None
    """The capacity before (None: the pool had none, or a damaged one)."""
    live: int
    own: tuple[OwnGrant, ...]


class StatusReply(NamedTuple):
    """``status.lua``'s read-only snapshot (raw: the caller checks the capacity)."""

    now_ms: int
    capacity: str | None
    """The meta hash's capacity field as stored (None: missing)."""
    live: int
    expired: int
    queued: int
    leases: tuple[tuple[str, int], ...]
    """Up to the limit of live leases: (id, expiry ms), soonest first."""
    tickets: dict[str, str]
    alive: frozenset[str]
    """Origins of the waiting processes alive at ``now_ms``."""
    present: int
    """How many of the pool's five keys exist (0: no such pool)."""


class WaitingTicket(NamedTuple):
    """``w|<lease_ms>|<grace_ms>|<origin>|<pid>|<host>|<owner>`` (lua/_shared.lua)."""

    lease_ms: int
    grace_ms: int
    origin: str
    pid: int
    host: str
    owner: str


class GrantedTicket(NamedTuple):
    """``g|<token>|<acquired_ms>|<soft_ms>|<hard_ms>|<pid>|<host>|<owner>``: handed off,
    not claimed yet."""

    token: int
    acquired_ms: int
    soft_ms: int
    hard_ms: int
    pid: int
    host: str
    owner: str


# -- encoding --------------------------------------------------------------------


def encode_constants(
    *,
    capacity: int = 1,
    batch: int = DEFAULT_RECLAIM_BATCH,
    margin_ms: int = DEFAULT_MARGIN_MS,
    claim_ms: int = DEFAULT_CLAIM_MS,
    ticket_ms: int = DEFAULT_TICKET_MS,
    fair: bool = False,
    origin: str = "",
    pid: int | None = None,
    host: str = "",
) -> str:
    """Every script's ARGV[1]: ``cap0|batch|margin|claim|ticket|fair|origin|pid|host``.

    Operator tools use the defaults: no origin, so every grant they hand off is
    published to its waiter's process. ``origin`` holds no ``|`` or whitespace and
    ``host`` no ``|`` (the coordinator makes sure of both).
    """
    return (
        f"{capacity}|{batch}|{margin_ms}|{claim_ms}|{ticket_ms}|{1 if fair else 0}|{origin}"
        f"|{'' if pid is None else pid}|{host}"
    )


def encode_init(constants: str) -> list[str]:
    return [constants]


def encode_acquire_request(
    wait: bool, lease_ms: int, grace_ms: int, lease_id: str, owner: str
) -> str:
    """One request of ``acquire.lua``: ``<mode> <lease ms> <grace ms> <lease id> <owner>``
    (mode 1: queue a ticket when no slot is free; 0: refuse)."""
    return f"{1 if wait else 0} {lease_ms} {grace_ms} {lease_id} {owner}"


def encode_acquire(constants: str, requests: Sequence[str]) -> list[str]:
    """``requests``: from :func:`encode_acquire_request`, one per lease key after the five."""
    return [constants, *requests]


def encode_release(
    constants: str, releases: Sequence[tuple[str, int]], mine: Sequence[str] = ()
) -> list[str]:
    """``releases``: (lease id, tombstone ms; 0 for none) per lease key after the five;
    ``mine``: the caller's waiting ids whose keys follow those (a slot handed to one of
    them is claimed at once)."""
    args = [constants, " ".join(f"{lease_id} {tomb}" for lease_id, tomb in releases)]
    if mine:
        args.append(" ".join(mine))
    return args


def encode_heartbeat(constants: str, flags: str, ids: Sequence[str] = ()) -> list[str]:
    """``flags``: letters of :data:`HEARTBEAT_FLAGS` (may be empty); ``ids``: one per
    lease key after the five."""
    if not HEARTBEAT_FLAGS.issuperset(flags):
        raise ValueError(f"flags must be letters of 'wfk', got {flags!r}")
    args = [constants, flags or "-"]
    if ids:
        args.append(" ".join(ids))
    return args


def encode_renew(constants: str, renewals: Sequence[tuple[str, int]]) -> list[str | int]:
    """``renewals``: (lease id, lease ms) per lease key after the five."""
    args: list[str | int] = [constants]
    for lease_id, lease_ms in renewals:
        args += [lease_id, lease_ms]
    return args


def encode_reclaim(constants: str) -> list[str]:
    return [constants]


def encode_revoke(constants: str, lease_id: str) -> list[str]:
    return [constants, lease_id]


def encode_set_capacity(constants: str, capacity: int) -> list[str | int]:
    return [constants, capacity]


def encode_status(constants: str, limit: int) -> list[str | int]:
    return [constants, limit]


# -- decoding --------------------------------------------------------------------


def text(value: object) -> str:
    """A reply item as ``str`` (clients with and without ``decode_responses``)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _bad(what: str, detail: str) -> ReplyError:
    return ReplyError(
        f"{what}: Redis sent an unreadable reply ({detail:.200}); is a key of the pool damaged?"
    )


def _fields(reply: object, what: str) -> list[str]:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace").split(" ")
    if isinstance(reply, str):
        return reply.split(" ")
    raise _bad(what, f"not one string: {reply!r:.200}")


def _ints(fields: Sequence[str], start: int, count: int, what: str) -> list[int]:
    part = fields[start : start + count]
    if len(part) == count:
        try:
            return [int(x) for x in part]
        except ValueError:
            pass
    raise _bad(what, f"fields {start}..{start + count - 1}: {list(part)!r}")


def _status(enum: type[E], raw: int, what: str) -> E:
    try:
        return enum(raw)
    except ValueError:
        raise _bad(what, f"{raw} is no {enum.__name__}") from None


def _own(fields: Sequence[str], at: int, what: str) -> tuple[OwnGrant, ...]:
    """The own grants at ``fields[at]``, which must end the reply."""
    (count,) = _ints(fields, at, 1, what)
    if count < 0 or len(fields) != at + 1 + 5 * count:
        raise _bad(what, f"{count} own grants in {len(fields) - at - 1} fields")
    grants = []
    for base in range(at + 1, len(fields), 5):
        token, soft_ms, hard_ms, claim_ms = _ints(fields, base + 1, 4, what)
        grants.append(OwnGrant(fields[base], token, soft_ms, hard_ms, claim_ms))
    return tuple(grants)


def _exact(fields: Sequence[str], count: int, what: str) -> None:
    if len(fields) != count:
        raise _bad(what, f"{len(fields)} fields, expected {count}")


def decode_init(reply: object) -> InitReply:
    fields = _fields(reply, "init")
    _exact(fields, 3, "init")
    now_ms, capacity, created = _ints(fields, 0, 3, "init")
    return InitReply(now_ms, capacity, created == 1)


def decode_acquire(reply: object, count: int) -> AcquireReply:
    """``acquire.lua``'s reply to ``count`` requests."""
    what = "acquire"
    fields = _fields(reply, what)
    now_ms, earliest_ms, queued, capacity, revived, *flat = _ints(fields, 0, 5 + 4 * count, what)
    rows = tuple(
        AcquireRow(_status(AcquireStatus, flat[i], what), *flat[i + 1 : i + 4])
        for i in range(0, 4 * count, 4)
    )
    own = _own(fields, 5 + 4 * count, what)
    return AcquireReply(now_ms, earliest_ms, queued, capacity, revived == 1, rows, own)


def decode_release(reply: object, count: int) -> ReleaseReply:
    """``release.lua``'s reply for ``count`` ids."""
    fields = _fields(reply, "release")
    now_ms, *raw = _ints(fields, 0, 1 + count, "release")
    statuses = tuple(_status(ReleaseStatus, x, "release") for x in raw)
    return ReleaseReply(now_ms, statuses, _own(fields, 1 + count, "release"))


def decode_heartbeat(reply: object, count: int) -> HeartbeatReply:
    """``heartbeat.lua``'s reply for ``count`` ids."""
    what = "heartbeat"
    fields = _fields(reply, what)
    now_ms, alive, earliest_ms, queued, capacity, *flat = _ints(fields, 0, 5 + 4 * count, what)
    rows = tuple(
        TicketRow(_status(TicketStatus, flat[i], what), *flat[i + 1 : i + 4])
        for i in range(0, 4 * count, 4)
    )
    own = _own(fields, 5 + 4 * count, what)
    return HeartbeatReply(now_ms, alive == 1, earliest_ms, queued, capacity, rows, own)


def decode_renew(reply: object, count: int) -> RenewReply:
    """``renew.lua``'s reply for ``count`` ids."""
    fields = _fields(reply, "renew")
    _exact(fields, 1 + 4 * count, "renew")
    now_ms, *flat = _ints(fields, 0, 1 + 4 * count, "renew")
    rows = tuple(
        RenewRow(_status(RenewStatus, flat[i], "renew"), *flat[i + 1 : i + 4])
        for i in range(0, 4 * count, 4)
    )
    return RenewReply(now_ms, rows)


def decode_reclaim(reply: object) -> ReclaimReply:
    fields = _fields(reply, "reclaim")
    now_ms, reclaimed, live, capacity, earliest_ms = _ints(fields, 0, 5, "reclaim")
    own = _own(fields, 5, "reclaim")
    return ReclaimReply(
        now_ms, reclaimed, live, capacity if capacity >= 0 else None, earliest_ms, own
    )


def decode_revoke(reply: object) -> RevokeReply:
    fields = _fields(reply, "revoke")
    now_ms, status = _ints(fields, 0, 2, "revoke")
    return RevokeReply(now_ms, _status(RevokeStatus, status, "revoke"), _own(fields, 2, "revoke"))


def decode_set_capacity(reply: object) -> SetCapacityReply:
    fields = _fields(reply, "set_capacity")
    now_ms, old, live = _ints(fields, 0, 3, "set_capacity")
    own = _own(fields, 3, "set_capacity")
    return SetCapacityReply(now_ms, old if old >= 0 else None, live, own)


def _int_item(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(text(value))
    except ValueError:
        raise _bad(what, f"not an integer: {value!r}") from None


def _flat(value: object, what: str) -> list[object]:
    if not isinstance(value, list) or len(value) % 2:
        raise _bad(what, f"not a flat list of pairs: {value!r}")
    return value


def decode_status(reply: object) -> StatusReply:
    """``status.lua``'s array (see its header)."""
    what = "status"
    if not isinstance(reply, list) or len(reply) != 9:
        raise _bad(what, f"not an array of 9: {reply!r}")
    now, raw_cap, live, expired, queued, leases, tickets, alive, present = reply
    flat = _flat(leases, what)
    pairs = tuple((text(flat[i]), _int_item(flat[i + 1], what)) for i in range(0, len(flat), 2))
    items = _flat(tickets, what)
    if not isinstance(alive, list):
        raise _bad(what, f"not a list: {alive!r}")
    return StatusReply(
        _int_item(now, what),
        None if raw_cap is None else text(raw_cap),
        _int_item(live, what),
        _int_item(expired, what),
        _int_item(queued, what),
        pairs,
        {text(items[i]): text(items[i + 1]) for i in range(0, len(items), 2)},
        frozenset(text(origin) for origin in alive),
        _int_item(present, what),
    )


def _int_or_zero(raw: str) -> int:
    return int(raw) if raw.isdigit() else 0


def decode_ticket(ticket: str) -> WaitingTicket | GrantedTicket | None:
    """A tickets-hash value (see lua/_shared.lua); None when it is neither kind. The
    owner comes last: it may hold ``|``."""
    if ticket.startswith("w|"):
        parts = ticket.split("|", 6)
        if len(parts) == 7 and parts[1].isdigit() and parts[2].isdigit():
            _, lease_ms, grace_ms, origin, pid, host, owner = parts
            return WaitingTicket(
                int(lease_ms), int(grace_ms), origin, _int_or_zero(pid), host, owner
            )
    elif ticket.startswith("g|"):
        parts = ticket.split("|", 7)
        if len(parts) == 8 and all(p.isdigit() for p in parts[1:5]):
            _, token, acquired, soft, hard, pid, host, owner = parts
            return GrantedTicket(
                int(token), int(acquired), int(soft), int(hard), _int_or_zero(pid), host, owner
            )
    return None


def decode_grant_event(fields: Sequence[str], origin: str) -> list[OwnGrant]:
    """The grants to ``origin`` in a ``grant`` event's fields (after the word ``grant``):
    six each, ``<origin> <id> <token> <soft_ms> <hard_ms> <claim_ms>``. An unreadable
    entry is skipped (the claim, by heartbeat, is what counts)."""
    grants = []
    for j in range(0, len(fields) - 5, 6):
        if fields[j] != origin:
            continue  # another process's ticket
        try:
            token, soft_ms, hard_ms, claim_ms = (int(x) for x in fields[j + 2 : j + 6])
        except ValueError:
            continue
        grants.append(OwnGrant(fields[j + 1], token, soft_ms, hard_ms, claim_ms))
    return grants
