"""LeasedExecutorManager: the public face that ties pool, coordinator and leases together.

The manager owns no policy of its own: the local pool decides which executor,
the coordinator decides whether a global slot is free, the expiry timers decide
when a lease ends. The manager validates arguments, enforces the one-loop rule,
and moves leases between those parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Future
from typing import Any, TypeVar

from leasepool._backends import (
    ExecutorBackend,
    executor_class,
    normalize_backend,
)
from leasepool._clock import MONOTONIC_CLOCK, Clock, TimerHandle
from leasepool._coordinator import Coordinator, Grant, GrantRequest, ReleaseOutcome
from leasepool._errors import (
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)
from leasepool._expiry import ExpiryTimers
from leasepool._lease import ExecutorLease, LeaseState
from leasepool._memory import InMemoryCoordinator
from leasepool._options import (
    DEFAULT_STOP_TIMEOUT,
    HardExpiryAction,
    check_clock,
    check_hard_expiry_action,
    check_stop_timeout,
    process_options,
)
from leasepool._pool import LocalPool, PoolMember
from leasepool._process_logging import ProcessLogBridge, ProcessLoggingConfig, log_level
from leasepool._renewal import Renewals
from leasepool._serialization import Serializer
from leasepool._stats import Counters
from leasepool._stopping import Drainer, stop_targets
from leasepool._validation import (
    boolean,
    compat_non_negative_duration,
    compat_positive_duration,
    optional_str,
    optional_timeout,
    positive_int,
)

R = TypeVar("R")
SoftExpiryCallback = Callable[[ExecutorLease], object]


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
        self._backend = normalize_backend(backend)
        self._max_pools = positive_int("max_pools", max_pools)
        self._min_pools = positive_int("min_pools", min_pools)
        if self._min_pools > self._max_pools:
            raise ValueError(
                "min_pools cannot be greater than max_pools: "
                f"min_pools={self._min_pools}, max_pools={self._max_pools}"
            )
        units = positive_int("units_per_pool", units_per_pool)
        if size_provider is not None and not callable(size_provider):
            raise TypeError(f"size_provider must be callable or None, got {size_provider!r}")
        self._check_interval = compat_positive_duration("check_interval", check_interval)
        self._default_lease_seconds = compat_positive_duration(
            "default_lease_seconds", default_lease_seconds
        )
        self._grace = compat_non_negative_duration("lease_grace_seconds", lease_grace_seconds)
        workers = positive_int("workers_per_pool", workers_per_pool)
        if not isinstance(name_prefix, str):
            raise TypeError(f"name_prefix must be a str, got {name_prefix!r}")
        self._name_prefix = name_prefix
        self._logger = logger or logging.getLogger("leasepool")
        if coordinator is not None and not isinstance(coordinator, Coordinator):
            raise TypeError(f"coordinator must be a leasepool Coordinator, got {coordinator!r}")
        self._coordinator: Coordinator = coordinator or InMemoryCoordinator()
        # The embedded coordinator answers synchronously: skip the awaits for it.
        self._memory = (
            self._coordinator if isinstance(self._coordinator, InMemoryCoordinator) else None
        )
        self._clock: Clock = check_clock(clock) or MONOTONIC_CLOCK
        if on_soft_expiry is not None and not callable(on_soft_expiry):
            raise TypeError(f"on_soft_expiry must be callable or None, got {on_soft_expiry!r}")
        self._on_soft_expiry = on_soft_expiry
        self._hard_expiry_action = check_hard_expiry_action(hard_expiry_action, self._backend)
        self._auto_renew = boolean("auto_renew", auto_renew)
        executor_options = process_options(
            self._backend, serializer, boolean("prewarm", prewarm), executor_kwargs
        )
        self._stop_timeout = check_stop_timeout(stop_timeout)
        if max_leases_per_executor is not None:
            max_leases_per_executor = positive_int(
                "max_leases_per_executor", max_leases_per_executor
            )

        forward = boolean("forward_process_logs", forward_process_logs)
        if process_logging is None:
            process_logging = ProcessLoggingConfig(
                enabled=forward,
                level=log_level(process_log_level),
                target_logger=process_log_target_logger,
                clear_child_handlers=boolean(
                    "clear_process_log_handlers", clear_process_log_handlers
                ),
            )
        elif not isinstance(process_logging, ProcessLoggingConfig):
            raise TypeError(
                f"process_logging must be a ProcessLoggingConfig, got {process_logging!r}"
            )
        elif (
            forward
            or process_log_level != logging.INFO
            or process_log_target_logger is not None
            or clear_process_log_handlers is not True
        ):
            raise ValueError(
                "Pass either process_logging or the forward_process_logs/process_log_* "
                "arguments, not both."
            )
        if process_logging.enabled and self._backend is not ExecutorBackend.PROCESS:
            raise ValueError(
                "process log forwarding is only supported for process backend, "
                f"not backend={self._backend.value!r}"
            )
        self._log_bridge = (
            ProcessLogBridge(process_logging, self._logger)
            if process_logging.enabled and self._backend is ExecutorBackend.PROCESS
            else None
        )
        self._executor_kwargs = executor_kwargs

        self._counters = Counters()
        self._pool = LocalPool(
            backend=self._backend,
            max_pools=self._max_pools,
            min_pools=self._min_pools,
            units_per_pool=units,
            size_provider=size_provider,
            workers_per_pool=workers,
            name_prefix=name_prefix,
            executor_kwargs=self._kwargs_for_new_executor,
            clock=self._clock,
            counters=self._counters,
            logger=self._logger,
            max_leases_per_executor=max_leases_per_executor,
            executor_options=executor_options,
        )
        self._leases: dict[str, ExecutorLease] = {}
        self._timers = ExpiryTimers(
            self._clock, self._leases, self._soft_expired, self._hard_expired
        )
        self._renewals = Renewals(
            coordinator=self._coordinator,
            clock=self._clock,
            counters=self._counters,
            timers=self._timers,
            logger=self._logger,
            end_lease=self._end_lease,
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
        # Released leases whose work is still draining (their slots wait for it).
        self._draining: dict[PoolMember, ExecutorLease] = {}
        self._drainer = Drainer(
            pool=self._pool,
            clock=self._clock,
            backend=self._backend,
            counters=self._counters,
            logger=self._logger,
            release=self._release_global,
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
                self._log_bridge.start(self._executor_kwargs)
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
        targets = stop_targets(
            list(self._leases.values()),
            list(self._draining.items()),
            list(pool.busy),
            self._clock.monotonic(),
            self._stop_timeout,
        )
        self._leases.clear()
        self._draining.clear()
        self._timers.cancel_all()
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
        counters = self._counters

        member = self._pool.take_nowait()
        if member is None:
            member = await self._wait_for_executor(wait, deadline)

        lease_id = f"{self._id_prefix}{next(self._id_counter):08x}"
        sent_at = clock.monotonic()
        memory = self._memory
        granted = (
            None
            if memory is None
            else memory.grant_local(lease_id, owner or "", seconds, self._grace, sent_at)
        )
        if granted is None:
            request = GrantRequest(lease_id, owner or "", seconds, self._grace)
            grant = await self._acquire_global(member, request, wait, deadline)
            token, soft, hard = grant.fencing_token, grant.soft_deadline, grant.hard_deadline
        else:
            token, soft, hard = granted

        member.leases_served += 1
        lease = ExecutorLease(
            self,
            member,
            lease_id,
            owner,
            seconds,
            self._grace,
            sent_at,
            token,
            soft,
            hard,
        )
        self._leases[lease_id] = lease
        self._timers.arm(lease)
        counters.acquires += 1
        if self._auto_renew:
            self._renewals.watch(self._leases)
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
                    else f"max_pools={self._max_pools} reached"
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
            await self._release_global(request.lease_id)
            raise LeasePoolNotStartedError("the manager stopped while waiting")
        return grant

    async def release(self, lease_id: str) -> ReleaseOutcome:
        """Release a lease by id. Idempotent: an unknown id returns ``UNKNOWN``."""
        if not isinstance(lease_id, str):
            raise TypeError(f"lease_id must be a str, got {lease_id!r}")
        if self._started:
            self._require_loop("release")
        lease = self._leases.get(lease_id)
        if lease is None:
            return ReleaseOutcome.UNKNOWN
        return await self._release_lease(lease)

    async def _release_lease(self, lease: ExecutorLease) -> ReleaseOutcome:
        outcome = self._release_nowait(lease)
        if outcome is None:
            outcome = await self._release_global(lease.lease_id) or ReleaseOutcome.RELEASED
        return outcome

    def _release_nowait(self, lease: ExecutorLease) -> ReleaseOutcome | None:
        """Release locally; the outcome, or None when the coordinator must still be told."""
        if lease._state is not LeaseState.ACTIVE:
            return (
                ReleaseOutcome.UNKNOWN
                if lease._state is LeaseState.RELEASED
                else ReleaseOutcome.EXPIRED
            )
        if self._started and asyncio.get_running_loop() is not self._loop:
            self._require_loop("release")  # raises
        if self._clock.monotonic() >= lease._hard_deadline:
            self._end_lease(lease, LeaseState.EXPIRED)
            return ReleaseOutcome.EXPIRED
        lease._state = LeaseState.RELEASED
        del self._leases[lease.lease_id]
        self._counters.releases += 1
        member = lease._member
        if member.pending:
            # Draining: the executor and the global slot stay taken until the
            # work submitted through this lease has finished.
            member.when_drained(lambda: self._drained(lease))
            # Known by stop(), which must not free this slot before the work ends either.
            self._draining[member] = lease
            if self._hard_expiry_action == "terminate":
                # Draining is bounded too: what still runs at the hard expiry is killed.
                self._clock.call_at(
                    lease._hard_deadline, lambda: self._drain_deadline(member, lease)
                )
            return ReleaseOutcome.RELEASED
        self._pool.give_back(member)
        memory = self._memory
        if memory is not None:
            return memory.release_nowait(lease.lease_id)
        return None

    def _drained(self, lease: ExecutorLease) -> None:
        if self._draining:
            self._draining.pop(lease._member, None)
        self._pool.give_back(lease._member)
        self._spawn(self._release_global(lease.lease_id))

    def _drain_deadline(self, member: PoolMember, lease: ExecutorLease) -> None:
        """A released lease's work still runs at its hard expiry: kill it (terminate)."""
        if self._draining.get(member) is not lease or not self._started:
            return
        del self._draining[member]
        if all(future.done() for future in list(member.pending)):
            return
        self._logger.warning(
            "lease %s (owner=%r) was released but %d task(s) still run at its hard expiry: "
            "killing its workers",
            lease.lease_id,
            lease.owner,
            member.running,
        )
        member.cancel_queued()
        self._terminate(member, lease)

    async def _release_global(self, lease_id: str) -> ReleaseOutcome | None:
        try:
            return await self._coordinator.release(lease_id)
        except LeasePoolError as exc:
            # The slot frees itself at its hard expiry on the coordinator.
            self._logger.warning("could not release lease %s globally: %s", lease_id, exc)
            return None

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- work --------------------------------------------------------------------

    def _submit(
        self,
        lease: ExecutorLease,
        member: PoolMember,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Future[R]:
        try:
            future = member.executor.submit(fn, *args, **kwargs)
        except BrokenExecutor as exc:
            member.mark_broken(exc)
            raise
        member.pending.add(future)
        future.add_done_callback(member.finished_in_thread)
        return future

    # -- expiry, loss, renewal ------------------------------------------------------

    def _soft_expired(self, lease: ExecutorLease) -> None:
        self._counters.soft_expiries += 1
        self._logger.warning(
            "lease %s (owner=%r) passed its soft expiry after %.3gs; hard expiry in %.3gs",
            lease.lease_id,
            lease.owner,
            lease.lease_seconds,
            max(0.0, lease._hard_deadline - self._clock.monotonic()),
        )
        if self._on_soft_expiry is not None:
            try:
                result = self._on_soft_expiry(lease)
                if inspect.isawaitable(result):
                    self._spawn(self._await_soft_callback(result, lease.lease_id))
            except Exception:
                self._logger.exception(
                    "on_soft_expiry callback raised for lease %s", lease.lease_id
                )

    async def _await_soft_callback(self, awaitable: Awaitable[object], lease_id: str) -> None:
        # Log an async callback's error like a sync one's, not as "never retrieved".
        try:
            await awaitable
        except Exception:
            self._logger.exception("on_soft_expiry callback raised for lease %s", lease_id)

    def _hard_expired(self, lease: ExecutorLease) -> None:
        self._end_lease(lease, LeaseState.EXPIRED)

    def _expire_from_any_thread(self, lease: ExecutorLease) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end_lease(lease, LeaseState.EXPIRED)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_lease, lease, LeaseState.EXPIRED)

    def _coordinator_lost(self, lease_id: str) -> None:
        lease = self._leases.get(lease_id)
        if lease is not None:
            self._end_lease(lease, LeaseState.LOST)

    def _end_lease(self, lease: ExecutorLease, state: LeaseState) -> None:
        """Revoke locally: reject new work, and free the executor once its work is done."""
        if lease._state is not LeaseState.ACTIVE:
            return
        lease._state = state
        self._leases.pop(lease.lease_id, None)
        member = lease._member
        if state is LeaseState.LOST:
            self._counters.lost += 1
            self._logger.warning("lease %s (owner=%r) was lost", lease.lease_id, lease.owner)
        else:
            self._counters.hard_expiries += 1
            self._logger.warning(
                "lease %s (owner=%r) passed its hard expiry: revoked, %d task(s) still running",
                lease.lease_id,
                lease.owner,
                member.running,
            )
        member.cancel_queued()
        if self._hard_expiry_action == "terminate" and not all(
            future.done() for future in list(member.pending)
        ):
            self._terminate(member, lease)
        else:
            # Work still running now over-runs the lease (stats()["overrunning"]).
            member.revoked = bool(member.pending)
            member.when_drained(lambda: self._revoked_drained(member))
        if state is LeaseState.EXPIRED:
            self._spawn(self._release_global(lease.lease_id))

    def _revoked_drained(self, member: PoolMember) -> None:
        member.revoked = False
        self._pool.give_back(member)

    def _terminate(self, member: PoolMember, lease: ExecutorLease) -> None:
        """Kill the lease's worker processes; its unfinished work fails with its error."""
        from leasepool._terminate import kill_process_workers

        self._counters.kills += 1
        revoke = getattr(member.executor, "revoke", None)
        if revoke is not None:
            closed = lease._closed_error()
            if lease._state is LeaseState.RELEASED:
                closed = LeaseExpiredError(
                    f"lease {lease.lease_id} was released, but this work was still running "
                    "at its hard expiry"
                )
            revoke(
                functools.partial(
                    type(closed),
                    f"{closed}; its worker processes were killed (hard_expiry_action='terminate')",
                )
            )
        self._pool.retire(member, "terminated", kill=kill_process_workers)

    async def _renew_lease(self, lease: ExecutorLease, seconds: float) -> None:
        if lease._state is not LeaseState.ACTIVE:
            raise lease._closed_error()  # released (also by stop), expired or lost
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
            self._clock.monotonic() + self._check_interval, self._periodic_check
        )

    def _periodic_check(self) -> None:
        if not self._started or self._stopping:
            return
        now = self._clock.monotonic()
        for lease in [lease for lease in self._leases.values() if now >= lease._hard_deadline]:
            self._end_lease(lease, LeaseState.EXPIRED)
        self._pool.rescale()
        self._schedule_check()

    # -- stats ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot: the 0.1.3 keys plus waiting, retiring, counters and coordinator."""
        now = self._clock.monotonic()
        pool = self._pool
        leased = {lease._member for lease in self._leases.values()}
        return {
            "backend": self._backend.value,
            "desired": pool.desired(),
            "max_pools": self._max_pools,
            "min_pools": self._min_pools,
            "available": len(pool.idle),
            "leased": len(pool.busy),
            "total": pool.total,
            "workers_per_pool": pool.workers_per_pool,
            "leases": [
                {
                    "lease_id": lease.lease_id,
                    "owner": lease.owner,
                    "fencing_token": lease.fencing_token,
                    "seconds_until_soft_expiry": max(0.0, lease._soft_deadline - now),
                    "seconds_until_hard_expiry": max(0.0, lease._hard_deadline - now),
                    "running": lease._member.running,
                }
                for lease in self._leases.values()
            ],
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
        if self._log_bridge is not None:
            return self._log_bridge.executor_kwargs(self._executor_kwargs)
        return self._executor_kwargs

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "started" if self._started else "stopped"
        return (
            f"<LeasedExecutorManager backend={self._backend.value} {state} "
            f"total={self._pool.total} leased={len(self._pool.busy)}>"
        )
