"""The local pool: this process's executors, and who may use each one.

Every executor is in exactly one of three places:

* ``idle``: ready to lease;
* ``busy``: leased, or released/expired but still finishing work submitted
  through its lease (draining);
* ``retiring``: shut down, with workers that may still be running.

All three count against ``max_pools``. Counting ``retiring`` is what keeps the
number of live workers within ``max_pools * workers_per_pool`` even while a
broken, expired or terminated executor is still winding down.

A broken executor leaves ``busy`` for ``retiring`` as soon as the break is
seen, even while its lease is still held: it never counts as leased, and its
replacement is made once its workers are gone. ``close()`` retires the idle
executors only; the busy ones are the manager's, which drains their work first
(see :mod:`leasepool._stopping`). No executor is ever shut down without a
retirement, because a retirement snapshots the worker processes before the
shutdown forgets them and then waits until they are reaped.

Every method runs on the event loop thread; worker threads only ever reach the
pool through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import Any

from leasepool._backends import (
    DEFAULT_OPTIONS,
    ExecutorBackend,
    ExecutorOptions,
    build_executor,
)
from leasepool._clock import Clock
from leasepool._errors import LeasePoolNotStartedError
from leasepool._statistics import Counters
from leasepool._terminate import shut_down_and_reap
from leasepool._waiting import HandoffQueue


class PoolMember:
    """One executor and the work currently submitted to it."""

    __slots__ = (
        "_lock",
        "_loop",
        "broken",
        "broken_hook",
        "executor",
        "gone",
        "leases_served",
        "on_drained",
        "pending",
        "revoked",
        "seq",
    )

    def __init__(self, executor: Executor, seq: int, loop: asyncio.AbstractEventLoop) -> None:
        self.executor = executor
        self.seq = seq
        self.pending: set[Future[Any]] = set()
        self.broken: BaseException | None = None
        self.leases_served = 0
        self.gone = False
        # True from a hard expiry (or loss) until its work has drained:
        # that work is over-running its lease.
        self.revoked = False
        self._lock = threading.Lock()
        self._loop = loop
        # Run once when no work is pending any more; set by when_drained(), read
        # (never written) outside this module.
        self.on_drained: Callable[[], None] | None = None
        # Set by the pool: told (on the loop) the first time this executor is seen broken.
        self.broken_hook: Callable[[PoolMember], None] | None = None

    # ``pending`` is only changed with single set operations, which are atomic;
    # ``_lock`` guards the check-then-take of the drained callback.

    def finished(self, future: Future[Any]) -> None:
        """Work done and its outcome already inspected; called on the loop thread."""
        self.pending.discard(future)
        if not self.pending and self.on_drained is not None:
            with self._lock:
                callback, self.on_drained = self.on_drained, None
            if callback is not None:
                callback()

    def finished_in_thread(self, future: Future[Any]) -> None:
        """Work done; called from a worker or executor management thread."""
        self._note_broken(future)
        self.pending.discard(future)
        if not self.pending and self.on_drained is not None:
            with self._lock:
                callback, self.on_drained = self.on_drained, None
            if callback is not None:
                with contextlib.suppress(RuntimeError):  # loop closed: nothing to return to
                    self._loop.call_soon_threadsafe(callback)

    def _note_broken(self, future: Future[Any]) -> None:
        if self.broken is None and not future.cancelled():
            exc = future.exception()
            if isinstance(exc, BrokenExecutor):
                self.mark_broken(exc)

    def mark_broken(self, error: BaseException) -> None:
        """Record that the executor is broken; from any thread. The pool retires it soon."""
        if self.broken is not None:
            return
        self.broken = error
        hook = self.broken_hook
        if hook is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: nothing to retire for
                self._loop.call_soon_threadsafe(hook, self)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once no submitted work is pending (now, if none is)."""
        with self._lock:
            self.on_drained = callback
        if not self.pending:
            with self._lock:
                taken, self.on_drained = self.on_drained, None
            if taken is not None:
                taken()

    def cancel_queued(self) -> int:
        """Cancel work that has not started yet; returns how many were cancelled."""
        queued = list(self.pending)
        return sum(1 for future in queued if future.cancel())

    @property
    def running(self) -> int:
        return len(self.pending)


