"""The Redis coordinator's I/O engine: it feeds the waiting state machine and obeys it.

The :class:`Engine` makes the script calls of the waiting side (acquire and
release batches, heartbeats, claims) through a
:class:`~leasepool._redis.runner.ScriptRunner`, decodes their replies
(:mod:`leasepool._redis.protocol`), hands replies, pub/sub events and timers to
the :class:`~leasepool._redis.waiting.WaitingMachine`, and carries out the
actions it answers with, in order: settle or fail a caller's future, release in
the background, (re)send an acquire, arm a timer, run the sync or claim loop,
tell ``on_lost`` callbacks.

Invariants:

* At most one call of each kind (acquire, release, heartbeat, claim) is in
  flight: :class:`~leasepool._redis.calls.CallQueue` for acquires and releases,
  one task each for the sync loop and the claim loop.
* A claim is sent the moment a ``grant`` message asks for it, on its own lane:
  never behind a heartbeat, a timer or an acquire batch.
* No loop dies of a reply: an unreadable reply (``ReplyError``) or an error of
  Redis fails the calls it was for, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from leasepool._clock import MONOTONIC_CLOCK, Clock, TimerHandle
from leasepool._coordinator import LostCallback, ReleaseOutcome
from leasepool._errors import CoordinatorUnavailableError, LeasePoolError
from leasepool._redis.calls import AcquireItem, CallQueue, ReleaseItem
from leasepool._redis.keys import PoolKeys
from leasepool._redis.options import RedisOptions
from leasepool._redis.protocol import (
    ReleaseStatus,
    decode_acquire,
    decode_grant_event,
    decode_heartbeat,
    decode_release,
    encode_acquire,
    encode_constants,
    encode_heartbeat,
    encode_release,
)
from leasepool._redis.runner import LaneKind, ScriptRunner
from leasepool._redis.scripts import Scripts
from leasepool._redis.waiting import WaitingMachine
from leasepool._redis.waiting_events import (
    Action,
    ArmDeadline,
    ArmTimer,
    Discard,
    Enqueue,
    Fail,
    Lost,
    Release,
    Settle,
    StartClaims,
    StartSync,
)

log = logging.getLogger("leasepool.redis")

BEAT_TIMEOUT = 2.0
"""A heartbeat with no reply within this (or nowait_timeout, if longer) fails the waiters."""
_BATCH_LIMIT = 500
"""Requests per acquire or release call, at most."""
_TOMBSTONE_MS = 60_000
OUTCOMES = {
    ReleaseStatus.RELEASED: ReleaseOutcome.RELEASED,
    ReleaseStatus.EXPIRED: ReleaseOutcome.EXPIRED,
    ReleaseStatus.DEQUEUED: ReleaseOutcome.UNKNOWN,
    ReleaseStatus.UNKNOWN: ReleaseOutcome.UNKNOWN,
}

_PID = [os.getpid()]
"""This process's id, kept up to date across fork (os.getpid() is a system call)."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def consume_result(task: asyncio.Future[Any]) -> None:
    """Mark a background task's exception as seen (the awaiting caller may be gone)."""
    if not task.cancelled():
        task.exception()


