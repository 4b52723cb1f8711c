"""WorkGrinder: many small async submissions, batched onto one lease per batch.

The manager is duck-typed, as in 0.1.3: anything whose ``await acquire(lease_seconds=,
owner=, wait=True)`` returns an object with ``executor`` (with ``submit``) and
``await release()`` will do, which is how code written for 0.1.3 tests its grinders.
Each batch's lease is released exactly once, whatever happens to the batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leasepool._clock import MONOTONIC_CLOCK, Clock, TimerHandle
from leasepool._manager import LeasedExecutorManager
from leasepool._validation import compat_positive_duration, positive_int


@dataclass(slots=True, eq=False)
class _Item:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    owner: str | None
    result: asyncio.Future[Any]
    queued_at: float
    submitted: bool = field(default=False)


class WorkGrinder:
    """Batches queued calls: a batch goes out when ``batch_size_threshold`` items
    are queued, or when the oldest has waited ``max_wait_seconds``. Each batch
    runs on one lease.

    Use ``submit``/``enqueue``/``stats``/``astats`` from the grinder's event loop,
    and ``submit_from_thread``/``stats_from_thread`` from other OS threads.
    """

    def __init__(
        self,
        *,
        executor_manager: LeasedExecutorManager,
        max_wait_seconds: float = 10.0,
        batch_size_threshold: int = 20,
        lease_seconds: float = 60.0,
        owner_prefix: str = "work-grinder",
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(getattr(executor_manager, "acquire", None)):
            raise TypeError(
                "executor_manager must be a LeasedExecutorManager or an object with its "
                f"acquire() method, got {executor_manager!r}"
            )
        self._manager = executor_manager
        self._max_wait = compat_positive_duration("max_wait_seconds", max_wait_seconds)
        self._threshold = positive_int("batch_size_threshold", batch_size_threshold)
        self._lease_seconds = compat_positive_duration("lease_seconds", lease_seconds)
        if not isinstance(owner_prefix, str):
            raise TypeError(f"owner_prefix must be a str, got {owner_prefix!r}")
        self._owner_prefix = owner_prefix
        self._logger = logger or logging.getLogger("leasepool.grinder")
        # Our manager's clock (a ManualClock in tests); the real clock for any other manager.
        self._clock: Clock = (
            executor_manager.clock
            if isinstance(executor_manager, LeasedExecutorManager)
            else MONOTONIC_CLOCK
        )
        self._pending: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._timer: TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._batches = 0
        self._completed = 0

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start on the running event loop (again on the same loop is a no-op)."""
        loop = asyncio.get_running_loop()
        if self._started:
            if loop is not self._loop:
                raise RuntimeError("WorkGrinder is already started on a different event loop")
            return
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task = loop.create_task(self._run(), name="leasepool-work-grinder")
        self._started = True

    async def stop(self, *, cancel_pending: bool = False) -> None:
        """Stop. ``cancel_pending=False`` drains queued work first; ``True`` cancels it."""
        if not self._started:
            return
        self._require_loop()
        self._stopping = True
        if cancel_pending:
            while self._pending:
                self._pending.popleft().result.cancel()
        assert self._wakeup is not None
        self._wakeup.set()
        task = self._task
        if task is not None:
            if cancel_pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = None
        self._started = False
        self._stopping = False
        self._loop = None

    # -- submitting -------------------------------------------------------------

    async def submit(
        self, fn: Callable[..., Any], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> Any:
        """Queue ``fn(*args, **kwargs)`` and wait for its result."""
        return await (await self.enqueue(fn, *args, owner=owner, **kwargs))

    async def enqueue(
        self, fn: Callable[..., Any], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> asyncio.Future[Any]:
        """Queue ``fn(*args, **kwargs)``; returns a future of its result at once."""
        loop = self._require_loop()
        if self._stopping:
            raise RuntimeError("WorkGrinder is stopping")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        result: asyncio.Future[Any] = loop.create_future()
        item = _Item(fn, args, kwargs, owner, result, self._clock.monotonic())
        result.add_done_callback(lambda _: self._forget_if_cancelled(item))
        self._pending.append(item)
        if len(self._pending) >= self._threshold or len(self._pending) == 1:
            assert self._wakeup is not None
            self._wakeup.set()
        return result

    def submit_from_thread(
        self, fn: Callable[..., Any], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """From another OS thread: queue the call; returns a concurrent future."""
        loop = self._loop_for_other_thread("submit_from_thread")
        return asyncio.run_coroutine_threadsafe(self.submit(fn, *args, owner=owner, **kwargs), loop)

    def _forget_if_cancelled(self, item: _Item) -> None:
        # A cancelled caller leaves the queue at once, not when its batch would run.
        if item.result.cancelled() and not item.submitted:
            with contextlib.suppress(ValueError):
                self._pending.remove(item)

    # -- stats ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot of the grinder's queue and counters (call it on its loop)."""
        if self._started:
            self._require_loop()
        oldest = (
            max(0.0, self._clock.monotonic() - self._pending[0].queued_at) if self._pending else 0.0
        )
        return {
            "started": self._started,
            "stopping": self._stopping,
            "pending": len(self._pending),
            "batch_size_threshold": self._threshold,
            "max_wait_seconds": self._max_wait,
            "lease_seconds": self._lease_seconds,
            "oldest_wait_seconds": oldest,
            "batches": self._batches,
            "completed": self._completed,
        }

    async def astats(self) -> dict[str, Any]:
        """:meth:`stats`, awaitable."""
        return self.stats()

    def stats_from_thread(self, timeout: float | None = None) -> dict[str, Any]:
        """:meth:`stats` from another thread: run on the grinder's loop, up to ``timeout`` s."""
        loop = self._loop_for_other_thread("stats_from_thread")
        return asyncio.run_coroutine_threadsafe(self.astats(), loop).result(timeout)

    # -- loop checks ------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if not self._started or self._loop is None:
            raise RuntimeError("WorkGrinder is not started")
        if loop is not self._loop:
            raise RuntimeError(
                "WorkGrinder async methods must be called from its owning event loop; "
                "use submit_from_thread() or stats_from_thread() from other threads"
            )
        return loop

    def _loop_for_other_thread(self, method: str) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if not self._started or loop is None:
            raise RuntimeError("WorkGrinder is not started")
        if self._loop_thread == threading.get_ident():
            raise RuntimeError(
                f"WorkGrinder.{method}() cannot be called from the owning event-loop thread; "
                "use the async API instead (it would deadlock there)"
            )
        return loop

    # -- batching -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run_batch(batch)
            elif self._stopping:
                return

    async def _next_batch(self) -> list[_Item]:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if self._pending:
                waited = self._clock.monotonic() - self._pending[0].queued_at
                if (
                    len(self._pending) >= self._threshold
                    or waited >= self._max_wait
                    or self._stopping
                ):
                    batch = list(self._pending)
                    self._pending.clear()
                    return batch
                self._arm_timer(self._pending[0].queued_at + self._max_wait)
            elif self._stopping:
                return []
            wakeup.clear()
            await wakeup.wait()

    def _arm_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        wakeup = self._wakeup
        assert wakeup is not None
        self._timer = self._clock.call_at(when, wakeup.set)

    async def _run_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if not item.result.done()]
        if not live:
            return
        self._batches += 1
        owner = f"{self._owner_prefix}-batch-{self._batches}"
        futures: list[asyncio.Future[Any]] = []
        sent: list[_Item] = []
        try:
            lease = await self._manager.acquire(
                lease_seconds=self._lease_seconds, owner=owner, wait=True
            )
            try:
                self._submit_all(lease, live, sent, futures)
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
            finally:
                # Not ``async with``: a duck-typed manager's lease need only have release().
                await lease.release()
            self._settle(sent, outcomes)
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            for item in live:
                item.result.cancel()
            raise
        except Exception as exc:
            self._logger.exception("batch %s failed", owner)
            for item in live:
                if not item.result.done():
                    item.result.set_exception(exc)

    @staticmethod
    def _submit_all(
        lease: Any, live: list[_Item], sent: list[_Item], futures: list[asyncio.Future[Any]]
    ) -> None:
        for item in live:
            try:
                submitted = lease.executor.submit(item.fn, *item.args, **item.kwargs)
            except Exception as exc:
                # This call never reached the executor: it alone gets the error.
                # A bad payload fails one item; a dead lease or executor makes
                # each later submit fail on its own.
                if not item.result.done():
                    item.result.set_exception(exc)
                continue
            item.submitted = True
            sent.append(item)
            futures.append(asyncio.wrap_future(submitted))

    def _settle(self, sent: list[_Item], outcomes: list[Any]) -> None:
        for item, outcome in zip(sent, outcomes, strict=True):
            if item.result.done():
                continue
            if isinstance(outcome, BaseException):
                item.result.set_exception(outcome)
            else:
                item.result.set_result(outcome)
            self._completed += 1
