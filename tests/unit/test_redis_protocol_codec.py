"""The Python side of the script protocol, with no Redis: ARGV encoding, reply decoding
(round trips), bad replies, and the status values shared with lua/_shared.lua."""

from __future__ import annotations

import enum
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leasepool import CoordinatorStateError
from leasepool._redis import protocol as p

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "lua"

ENUMS: dict[str, type[enum.IntEnum]] = {
    "ACQUIRE": p.AcquireStatus,
    "RELEASE": p.ReleaseStatus,
    "TICKET": p.TicketStatus,
    "RENEW": p.RenewStatus,
    "REVOKE": p.RevokeStatus,
}
SCRIPT_OF = {
    "ACQUIRE": "acquire",
    "RELEASE": "release",
    "TICKET": "heartbeat",
    "RENEW": "renew",
    "REVOKE": "revoke",
}


def lua_constants() -> dict[str, int]:
    """``local A_X, A_Y = 1, 2`` lines of _shared.lua, as {name: value}."""
    found: dict[str, int] = {}
    shared = (LUA / "_shared.lua").read_text()
    for names, values in re.findall(r"^local ((?:[A-Z]+_[A-Z_]+, )*[A-Z]+_[A-Z_]+) = ([\d, ]+)$",
                                    shared, re.M):  # fmt: skip
        pairs = zip(names.split(", "), values.split(", "), strict=True)
        found.update({name: int(value) for name, value in pairs})
    return found


def test_lua_status_constants_match_the_enums() -> None:
    constants = lua_constants()
    for prefix, enum_type in ENUMS.items():
        in_lua = {
            k[len(prefix) + 1 :]: v for k, v in constants.items() if k.startswith(prefix + "_")
        }
        assert in_lua == {m.name: m.value for m in enum_type}, prefix


def test_every_status_is_documented_in_its_script_header_with_its_value() -> None:
    for prefix, enum_type in ENUMS.items():
        header = (LUA / f"{SCRIPT_OF[prefix]}.lua").read_text().split("\n\n", 1)[0]
        for member in enum_type:
            assert f"{prefix}_{member.name} ({member.value})" in header, (prefix, member)


def test_statuses_are_never_bare_numbers_in_the_scripts() -> None:
    """Each script sets a status through its name, never a literal."""
    for name in ("acquire", "release", "heartbeat", "renew", "revoke"):
        code = "\n".join(
            line for line in (LUA / f"{name}.lua").read_text().splitlines()
            if not line.startswith("--")
        )  # fmt: skip
        assert not re.search(r"\bstatus\w*\s*(?:,[^=]*)?=\s*-?\d", code), name


# -- encoding ------------------------------------------------------------------------


def test_constants_layout() -> None:
    text = p.encode_constants(
        capacity=3, batch=7, margin_ms=9, claim_ms=11, ticket_ms=13, fair=True,
        origin="abc", pid=42, host="h",
    )  # fmt: skip
    assert text == "3|7|9|11|13|1|abc|42|h"
    assert p.encode_constants() == "1|100|60000|5000|15000|0|||"


def test_every_script_takes_the_constants_first() -> None:
    c = p.encode_constants(origin="o", pid=1, host="h")
    encoded: list[list[Any]] = [
        p.encode_init(c),
        p.encode_acquire(c, [p.encode_acquire_request(True, 1000, 0, "x", "me and you")]),
        p.encode_release(c, [("x", 0)]),
        p.encode_heartbeat(c, "w"),
        p.encode_renew(c, [("x", 5)]),
        p.encode_reclaim(c),
        p.encode_revoke(c, "x"),
        p.encode_set_capacity(c, 4),
        p.encode_status(c, 10),
    ]
    for args in encoded:
        assert args[0] == c


def test_acquire_release_heartbeat_renew_layouts() -> None:
    assert p.encode_acquire_request(True, 1500, 250, "id-1", "owner x") == "1 1500 250 id-1 owner x"
    assert p.encode_acquire_request(False, 1, 0, "i", "") == "0 1 0 i "
    assert p.encode_release("C", [("a", 0), ("b", 60000)]) == ["C", "a 0 b 60000"]
    assert p.encode_release("C", [("a", 0)], ["w1", "w2"]) == ["C", "a 0", "w1 w2"]
    assert p.encode_heartbeat("C", "") == ["C", "-"]
    assert p.encode_heartbeat("C", "wk", ["a", "b"]) == ["C", "wk", "a b"]
    assert p.encode_renew("C", [("a", 5), ("b", 6)]) == ["C", "a", 5, "b", 6]


@pytest.mark.parametrize("flags", ["x", "w f", "W", "-"])
def test_heartbeat_flags_are_checked(flags: str) -> None:
    with pytest.raises(ValueError, match="flags"):
        p.encode_heartbeat("C", flags)


# -- decoding: round trips -------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True)
ms = st.integers(min_value=-1, max_value=2**53 - 1)
own_grants = st.lists(st.builds(p.OwnGrant, ids, ms, ms, ms, ms), max_size=4)


