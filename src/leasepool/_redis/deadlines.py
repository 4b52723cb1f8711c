"""Deadline arithmetic of the Redis coordinator: server instants to local times.

Invariant: every local deadline computed here is *no later* than the local moment at
which the Redis server's clock reaches the server instant it stands for, to the
microsecond, whatever the delays of the request and the reply, given that the two
clocks' rates differ by at most ``drift``.

Two facts make that hold:

* An *anchor* ``(t_anchor, s_anchor)`` pairs the local time ``t_anchor`` at which a
  request was *sent* with the server time ``s_anchor`` its script reported. The script
  ran after the send, so its real instant happened at local time ``>= t_anchor``.
* Scripts report server time rounded *down* to the millisecond (``clock()`` in
  ``lua/_shared.lua``): the real instant ``R`` satisfies ``s_anchor <= R < s_anchor +
  1``. Measuring from ``s_anchor + 1`` (a server instant at or after ``R``, so at or
  after ``t_anchor`` locally) keeps the result safe by up to a whole millisecond.
  Measuring from ``s_anchor`` itself would put the deadline up to 0.999 ms late.
"""

from __future__ import annotations

ROUNDING_MS = 1
"""Scripts report ``floor(server µs / 1000)``: the real instant is less than this later."""


def local_deadline(t_anchor: float, s_anchor: int, server_ms: int, drift: float) -> float:
    """The local time by which this host must stop believing in server instant ``server_ms``.

    ``(t_anchor, s_anchor)`` is an anchor (see the module docstring): ``t_anchor``
    the local monotonic time at which a request was sent, ``s_anchor`` the server
    time (ms, rounded down) its script reported. Let ``A = s_anchor + 1``: a server
    instant no earlier than the script's real instant, so ``T(A) >= t_anchor``.

    Clock rates differ by at most ``drift``: ``d`` server milliseconds last at least
    ``d * (1 - drift)`` and at most ``d * (1 + drift)`` local ones. So for ``S >= A``,
    ``T(S) >= T(A) + (S - A) * (1 - drift) >= t_anchor + (S - A) * (1 - drift)``; for
    ``S < A``, ``T(S) >= T(A) - (A - S) * (1 + drift) >= t_anchor - (A - S) * (1 +
    drift)``. That lower bound, in seconds, is the result: a host that revokes a lease
    locally at ``local_deadline(..., hard_ms, ...)`` has stopped before Redis stops
    counting it.

    Any anchor of this process works, not only the request that created a grant:
    ``server_ms`` is an absolute server time. This is how a grant handed to our
    waiter by another process's release is timed (from our latest anchor).
    """
    delta = server_ms - (s_anchor + ROUNDING_MS)
    return t_anchor + delta / 1000 * ((1 - drift) if delta >= 0 else (1 + drift))


def grant_deadlines(
    t_anchor: float, s_anchor: int, soft_ms: int, hard_ms: int, drift: float
) -> tuple[float, float]:
    """Local ``(soft, hard)`` deadlines of a grant whose server expiries are given.

    Both are measured the safe way (:func:`local_deadline`); the soft one is never
    after the hard one.
    """
    hard = local_deadline(t_anchor, s_anchor, hard_ms, drift)
    soft = local_deadline(t_anchor, s_anchor, soft_ms, drift)
    return min(soft, hard), hard


def passed_by(t_received: float, s_reported: int, server_ms: int, drift: float) -> float:
    """A local time by which the server has certainly passed ``server_ms``.

    The opposite bound: ``t_received`` is when the reply was read, after the script
    ran; the script's real instant was at server time ``>= s_reported``. So the
    server reaches ``server_ms`` within ``(server_ms - s_reported) * (1 + drift)``
    local seconds of ``t_received`` (or has already).
    """
    return t_received + max(0, server_ms - s_reported) / 1000 * (1 + drift)