class Engine:
    """See the module docstring. ``started`` gates the loops (between start and close)."""

    def __init__(
        self,
        *,
        keys: PoolKeys,
        scripts: Scripts,
        options: RedisOptions,
        runner: ScriptRunner,
        machine: WaitingMachine,
        origin: str,
        host: str,
    ) -> None:
        self.keys = keys
        self.scripts = scripts
        self.options = options
        self.runner = runner
        self.machine = machine
        self.origin = origin
        self.host = host
        self.clock: Clock = MONOTONIC_CLOCK
        self.started = False
        self.lost_callbacks: list[LostCallback] = []
        self.fixed = list(keys.fixed)
        self.lease_prefix = keys.lease("")
        self.acquires: CallQueue[AcquireItem] = CallQueue(
            self._send_acquires, self.spawn, _BATCH_LIMIT
        )
        self.releases: CallQueue[ReleaseItem] = CallQueue(
            self._send_releases, self.spawn, _BATCH_LIMIT
        )
        self.background: set[asyncio.Task[Any]] = set()
        self._config: tuple[int, str] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._claim_task: asyncio.Task[None] | None = None
        self._timer: TimerHandle | None = None
        self._acquire_action = f"acquire a slot in pool {keys.pool!r}"
        self._heartbeat_action = f"heartbeat in pool {keys.pool!r}"
        self._do: dict[type, Callable[[Any], None]] = {
            Settle: self._do_settle,
            Fail: self._do_fail,
            Release: self._do_release,
            Discard: self._do_discard,
            Enqueue: self._do_enqueue,
            ArmDeadline: self._do_deadline,
            ArmTimer: self._do_timer,
            StartSync: self._do_sync,
            StartClaims: self._do_claims,
            Lost: self._do_lost,
        }

    # -- plumbing --------------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(consume_result)
        return task

    def cfg(self) -> str:
        """The scripts' ARGV[1]: this process's constants, encoded once (see lua/_shared.lua)."""
        pid = _PID[0]
        if self._config is None or self._config[0] != pid:
            o = self.options
            text = encode_constants(
                capacity=o.capacity,
                batch=o.reclaim_batch,
                margin_ms=o.margin_ms,
                claim_ms=o.claim_ms,
                ticket_ms=o.ticket_ms,
                fair=o.fair,
                origin=self.origin,
                pid=pid,
                host=self.host,
            )
            self._config = (pid, text)
        return self._config[1]

    def keys_for(self, ids: Sequence[str]) -> list[str]:
        return self.fixed + [self.lease_prefix + lease_id for lease_id in ids]

    async def stop_loops(self) -> None:
        """Cancel the sync and claim loops (at close)."""
        for task in (self._sync_task, self._claim_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- carrying out the machine's actions -------------------------------------------

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            self._do[type(action)](action)

    def _do_settle(self, action: Settle) -> None:
        item = action.waiter
        assert isinstance(item, AcquireItem)
        item.stop_timer()
        if item.future.done():
            self.run(self.machine.orphan(item.lease_id))
        else:
            item.future.set_result(action.grant)

    def _do_fail(self, action: Fail) -> None:
        item = action.waiter
        assert isinstance(item, AcquireItem)
        if not item.future.done():
            item.future.set_exception(action.error)

    def _do_release(self, action: Release) -> None:
        self.spawn(self.release_quietly(action.lease_id, tomb=action.tomb))

    def _do_discard(self, action: Discard) -> None:
        assert isinstance(action.waiter, AcquireItem)
        self.acquires.discard(action.waiter)

    def _do_enqueue(self, action: Enqueue) -> None:
        assert isinstance(action.waiter, AcquireItem)
        action.waiter.stop_timer()
        self.spawn(self.acquires.submit(action.waiter))

    def _do_deadline(self, action: ArmDeadline) -> None:
        item = action.waiter
        assert isinstance(item, AcquireItem)
        item.stop_timer()
        item.timer = self.clock.call_at(action.at, functools.partial(self._deadline, item))

    def _deadline(self, item: AcquireItem) -> None:
        item.timer = None
        self.run(self.machine.deadline_passed(item))

    def _do_timer(self, action: ArmTimer) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if action.at is not None:
            self._timer = self.clock.call_at(action.at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.run(self.machine.timer_fired(self.clock.monotonic()))

    def _do_sync(self, _: StartSync) -> None:
        if self._sync_task is None and self.started:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())
            self._sync_task.add_done_callback(consume_result)

    def _do_claims(self, _: StartClaims) -> None:
        if self._claim_task is None and self.started:
            self._claim_task = asyncio.get_running_loop().create_task(self._claim_loop())
            self._claim_task.add_done_callback(consume_result)

    def _do_lost(self, action: Lost) -> None:
        for callback in list(self.lost_callbacks):
            try:
                callback(action.lease_id)
            except Exception:
                log.exception("on_lost callback failed for lease %s", action.lease_id)

    # -- acquire calls ---------------------------------------------------------------

    async def _send_acquires(self, items: list[AcquireItem]) -> None:
        """One acquire call for the requests of ``items`` still to send (CallQueue's send)."""
        sent = self.machine.sending(items)
        if not sent:
            return
        keys = self.fixed + [item.key for item in sent]
        args = encode_acquire(self.cfg(), [item.arg for item in sent])
        t_sent = self.clock.monotonic()
        try:
            raw = await self.runner.call(
                self._acquire_action, self.scripts.acquire, keys, args, LaneKind.ACQUIRE
            )
            reply = decode_acquire(raw, len(sent))
        except BaseException as exc:
            # The script may have run (or may still run): free the ids, and leave
            # tombstones so that a late-arriving acquire of them grants nothing.
            error = exc if isinstance(exc, LeasePoolError) else None
            self.run(self.machine.acquire_failed(sent, error))
            if error is None:
                raise
            return
        self.run(self.machine.acquire_replied(sent, t_sent, self.clock.monotonic(), reply))

    # -- events, heartbeats and claims ---------------------------------------------

    def on_event(self, message: str | None) -> None:
        """A message of the pool's events channel; None: (re)subscribed."""
        machine = self.machine
        if message is None:  # messages may have been missed
            self.run(machine.subscribed())
            return
        kind, _, rest = message.partition(" ")
        if kind == "grant":
            if self.origin in rest:
                self.run(machine.grant_event(decode_grant_event(rest.split(" "), self.origin)))
        elif kind == "revoke":
            machine.counters["events"] += 1
            self.run(machine.lost(rest))
        elif kind == "free":
            self.run(machine.free_event())

    async def _sync_loop(self) -> None:
        try:
            while (plan := self.machine.take_sync(self.clock.monotonic())) is not None:
                for chunk in plan.chunks:
                    if not await self._heartbeat(chunk, plan.flags, LaneKind.HEARTBEAT):
                        break
        finally:
            self._sync_task = None
            self.run(self.machine.sync_done(self.clock.monotonic()))

    async def _claim_loop(self) -> None:
        try:
            while (plan := self.machine.take_claims()) is not None:
                await self._heartbeat(plan[0], plan[1], LaneKind.CLAIM)
        finally:
            self._claim_task = None
            self.run(self.machine.claims_done())

    async def _heartbeat(self, ids: Sequence[str], flags: str, kind: LaneKind) -> bool:
        """One heartbeat.lua call (a beat, a full check, or claims); False if it failed."""
        args = encode_heartbeat(self.cfg(), flags, ids)
        t_sent = self.clock.monotonic()
        within = max(BEAT_TIMEOUT, self.options.nowait)
        try:
            # Bounded: waiters learn that Redis hangs within this, not a socket timeout.
            async with asyncio.timeout(within):
                raw = await self.runner.call(
                    self._heartbeat_action, self.scripts.heartbeat, self.keys_for(ids), args, kind
                )
            reply = decode_heartbeat(raw, len(ids))
        except (LeasePoolError, TimeoutError) as exc:
            error = exc if isinstance(exc, LeasePoolError) else self._no_reply(within)
            log.debug("heartbeat of pool %r failed: %s", self.keys.pool, error)
            self.run(self.machine.heartbeat_failed(ids, flags, error))
            return False
        now = self.clock.monotonic()
        self.run(self.machine.heartbeat_replied(ids, flags, t_sent, now, reply))
        return True

    def _no_reply(self, within: float) -> LeasePoolError:
        return CoordinatorUnavailableError(
            f"{self._heartbeat_action}: no reply from Redis at {self.runner.target}"
            f" within {within} s"
        )

    # -- release calls -----------------------------------------------------------------

    async def _send_releases(self, items: list[ReleaseItem]) -> None:
        mine = self.machine.mine(len(items)) if self.machine.waiting else []
        keys = self.fixed + [item.key for item in items]
        keys += [self.lease_prefix + lease_id for lease_id in mine]
        args = encode_release(self.cfg(), [(item.lease_id, item.tomb) for item in items], mine)
        t_sent = self.clock.monotonic()
        pool = self.keys.pool
        try:
            raw = await self.runner.call(
                lambda: (
                    f"release {items[0].lease_id!r} in pool {pool!r}"
                    if len(items) == 1
                    else f"release {len(items)} leases in pool {pool!r}"
                ),
                self.scripts.release,
                keys,
                args,
                LaneKind.RELEASE,
            )
            reply = decode_release(raw, len(items))
        except LeasePoolError as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, status in zip(items, reply.statuses, strict=True):
            if not item.future.done():
                item.future.set_result(OUTCOMES[status])
        self.run(self.machine.replied(t_sent, reply.now_ms, reply.own))

    async def release_quietly(self, lease_id: str, *, tomb: bool = False) -> None:
        """Release in the background (errors are logged: the slot then expires by itself)."""
        future: asyncio.Future[ReleaseOutcome] = asyncio.get_running_loop().create_future()
        item = ReleaseItem(
            lease_id, self.lease_prefix + lease_id, _TOMBSTONE_MS if tomb else 0, future
        )
        try:
            await self.releases.submit(item)
            await future
        except LeasePoolError as exc:
            log.debug("background release of %s failed (it will expire): %s", lease_id, exc)