def join(*parts: object) -> str:
    return " ".join(str(x) for x in parts)


def own_text(own: list[p.OwnGrant]) -> str:
    return join(len(own), *(field for grant in own for field in grant))


@given(
    head=st.tuples(ms, ms, ms, ms, st.booleans()),
    rows=st.lists(st.tuples(st.sampled_from(p.AcquireStatus), ms, ms, ms), max_size=5),
    own=own_grants,
    as_bytes=st.booleans(),
)
def test_acquire_round_trip(
    head: tuple[int, int, int, int, bool],
    rows: list[tuple[p.AcquireStatus, int, int, int]],
    own: list[p.OwnGrant],
    as_bytes: bool,
) -> None:
    now, earliest, queued, capacity, revived = head
    reply = join(
        now, earliest, queued, capacity, int(revived),
        *(int(f) for row in rows for f in row), own_text(own),
    )  # fmt: skip
    decoded = p.decode_acquire(reply.encode() if as_bytes else reply, len(rows))
    assert decoded == p.AcquireReply(
        now, earliest, queued, capacity, revived,
        tuple(p.AcquireRow(*row) for row in rows), tuple(own),
    )  # fmt: skip
    assert all(type(row.status) is p.AcquireStatus for row in decoded.rows)


@given(
    now=ms,
    statuses=st.lists(st.sampled_from(p.ReleaseStatus), min_size=1, max_size=6),
    own=own_grants,
)
def test_release_round_trip(
    now: int, statuses: list[p.ReleaseStatus], own: list[p.OwnGrant]
) -> None:
    reply = join(now, *(int(s) for s in statuses), own_text(own))
    assert p.decode_release(reply, len(statuses)) == p.ReleaseReply(
        now, tuple(statuses), tuple(own)
    )


@given(
    head=st.tuples(ms, st.booleans(), ms, ms, ms),
    rows=st.lists(st.tuples(st.sampled_from(p.TicketStatus), ms, ms, ms), max_size=5),
    own=own_grants,
)
def test_heartbeat_round_trip(
    head: tuple[int, bool, int, int, int],
    rows: list[tuple[p.TicketStatus, int, int, int]],
    own: list[p.OwnGrant],
) -> None:
    now, alive, earliest, queued, capacity = head
    reply = join(
        now, int(alive), earliest, queued, capacity,
        *(int(f) for row in rows for f in row), own_text(own),
    )  # fmt: skip
    assert p.decode_heartbeat(reply, len(rows)) == p.HeartbeatReply(
        now, alive, earliest, queued, capacity, tuple(p.TicketRow(*r) for r in rows), tuple(own)
    )


@given(now=ms, rows=st.lists(st.tuples(st.sampled_from(p.RenewStatus), ms, ms, ms), max_size=5))
def test_renew_round_trip(now: int, rows: list[tuple[p.RenewStatus, int, int, int]]) -> None:
    reply = join(now, *(int(f) for row in rows for f in row))
    assert p.decode_renew(reply, len(rows)) == p.RenewReply(
        now, tuple(p.RenewRow(*r) for r in rows)
    )


def test_small_replies() -> None:
    assert p.decode_init(b"1700000000000 4 1") == p.InitReply(1700000000000, 4, True)
    assert p.decode_init("5 0 0") == p.InitReply(5, 0, False)
    assert p.decode_reclaim("10 2 3 -1 -1 0") == p.ReclaimReply(10, 2, 3, None, -1, ())
    assert p.decode_reclaim("10 0 1 4 99 1 x 7 20 30 15") == p.ReclaimReply(
        10, 0, 1, 4, 99, (p.OwnGrant("x", 7, 20, 30, 15),)
    )
    assert p.decode_revoke("10 1 0") == p.RevokeReply(10, p.RevokeStatus.WAS_LIVE, ())
    assert p.decode_revoke("10 2 0").status is p.RevokeStatus.NOT_LIVE
    assert p.decode_set_capacity("10 -1 0 0") == p.SetCapacityReply(10, None, 0, ())
    assert p.decode_set_capacity("10 3 2 0").old == 3


def test_status_reply() -> None:
    reply: list[Any] = [
        1000, b"4", 2, 1, 3, [b"a", b"1500", b"b", b"2000"],
        [b"w1", b"w|1|0|o|12|h|me|you", b"g1", b"g|9|1|2|3|4|h|x"], [b"o"], 5,
    ]  # fmt: skip
    decoded = p.decode_status(reply)
    assert decoded == p.StatusReply(
        1000, "4", 2, 1, 3, (("a", 1500), ("b", 2000)),
        {"w1": "w|1|0|o|12|h|me|you", "g1": "g|9|1|2|3|4|h|x"}, frozenset({"o"}), 5,
    )  # fmt: skip
    reply[1] = None
    assert p.decode_status(reply).capacity is None


