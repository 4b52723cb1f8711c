"""Reading the Lua scripts' replies, checked.

Invariant: a reply that does not have the shape its script's header promises (a
damaged value came back, a field is missing) raises
:class:`~leasepool.CoordinatorStateError`, and never anything else: the caller fails
the calls that reply was for, and only those (see the batch loops of
:mod:`leasepool._redis.coordinator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from leasepool._errors import CoordinatorStateError

Fields = Sequence[bytes | str]


ReplyError = CoordinatorStateError
"""What an unreadable script reply raises (damaged state in Redis, or a foreign script)."""


class OwnGrant(NamedTuple):
    """A slot handed to one of the caller's tickets (see "own grants" in lua/_shared.lua)."""

    lease_id: str
    token: int
    soft_ms: int
    hard_ms: int
    claim_ms: int


def text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def split(reply: object, what: str) -> list[bytes | str]:
    """A one-string reply's fields."""
    if isinstance(reply, (bytes, str)):
        return reply.split()  # type: ignore[return-value]
    raise ReplyError(f"{what}: Redis sent an unreadable reply: {reply!r:.200}")


def ints(fields: Fields, start: int, count: int, what: str) -> list[int]:
    """``count`` integers from ``fields[start:]``."""
    part = fields[start : start + count]
    try:
        if len(part) == count:
            return [int(x) for x in part]
    except (TypeError, ValueError):
        pass
    raise ReplyError(
        f"{what}: Redis sent an unreadable reply (fields {start}..{start + count - 1}: "
        f"{[text(x) for x in part]!r:.200}); is a key of the pool damaged?"
    )


def own_grants(fields: Fields, at: int, what: str) -> list[OwnGrant]:
    """The own grants at ``fields[at]``: a count, then five fields each."""
    (count,) = ints(fields, at, 1, what)
    if not 0 <= count <= (len(fields) - at - 1) // 5:
        raise ReplyError(f"{what}: Redis sent an unreadable reply (own grants: {count})")
    grants = []
    for j in range(count):
        base = at + 1 + 5 * j
        token, soft_ms, hard_ms, claim_ms = ints(fields, base + 1, 4, what)
        grants.append(OwnGrant(text(fields[base]), token, soft_ms, hard_ms, claim_ms))
    return grants