class LocalPool:
    def __init__(
        self,
        *,
        backend: ExecutorBackend,
        max_pools: int,
        min_pools: int,
        units_per_pool: int,
        size_provider: Callable[[], int] | None,
        workers_per_pool: int,
        name_prefix: str,
        executor_kwargs: Callable[[], dict[str, Any]],
        clock: Clock,
        counters: Counters,
        logger: logging.Logger,
        max_leases_per_executor: int | None = None,
        executor_options: ExecutorOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.backend = backend
        self.max_pools = max_pools
        self.min_pools = min_pools
        self.units_per_pool = units_per_pool
        self.size_provider = size_provider
        self.workers_per_pool = workers_per_pool
        self.max_leases_per_executor = max_leases_per_executor
        self._executor_options = executor_options
        self._name_prefix = name_prefix
        self._executor_kwargs = executor_kwargs
        self._counters = counters
        self._logger = logger
        self.idle: deque[PoolMember] = deque()
        self.busy: set[PoolMember] = set()
        self.retiring: set[PoolMember] = set()
        # Resolved (on the loop) once a retiring member's workers are gone.
        self._gone: dict[PoolMember, asyncio.Future[None]] = {}
        self.waiters: HandoffQueue[PoolMember, None] = HandoffQueue(clock, self.give_back)
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = True

    # -- sizing -----------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.idle) + len(self.busy) + len(self.retiring)

    def desired(self) -> int:
        if self.size_provider is None:
            return self.min_pools
        units = 0
        if self.size_provider is not None:
            try:
                units = max(0, int(self.size_provider()))
            except Exception:
                # A failing provider must not take the pool down: count it as 0.
                self._logger.debug("size_provider raised; counting 0 units", exc_info=True)
        wanted = max(self.min_pools, math.ceil(units / self.units_per_pool))
        return min(self.max_pools, wanted)

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = False
        # A retirement that finished after the previous loop closed could not
        # report back; its flag still says the workers are gone.
        self.retiring = {member for member in self.retiring if not member.gone}
        # Futures of an earlier loop cannot be awaited on this one.
        self._gone = {
            member: future
            for member, future in self._gone.items()
            if member in self.retiring and future.get_loop() is loop
        }
        self.refill()

    def refill(self) -> None:
        """Create executors up to the target, serving waiters first."""
        if self._closed:
            return
        target = self.desired()
        while self.total < self.max_pools and (
            self.waiters.queue or len(self.idle) + len(self.busy) < target
        ):
            member = self._create()
            if not self.waiters.hand_off(member):
                self.busy.discard(member)
                self.idle.append(member)

    def rescale(self) -> None:
        """Shut idle executors above the target; create up to it. Never touches leased ones."""
        if self._closed:
            return
        target = self.desired()
        while self.idle and len(self.idle) + len(self.busy) > target:
            self.retire(self.idle.pop(), "shrink")
        self.refill()

    def _create(self) -> PoolMember:
        assert self._loop is not None
        self._seq += 1
        executor = build_executor(
            self.backend,
            workers=self.workers_per_pool,
            thread_name_prefix=f"{self._name_prefix}-{self._seq}",
            kwargs=self._executor_kwargs(),
            options=self._executor_options,
        )
        member = PoolMember(executor, self._seq, self._loop)
        member.broken_hook = self._broke_in_use
        if hasattr(executor, "on_broken"):  # process backend: hear of dead workers at once
            loop = self._loop

            def on_broken(error: BaseException) -> None:
                with contextlib.suppress(RuntimeError):  # loop closed
                    loop.call_soon_threadsafe(self._broke, member, error)

            executor.on_broken = on_broken
        self.busy.add(member)
        self._counters.executors_created += 1
        self._logger.debug("created executor seq=%s backend=%s", member.seq, self.backend.value)
        return member

    # -- leasing ----------------------------------------------------------

    def take_nowait(self) -> PoolMember | None:
        """An executor now, or None. Never jumps ahead of waiters."""
        if self.waiters.queue or self._closed:
            return None
        if self.idle:
            member = self.idle.popleft()
            self.busy.add(member)
            return member
        if self.total < self.max_pools:
            return self._create()
        return None

    async def take(self, deadline: float | None) -> PoolMember:
        if self._closed:
            raise LeasePoolNotStartedError("LeasedExecutorManager is not started: it is stopping")
        return await self.waiters.wait(
            deadline, "Timed out waiting for an executor: none was freed in time", None
        )

    def give_back(self, member: PoolMember) -> None:
        """A member whose lease ended and whose work has drained."""
        if member not in self.busy:
            return
        if self._closed:
            self.retire(member, "stopped")
            return
        if member.broken is not None:
            self.retire(member, "broken")
            return
        limit = self.max_leases_per_executor
        if limit is not None and member.leases_served >= limit:
            self.retire(member, "recycled")
            return
        if self.waiters.queue and self.waiters.hand_off(member):
            return
        self.busy.discard(member)
        # Retiring executors count against max_pools, not towards the target.
        # (Without a size_provider the target is min_pools: skip the call.)
        target = self.min_pools if self.size_provider is None else self.desired()
        if len(self.idle) + len(self.busy) >= target:
            self.retire(member, "shrink")
        else:
            self.idle.append(member)

    # -- retiring ---------------------------------------------------------

    def retire(
        self,
        member: PoolMember,
        reason: str,
        kill: Callable[[Executor], object] | None = None,
    ) -> None:
        """Shut ``member`` down; it keeps counting until its workers are gone.

        ``reason="stopped"`` (the manager is stopping) is not counted in ``retirements``.
        """
        self.busy.discard(member)
        with contextlib.suppress(ValueError):
            self.idle.remove(member)
        if member in self.retiring or member.gone:
            return
        self.retiring.add(member)
        if self._loop is not None:
            self._gone[member] = self._loop.create_future()
        if reason != "stopped":
            self._counters.retire(reason)
        self._logger.log(
            logging.WARNING if reason in ("broken", "terminated") else logging.DEBUG,
            "retiring executor seq=%s reason=%s%s",
            member.seq,
            reason,
            f" error={member.broken!r}" if member.broken is not None else "",
        )

        def shut_down() -> None:
            try:
                # Returns once the worker processes (if any) have exited.
                shut_down_and_reap(member.executor, kill)
            except Exception:
                self._logger.exception("error shutting down executor seq=%s", member.seq)
            finally:
                member.gone = True
                # The loop of now: the manager may have been restarted on another one.
                loop = self._loop
                if loop is not None:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._retired, member)

        # shutdown(wait=True) joins workers, which may take long: never on the loop.
        threading.Thread(
            target=shut_down, name=f"{self._name_prefix}-retire-{member.seq}", daemon=True
        ).start()

    def _retired(self, member: PoolMember) -> None:
        self.retiring.discard(member)
        future = self._gone.pop(member, None)
        if future is not None and not future.done():
            with contextlib.suppress(RuntimeError):  # a future of an earlier, closed loop
                future.set_result(None)
        self.refill()

    async def wait_gone(self, members: list[PoolMember], within: float) -> bool:
        """Wait (real time, at most ``within`` s) until ``members``' workers are gone.

        True when every one of them is gone, or was never retired on this loop.
        """
        loop = asyncio.get_running_loop()
        futures = [
            future
            for member in members
            if (future := self._gone.get(member)) is not None and future.get_loop() is loop
        ]
        if not futures:
            return all(member.gone or member not in self.retiring for member in members)
        _, pending = await asyncio.wait(futures, timeout=within)
        return not pending

    def put_back_unused(self, member: PoolMember) -> None:
        """An executor taken for an acquire that then failed (e.g. no global slot).

        It did no work, so it goes back as it is rather than through the
        shrink check, which would shut down and re-create executors on every
        refused acquire. The periodic rescale trims idle executors later.
        """
        if member not in self.busy:
            return
        if self._closed or member.broken is not None:
            self.give_back(member)
            return
        if self.waiters.queue and self.waiters.hand_off(member):
            return
        self.busy.discard(member)
        self.idle.appendleft(member)

    def _broke(self, member: PoolMember, error: BaseException) -> None:
        """A worker process died: the executor is retired now, unless it never served a lease.

        Only an executor that has served a lease is replaced while idle: one that broke
        before its first lease (a failing ``initializer``, say) would break again at once,
        so it waits for the next holder, who gets the error, as without pre-warm.
        """
        if member.broken is None:
            member.broken = error
        self._counters.worker_deaths += 1
        self._logger.warning("executor seq=%s is broken: %s", member.seq, error)
        if member in self.idle and member.leases_served and not self._closed:
            self.retire(member, "broken")
        else:
            self._broke_in_use(member)

    def _broke_in_use(self, member: PoolMember) -> None:
        """A leased (or draining) executor broke: retire it now, as 0.1.3 did.

        Its lease, if still held, keeps its global slot; its work gets the executor's
        error, and the executor no longer counts as leased. Once its workers are gone
        the pool makes a replacement.
        """
        if member in self.busy and not self._closed:
            self.retire(member, "broken")

    # -- shutdown ---------------------------------------------------------

    def close(self) -> None:
        """Stop leasing: fail waiters and retire the idle executors.

        Busy executors stay: the manager drains their work, then retires them
        (killing process workers that still run at its bound). Never
        ``shutdown(wait=False)`` here: it would drop the executor's process
        table, so the workers could neither be killed nor waited for.
        """
        self._closed = True
        self.waiters.fail_all(
            lambda: LeasePoolNotStartedError("LeasedExecutorManager is not started: it is stopping")
        )
        while self.idle:
            self.retire(self.idle.popleft(), "stopped")
