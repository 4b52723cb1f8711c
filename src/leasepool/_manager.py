"""LeasedExecutorManager: the public face that ties pool, coordinator and leases together.

The manager owns no policy of its own: the local pool decides which executor,
the coordinator decides whether a global slot is free, the lease book
(:class:`leasepool._lease.LeaseBook`) owns every lease's state and deadlines
and decides when a lease ends, and :class:`leasepool._ending.Endings` frees
what an ended lease held. The manager wires them together, enforces the
one-loop rule, and runs start and stop.

Invariants:

* Arguments are validated once, into a frozen :class:`leasepool._config.ManagerConfig`.
* The manager never asks which coordinator it has: it calls ``acquire_nowait``
  and ``release_nowait`` on any coordinator and awaits ``acquire``/``release``
  only when they raise ``WouldBlock``.
* A lease's global slot is released only once no work of that lease can run
  (see :mod:`leasepool._ending`, and :mod:`leasepool._stopping` for ``stop()``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from leasepool._backends import ExecutorBackend, executor_class
from leasepool._clock import Clock, TimerHandle
from leasepool._config import build_config
from leasepool._coordinator import Coordinator, Grant, GrantRequest, ReleaseOutcome
from leasepool._ending import Endings
from leasepool._errors import (
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    WouldBlock,
)
from leasepool._lease import ExecutorLease, LeaseBook, LeaseState, SoftExpiryCallback
from leasepool._options import DEFAULT_STOP_TIMEOUT, HardExpiryAction
from leasepool._pool import LocalPool, PoolMember
from leasepool._process_logging import ProcessLogBridge, ProcessLoggingConfig
from leasepool._renewal import Renewals
from leasepool._serialization import Serializer
from leasepool._statistics import Counters, ManagerStats
from leasepool._stopping import Drainer, stop_targets
from leasepool._validation import (
    boolean,
    compat_positive_duration,
    optional_str,
    optional_timeout,
)

# NamedTuple(...) runs a Python-level __new__; building the tuple directly gives the
# same object for a fraction of the cost, on the path every acquire takes.
_new_tuple = tuple.__new__


class LeasedExecutorManager:
    """Leases whole executors for a bounded time, with FIFO backpressure.

    Compatible with leasepool 0.1.3: the same keyword arguments, methods and
    behaviour. Everything added since is keyword-only and off by default.
    """

    def __init__(
        self,
        *,
        backend: ExecutorBackend | str = ExecutorBackend.THREAD,
        max_pools: int,
        min_pools: int = 1,
        units_per_pool: int = 10,
        size_provider: Callable[[], int] | None = None,
        check_interval: float = 120.0,
        default_lease_seconds: float = 300.0,
        lease_grace_seconds: float = 15.0,
        workers_per_pool: int = 4,
        name_prefix: str = "leasepool",
        logger: logging.Logger | None = None,
        process_logging: ProcessLoggingConfig | None = None,
        forward_process_logs: bool = False,
        process_log_level: int | str = logging.INFO,
        process_log_target_logger: logging.Logger | None = None,
        clear_process_log_handlers: bool = True,
        coordinator: Coordinator | None = None,
        clock: Clock | None = None,
        on_soft_expiry: SoftExpiryCallback | None = None,
        hard_expiry_action: HardExpiryAction = "reject",
        auto_renew: bool = False,
        serializer: Serializer = "pickle",
        prewarm: bool = True,
        max_leases_per_executor: int | None = None,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        **executor_kwargs: Any,
    ) -> None:
        config = build_config(
            backend=backend,
            max_pools=max_pools,
            min_pools=min_pools,
            units_per_pool=units_per_pool,
            size_provider=size_provider,
            check_interval=check_interval,
            default_lease_seconds=default_lease_seconds,
            lease_grace_seconds=lease_grace_seconds,
            workers_per_pool=workers_per_pool,
            name_prefix=name_prefix,
            logger=logger,
            process_logging=process_logging,
            forward_process_logs=forward_process_logs,
            process_log_level=process_log_level,
            process_log_target_logger=process_log_target_logger,
            clear_process_log_handlers=clear_process_log_handlers,
            coordinator=coordinator,
            clock=clock,
            on_soft_expiry=on_soft_expiry,
            hard_expiry_action=hard_expiry_action,
            auto_renew=auto_renew,
            serializer=serializer,
            prewarm=prewarm,
            max_leases_per_executor=max_leases_per_executor,
            stop_timeout=stop_timeout,
            executor_kwargs=executor_kwargs,
        )
        self._config = config
        # The hot paths read these: attributes, not config lookups.
        self._backend = config.backend
        self._coordinator = config.coordinator
        self._clock = config.clock
        self._logger = config.logger
        self._default_lease_seconds = config.default_lease_seconds
        self._grace = config.lease_grace_seconds
        self._auto_renew = config.auto_renew
        self._log_bridge = (
            ProcessLogBridge(config.process_logging, config.logger)
            if config.process_logging.enabled
            else None
        )
        self._counters = Counters()
        self._pool = LocalPool(
            backend=config.backend,
            max_pools=config.max_pools,
            min_pools=config.min_pools,
            units_per_pool=config.units_per_pool,
            size_provider=config.size_provider,
            workers_per_pool=config.workers_per_pool,
            name_prefix=config.name_prefix,
            executor_kwargs=self._kwargs_for_new_executor,
            clock=config.clock,
            counters=self._counters,
            logger=config.logger,
            max_leases_per_executor=config.max_leases_per_executor,
            executor_options=config.executor_options,
        )
        self._endings = Endings(
            pool=self._pool,
            clock=config.clock,
            coordinator=config.coordinator,
            counters=self._counters,
            logger=config.logger,
            terminate=config.hard_expiry_action == "terminate",
            spawn=self._spawn,
            running=lambda: self._started,
        )
        self._book = LeaseBook(
            clock=config.clock,
            counters=self._counters,
            logger=config.logger,
            on_released=self._endings.released,
            release_slot=self._endings.release_slot,
            renew_hook=self._renew_lease,
            require_loop=self._require_loop,
            on_soft_expiry=config.on_soft_expiry,
            spawn=self._spawn,
            on_revoked=self._endings.revoked,
        )
        self._renewals = Renewals(
            coordinator=config.coordinator,
            clock=config.clock,
            counters=self._counters,
            book=self._book,
            logger=config.logger,
            spawn=self._spawn,
        )
        # Random per manager plus a counter: unique across a fleet, cheap to make.
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopping = False
        self._stop_done: asyncio.Future[None] | None = None
        self._check_timer: TimerHandle | None = None
        self._acquiring: dict[asyncio.Task[Any], None] = {}
        self._drainer = Drainer(
            pool=self._pool,
            clock=config.clock,
            backend=config.backend,
            counters=self._counters,
            logger=config.logger,
            release=self._endings.release_slot,
        )
        self._background: set[asyncio.Task[Any]] = set()

    # -- properties (0.1.3) ---------------------------------------------------

    @property
    def backend(self) -> ExecutorBackend:
        """The executor backend: thread, process or interpreter."""
        return self._backend

    @property
    def coordinator(self) -> Coordinator:
        """The coordinator that grants global slots (embedded unless one was given)."""
        return self._coordinator

    @property
    def available_count(self) -> int:
        """Idle executors ready to be leased."""
        return len(self._pool.idle)

    @property
    def leased_count(self) -> int:
        """Executors leased now (including ones draining after release)."""
        return len(self._pool.busy)

    @property
    def total_count(self) -> int:
        """Executors that exist: idle, leased and retiring."""
        return self._pool.total

    @property
    def clock(self) -> Clock:
        """The clock that lease deadlines and ``acquire`` timeouts are measured on."""
        return self._clock

    def desired_executor_count(self) -> int:
        """How many executors the manager keeps: at least ``min_pools``, at most ``max_pools``."""
        return self._pool.desired()

    # -- lifecycle -------------------------------------------------------------

    def _require_loop(self, method: str) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError(
                f"LeasedExecutorManager.{method}() must be called from its owning event loop, "
                "the one that started it; it was called from a different loop"
            )
        return loop

    async def start(self) -> None:
        """Create the minimum executors and connect the coordinator."""
        loop = self._require_loop("start")
        if self._stopping:
            raise LeasePoolNotStartedError("the manager is stopping")
        if self._started:
            return
        executor_class(self._backend)  # UnsupportedBackendError before anything starts
        self._loop = loop
        try:
            if self._log_bridge is not None:
                self._log_bridge.start(dict(self._config.executor_kwargs))
            await self._coordinator.start(clock=self._clock, on_lost=self._coordinator_lost)
            try:
                self._pool.open(loop)
            except BaseException:
                await self._coordinator.close()
                raise
        except BaseException:
            self._pool.close()
            if self._log_bridge is not None:
                self._log_bridge.stop()
            self._loop = None
            raise
        self._book.loop = loop
        self._started = True
        self._schedule_check()
        self._logger.info(
            "leasepool manager started backend=%s executors=%s target=%s coordinator=%s",
            self._backend.value,
            self._pool.total,
            self._pool.desired(),
            type(self._coordinator).__name__,
        )

    async def stop(self) -> None:
        """Stop leasing, drain running work, free the global slots, shut executors down.

        New acquires fail from the start. Running work is waited for up to
        ``stop_timeout`` seconds (or the lease's hard expiry, if sooner); each
        lease's global slot is released as soon as its work has finished. At the
        bound, process workers are killed and reaped, then their slots released;
        thread work cannot be stopped, so its slot stays taken until its hard
        expiry (see :mod:`leasepool._stopping`). Does nothing if not started.
        """
        if not self._started:
            return
        loop = self._require_loop("stop")
        if self._stopping:
            # Another stop() is in progress: return once it has finished.
            if self._stop_done is not None:
                await asyncio.shield(self._stop_done)
            return
        self._stopping = True
        self._stop_done = loop.create_future()
        try:
            await self._stop_and_drain()
        finally:
            if self._log_bridge is not None:
                self._log_bridge.stop()
            self._started = False
            self._stopping = False
            self._loop = None
            self._book.loop = None
            done, self._stop_done = self._stop_done, None
            if done is not None and not done.done():
                done.set_result(None)
        self._logger.info("leasepool manager stopped")

    async def _stop_and_drain(self) -> None:
        if self._check_timer is not None:
            self._check_timer.cancel()
            self._check_timer = None
        self._renewals.stop()
        for task in list(self._acquiring):
            task.cancel("leasepool manager stopping")
        pool = self._pool
        retiring = list(pool.retiring)
        idle = list(pool.idle)
        pool.close()
        book = self._book
        held = [(book.member(lease), lease) for lease in book.release_all()]
        targets = stop_targets(
            held,
            list(self._endings.draining.items()),
            list(pool.busy),
            self._clock.monotonic(),
            self._config.stop_timeout,
        )
        self._endings.draining.clear()
        settled = await self._drainer.settle(targets)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._coordinator.close()
        # Executors whose work is done shut down at once: wait for that. For processes,
        # also for earlier retirements: returning while a pool's management thread
        # still runs lets interpreter exit race with it (CPython 3.11 can then print
        # an OSError). A thread executor retired earlier may be waiting on work that
        # over-runs its lease: not that one.
        if self._backend is not ExecutorBackend.PROCESS:
            retiring = []
        await self._drainer.join([*retiring, *idle, *settled])

    def _running_loop(self, method: str) -> None:
        if not self._started or self._stopping:
            raise LeasePoolNotStartedError(
                "LeasedExecutorManager is not started: "
                + (
                    f"{method}() needs a running manager; call await manager.start() first"
                    if not self._started
                    else f"{method}() refused, the manager is stopping"
                )
            )
        self._require_loop(method)

    # -- acquire / release -------------------------------------------------------

    async def acquire(
        self,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
        wait: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 - the 0.1.3 API
    ) -> ExecutorLease:
        """Lease one executor (and one global slot).

        Waits first-in, first-out when none is free. ``wait=False`` raises
        :class:`LeaseUnavailableError` at once instead, also when others are
        already waiting. ``timeout`` raises the builtin ``TimeoutError``.
        """
        if not self._started or self._stopping or asyncio.get_running_loop() is not self._loop:
            self._running_loop("acquire")  # raises the right error
        if lease_seconds is None:
            seconds = self._default_lease_seconds
        else:
            seconds = compat_positive_duration("lease_seconds", lease_seconds)
        if owner is not None and type(owner) is not str:
            optional_str("owner", owner)
        if wait is not True and wait is not False:
            boolean("wait", wait)
        clock = self._clock
        limit = None if timeout is None else optional_timeout("timeout", timeout)
        deadline = None if limit is None else clock.monotonic() + limit

        member = self._pool.take_nowait()
        if member is None:
            member = await self._wait_for_executor(wait, deadline)

        lease_id = f"{self._id_prefix}{next(self._id_counter):08x}"
        request = _new_tuple(GrantRequest, (lease_id, owner or "", seconds, self._grace))
        sent_at = clock.monotonic()
        try:
            # Any coordinator may grant at once, with no await; the embedded one
            # always does when there is room. The others say WouldBlock.
            grant = self._coordinator.acquire_nowait(request, now=sent_at)
        except WouldBlock:
            grant = await self._acquire_global(member, request, wait, deadline)
        except BaseException:
            self._pool.put_back_unused(member)
            raise

        member.leases_served += 1
        lease = self._book.open(member, lease_id, owner, seconds, self._grace, sent_at, grant)
        self._counters.acquires += 1
        if self._auto_renew:
            self._renewals.watch(self._book.live)
        return lease

    async def _wait_for_executor(self, wait: bool, deadline: float | None) -> PoolMember:
        pool = self._pool
        counters = self._counters
        if not wait:
            counters.rejections += 1
            waiting = len(pool.waiters)
            raise LeaseUnavailableError(
                "No executor available; "
                + (
                    f"{waiting} callers are already waiting (first in, first out)"
                    if waiting
                    else f"max_pools={self._config.max_pools} reached"
                )
            )
        counters.waits += 1
        try:
            member = await pool.take(deadline)
        except TimeoutError:
            counters.timeouts += 1
            raise
        if self._stopping or not self._started:
            pool.give_back(member)
            raise LeasePoolNotStartedError("LeasedExecutorManager is not started: it is stopping")
        return member

    async def _acquire_global(
        self, member: PoolMember, request: GrantRequest, wait: bool, deadline: float | None
    ) -> Grant:
        """Ask the coordinator; on any failure the executor goes back to the pool."""
        counters = self._counters
        task = asyncio.current_task()
        if wait and task is not None:
            self._acquiring[task] = None
        try:
            grant = await self._coordinator.acquire(request, wait=wait, deadline=deadline)
        except BaseException as exc:
            self._pool.put_back_unused(member)
            if isinstance(exc, LeaseUnavailableError):
                counters.rejections += 1
            elif isinstance(exc, TimeoutError):
                counters.timeouts += 1
            elif isinstance(exc, asyncio.CancelledError) and self._stopping and task is not None:
                task.uncancel()
                raise LeasePoolNotStartedError(
                    "LeasedExecutorManager is not started: it stopped while this caller waited"
                ) from None
            raise
        finally:
            if task is not None:
                self._acquiring.pop(task, None)
        if self._stopping or not self._started:
            # Granted just as stop() began: stop() never saw this lease, so it goes back.
            self._pool.put_back_unused(member)
            await self._endings.release_slot(request.lease_id)
            raise LeasePoolNotStartedError("the manager stopped while waiting")
        return grant

    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Release a lease by id. Idempotent: an unknown id returns ``UNKNOWN``."""
        if not isinstance(lease_id, str):
            raise TypeError(f"lease_id must be a str, got {lease_id!r}")
        if self._started:
            self._require_loop("release")
        lease = self._book.live.get(lease_id)
        if lease is None:
            return ReleaseOutcome.UNKNOWN
        return await lease.release()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- expiry, loss, renewal (the lease book decides; these handle executor and slot) --

    def _coordinator_lost(self, lease_id: str) -> None:
        lease = self._book.live.get(lease_id)
        if lease is not None:
            self._book.revoke(lease, LeaseState.LOST)

    async def _renew_lease(self, lease: ExecutorLease, seconds: float) -> None:
        if not lease.active:
            raise self._book.closed_error(lease)  # released (also by stop), expired or lost
        self._running_loop("renew")
        await self._renewals.renew(lease, seconds)

    # -- sizing ---------------------------------------------------------------------

    def notify_scale_changed(self) -> None:
        """Re-read ``size_provider`` soon and grow or shrink idle executors to match."""
        loop = self._loop
        if loop is None or not self._started:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.call_soon(self._pool.rescale)
        else:
            loop.call_soon_threadsafe(self._pool.rescale)

    def _schedule_check(self) -> None:
        self._check_timer = self._clock.call_at(
            self._clock.monotonic() + self._config.check_interval, self._periodic_check
        )

    def _periodic_check(self) -> None:
        if not self._started or self._stopping:
            return
        self._book.expire_overdue()
        self._pool.rescale()
        self._schedule_check()

    # -- stats ------------------------------------------------------------------------

    def stats(self) -> ManagerStats:
        """A snapshot: the 0.1.3 keys plus waiting, retiring, counters and coordinator.

        A plain ``dict`` at runtime (as in 0.1.3); :class:`leasepool.ManagerStats`
        names its keys for type checkers.
        """
        pool = self._pool
        book = self._book
        leased = book.members()
        return {
            "backend": self._backend.value,
            "desired": pool.desired(),
            "max_pools": self._config.max_pools,
            "min_pools": self._config.min_pools,
            "available": len(pool.idle),
            "leased": len(pool.busy),
            "total": pool.total,
            "workers_per_pool": pool.workers_per_pool,
            "leases": book.lease_stats(),
            "waiting": len(pool.waiters),
            "retiring": len(pool.retiring),
            # Tasks still running after their lease hit its hard expiry or was
            # lost (work of a released lease that is draining is not counted).
            "overrunning": sum(member.running for member in pool.busy if member.revoked),
            # Tasks of released leases still finishing (their executor waits for them).
            "draining": sum(
                member.running
                for member in pool.busy
                if not member.revoked and member not in leased
            ),
            "counters": self._counters.snapshot(),
            "coordinator": self._coordinator.statistics(),
        }

    # -- executors ---------------------------------------------------------------------

    def _kwargs_for_new_executor(self) -> dict[str, Any]:
        kwargs = dict(self._config.executor_kwargs)
        if self._log_bridge is not None:
            return self._log_bridge.executor_kwargs(kwargs)
        return kwargs

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "started" if self._started else "stopped"
        return (
            f"<LeasedExecutorManager backend={self._backend.value} {state} "
            f"total={self._pool.total} leased={len(self._pool.busy)}>"
        )