def test_tickets() -> None:
    assert p.decode_ticket("w|1000|50|org|12|host|a|b") == p.WaitingTicket(
        1000, 50, "org", 12, "host", "a|b"
    )
    assert p.decode_ticket("w|1000|50|||host|") == p.WaitingTicket(1000, 50, "", 0, "host", "")
    assert p.decode_ticket("g|7|1|2|3|12|host|own|er") == p.GrantedTicket(
        7, 1, 2, 3, 12, "host", "own|er"
    )
    for bad in ("", "w|x|1|o|1|h|", "g|1|2|3|4", "z|1", "w|1|2"):
        assert p.decode_ticket(bad) is None, bad


def test_grant_events_pick_this_origin_only() -> None:
    entries = ["me a 1 2 3 4", "other b 5 6 7 8", "me c x 2 3 4", "me d 9 10 11 12"]
    fields = " ".join(entries).split(" ")
    assert p.decode_grant_event(fields, "me") == [
        p.OwnGrant("a", 1, 2, 3, 4),
        p.OwnGrant("d", 9, 10, 11, 12),
    ]
    assert p.decode_grant_event(["me", "a", "1"], "me") == []


# -- decoding: bad replies ----------------------------------------------------------


BAD_ACQUIRE = [
    None, 7, [b"1", b"2"], b"", "1 2 3 4 0", "1 2 3 4 0 1 5 6 7",  # short
    "1 2 3 4 0 1 5 6 7 0 extra",  # a field left over
    "1 2 3 4 0 9 5 6 7 0",  # a status outside AcquireStatus
    "1 2 3 4 0 0 5 6 7 0",  # 0 is no status
    "1 2 3 4 0 1 5 6 x 0",  # not a number
    "1  2 3 4 0 1 5 6 7 0",  # two spaces: an empty field
    "1 2 3 4 0 1 5 6 7 2 a 1 2 3 4",  # two own grants announced, one sent
    "1 2 3 4 0 1 5 6 7 -1",  # a negative count
    "1 2 3 4 0 1 5 6 7 1 a 1 2 3",  # an own grant cut short
]  # fmt: skip


@pytest.mark.parametrize("reply", BAD_ACQUIRE)
def test_a_bad_acquire_reply_raises_the_one_error_type(reply: object) -> None:
    with pytest.raises(p.ReplyError, match="acquire: Redis sent an unreadable reply"):
        p.decode_acquire(reply, 1)


@pytest.mark.parametrize(
    ("decode", "reply"),
    [
        (lambda r: p.decode_release(r, 2), "1 1"),
        (lambda r: p.decode_release(r, 1), "1 5 0"),
        (lambda r: p.decode_release(r, 1), "1 0 0"),
        (lambda r: p.decode_heartbeat(r, 1), "1 1 -1 -1 -1 0 0 0 0 0"),
        (lambda r: p.decode_renew(r, 1), "1 1 2 3"),
        (lambda r: p.decode_renew(r, 1), "1 3 2 3 4"),
        (lambda r: p.decode_renew(r, 0), "1 1"),
        (p.decode_init, "1 2"),
        (p.decode_init, "1 2 3 4"),
        (p.decode_init, [1, 2, 1]),
        (p.decode_reclaim, "1 2 3 4"),
        (p.decode_revoke, "1 0 0"),
        (p.decode_set_capacity, "1 2 3 1"),
        (p.decode_status, [1, 2, 3]),
        (p.decode_status, "1 2 3 4 5 6 7 8 9"),
        (p.decode_status, [1, None, 0, 0, 0, [b"a"], [], [], 1]),
        (p.decode_status, [b"x", None, 0, 0, 0, [], [], [], 1]),
        (p.decode_status, [1, None, 0, 0, 0, [], [], None, 1]),
    ],
)
def test_every_decoder_raises_the_one_error_type(decode: Any, reply: object) -> None:
    with pytest.raises(p.ReplyError, match="unreadable reply") as info:
        decode(reply)
    assert isinstance(info.value, CoordinatorStateError)


def test_an_unreadable_reply_is_shown_shortened() -> None:
    with pytest.raises(p.ReplyError) as info:
        p.decode_acquire("x" * 10_000, 1)
    assert len(str(info.value)) < 400


# -- types ---------------------------------------------------------------------------


def _types_in(hint: object) -> list[object]:
    """Every type a hint mentions, NamedTuple fields included."""
    found: list[object] = [hint]
    for arg in typing.get_args(hint):
        found += _types_in(arg)
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        for field_hint in typing.get_type_hints(hint).values():
            found += _types_in(field_hint)
    return found


def test_no_decoder_returns_any() -> None:
    decoders = [getattr(p, name) for name in dir(p) if name.startswith("decode_")]
    assert len(decoders) == 11
    for decoder in decoders:
        returned = typing.get_type_hints(decoder)["return"]
        assert Any not in _types_in(returned), decoder.__name__
        assert object not in _types_in(returned), decoder.__name__
