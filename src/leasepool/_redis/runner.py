"""Script calls of one Redis coordinator: lanes, the client, and errors made ours.

Invariants:

* Every redis-py error of a script call leaves this module as a
  :class:`~leasepool.LeasePoolError` raised ``from`` it, with the target's
  password redacted (:func:`leasepool._redis.errors.translate`); a ``WRONGTYPE``
  reply names the damaged key when it can.
* A call goes on its kind's :class:`~leasepool._redis.lane.Lane` when the client
  allows lanes; a lane whose connection broke before a reply hands the call to
  the client once (every script call is idempotent).
* The caller keeps at most one call per lane in flight (the lanes are not shared).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from leasepool._errors import CoordinatorStateError, LeasePoolError
from leasepool._redis.errors import REDIS_ERRORS, is_wrongtype, translate
from leasepool._redis.keys import PoolKeys
from leasepool._redis.lane import Lane, LaneBrokenError, lanes_supported

T = TypeVar("T")


class LaneKind(enum.IntEnum):
    """One lane per kind of call a coordinator keeps in flight."""

    ACQUIRE = 0
    RELEASE = 1
    HEARTBEAT = 2
    CLAIM = 3
    """Claims of handed-off grants: on their own connection, never behind a heartbeat."""


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ScriptRunner:
    """Runs the coordinator's script calls (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        keys: PoolKeys,
        *,
        target: str,
        hidden: tuple[str | None, ...],
        counters: dict[str, int],
    ) -> None:
        self.client = client
        self.keys = keys
        self.target = target
        self.hidden = hidden
        self._counters = counters
        self._lanes: tuple[Lane, ...] = ()

    async def open_lanes(self, constants: Sequence[str]) -> None:
        """Dedicated connections, one per :class:`LaneKind`, when the client allows."""
        if not lanes_supported(self.client):
            return
        self._lanes = tuple(Lane(self.client, constants) for _ in LaneKind)
        for lane in self._lanes:  # connect now, not on the first (timed) call
            with contextlib.suppress(*REDIS_ERRORS):
                await lane.connect()

    async def close_lanes(self) -> None:
        lanes, self._lanes = self._lanes, ()
        for lane in lanes:
            await lane.close()

    async def call(
        self,
        action: str | Callable[[], str],
        script: Callable[..., Awaitable[T]],
        keys: Sequence[str],
        args: Sequence[Any],
        kind: LaneKind | None = None,
    ) -> T:
        """Run one script (on the ``kind`` lane if there is one); every redis-py error
        becomes a leasepool one. ``action`` names what was done, for error messages (a
        callable: built only then)."""
        self._counters["round_trips"] += 1
        try:
            if kind is not None and self._lanes:
                try:
                    result: T = await self._lanes[kind].call(script, keys, args)
                    return result
                except LaneBrokenError:
                    pass  # once more through the client, with its retry policy
            return await script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            if not isinstance(action, str):
                action = action()
            if is_wrongtype(exc):
                raise await self._wrongtype_error(action, keys) from exc
            raise translate(exc, action=action, target=self.target, secrets=self.hidden) from exc

    async def _wrongtype_error(self, action: str, keys: Sequence[str]) -> LeasePoolError:
        k = self.keys
        expected = {
            k.meta: "hash",
            k.leases: "zset",
            k.queue: "zset",
            k.tickets: "hash",
            k.waiters: "zset",
        }
        try:
            for key in keys:
                if key == k.events:
                    continue
                kind = _text(await self.client.type(key))
                want = expected.get(key, "hash")
                if kind not in (want, "none"):
                    return CoordinatorStateError(
                        f"{action}: Redis key {key!r} holds a {kind}, expected a {want}"
                    )
        except REDIS_ERRORS:
            pass
        return CoordinatorStateError(f"{action}: a key of pool {k.pool!r} has the wrong type")
