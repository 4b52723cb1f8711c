"""The process-pool executor the process backend leases out.

:class:`LeasedProcessPoolExecutor` is a ``ProcessPoolExecutor`` (same
constructor, same behaviour for callers) with three additions:

* **pre-warm**: :meth:`~LeasedProcessPoolExecutor.prewarm` starts every worker
  process now instead of on the first submissions;
* **worker death is explained**: when a worker dies (``os._exit``, a signal, a
  segfault, the OOM killer) the pending futures fail with :class:`WorkerDiedError`,
  which names the dead worker's pid and exit code and is still a
  ``BrokenProcessPool``; the pool is told at once, so an idle broken executor is
  retired and replaced before anyone leases it;
* **revocation**: after :meth:`~LeasedProcessPoolExecutor.revoke`, killing the
  workers fails the futures that were running with the lease's
  ``LeaseExpiredError`` instead of ``BrokenProcessPool``.

The last two work by giving the executor our subclass of the stdlib's executor
manager thread, the one thread that delivers results and detects dead workers;
its ``terminate_broken`` is where a broken pool fails its futures. Those are
private stdlib internals, stable from 3.9 through 3.14; when they are missing
(:data:`HOOKS_AVAILABLE` is false) the executor behaves exactly like the stdlib
one and callers see a plain ``BrokenProcessPool``.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing.connection
import signal
import threading
from collections.abc import Callable
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from concurrent.futures import process as _stdlib
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from leasepool._errors import LeasePoolError

# How long the manager thread waits for a dead worker's exit status to be
# reapable after its sentinel fired (the two are not simultaneous in the kernel).
_EXIT_STATUS_WAIT = 1.0

HOOKS_AVAILABLE: bool = (
    isinstance(getattr(_stdlib, "_ExecutorManagerThread", None), type)
    and callable(getattr(_stdlib._ExecutorManagerThread, "terminate_broken", None))
    and hasattr(_stdlib, "_threads_wakeups")
    and callable(getattr(ProcessPoolExecutor, "_start_executor_manager_thread", None))
)


class WorkerDiedError(LeasePoolError, BrokenProcessPool):
    """A worker process of a process-backend executor died.

    The message says which worker (``pid``) and how (``exitcode``: a positive
    exit status, or minus the number of the signal that killed it). The
    executor is broken: leasepool retires it and creates a replacement. It is a
    ``concurrent.futures.process.BrokenProcessPool``, so code that already
    catches that keeps working.

    ``pid`` and ``exitcode`` are ``None`` when the pool broke without a worker
    dying (for example a result the parent could not unpickle). ``deaths``
    lists every ``(pid, exitcode)`` found dead.
    """

    def __init__(
        self,
        message: str,
        *,
        deaths: tuple[tuple[int, int | None], ...] = (),
        executor_name: str = "",
    ) -> None:
        super().__init__(message)
        self.deaths = deaths
        self.executor_name = executor_name

    @property
    def pid(self) -> int | None:
        """The pid of the first worker found dead, or None."""
        return self.deaths[0][0] if self.deaths else None

    @property
    def exitcode(self) -> int | None:
        """The exit code of the first worker found dead (negative: killed by a signal), or None."""
        return self.deaths[0][1] if self.deaths else None

    def __reduce__(self) -> Any:
        return (
            _rebuild_worker_died,
            (self.args[0] if self.args else "", self.deaths, self.executor_name),
        )


def _rebuild_worker_died(
    message: str, deaths: tuple[tuple[int, int | None], ...], executor_name: str
) -> WorkerDiedError:
    return WorkerDiedError(message, deaths=deaths, executor_name=executor_name)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"exit code {exitcode} (killed by {name})"
    return f"exit code {exitcode}"


class LeasedProcessPoolExecutor(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` that can be pre-warmed, revoked and diagnosed."""

    # Set by the pool right after construction; read by the manager thread.
    leasepool_name: str = ""
    on_broken: Callable[[WorkerDiedError], None] | None = None
    _revoke_error: Callable[[], BaseException] | None = None

    # The stdlib sets ``_broken`` to a generic text when its pool breaks; keep
    # the first reason instead, which names the dead worker when we know it.
    _broken_reason: Any = False

    @property
    def _broken(self) -> Any:
        return self._broken_reason

    @_broken.setter
    def _broken(self, value: Any) -> None:
        if not (value and self._broken_reason):
            self._broken_reason = value

    def prewarm(self) -> None:
        """Start every worker process now, and submit one no-op per worker.

        With the fork start method the stdlib forks all workers before it starts
        its manager thread (forking after would risk deadlocks), so that is what
        we do, here. Otherwise it spawns one worker per submission that finds no
        idle one; we spawn them all. Best effort: an executor that was shut down
        meanwhile, or a Python whose internals differ, is left alone.
        """
        executor: Any = self
        warm_ups = 0
        with contextlib.suppress(Exception), executor._shutdown_lock:
            if executor._broken or executor._shutdown_thread:
                return
            warm_ups = executor._max_workers
            if executor._safe_to_dynamically_spawn_children:
                for _ in range(len(executor._processes), executor._max_workers):
                    executor._spawn_process()
                    # Count them as idle, or the first submissions would each
                    # spawn one more (the stdlib's own bookkeeping, 3.14+).
                    if hasattr(executor, "_idle_worker_number"):
                        with executor._idle_worker_lock:
                            executor._idle_worker_number += 1
                    elif hasattr(executor, "_idle_worker_semaphore"):
                        executor._idle_worker_semaphore.release()
            executor._start_executor_manager_thread()
        # One no-op per worker also starts the queue feeder thread and takes each
        # worker through its first task: a first call then costs what later ones do.
        # ``int`` needs no import in the worker, and these skip any cloudpickling.
        with contextlib.suppress(Exception):
            for _ in range(warm_ups):
                ProcessPoolExecutor.submit(self, int)

    def _adjust_process_count(self) -> None:
        # The stdlib's manager thread replaces a worker that retired after
        # max_tasks_per_child even after shutdown(wait=False) dropped the process
        # table, and dies on it (TypeError on None): skip it then.
        if getattr(self, "_processes", None) is None:
            return
        super()._adjust_process_count()

    def revoke(self, error: Callable[[], BaseException]) -> None:
        """Fail work that is cut short by killing the workers with ``error()``."""
        self._revoke_error = error

    if HOOKS_AVAILABLE:

        def _start_executor_manager_thread(self) -> None:
            # The stdlib's body, with our thread class.
            executor: Any = self
            if executor._executor_manager_thread is None:
                if not executor._safe_to_dynamically_spawn_children:  # fork
                    executor._launch_processes()
                thread = _LeasedManagerThread(self)
                executor._executor_manager_thread = thread
                thread.start()
                _stdlib._threads_wakeups[thread] = executor._executor_manager_thread_wakeup


def _dead_workers(processes: list[Any]) -> list[tuple[int, int | None]]:
    """``(pid, exitcode)`` of the workers whose sentinel fired."""
    by_sentinel = {}
    for process in processes:
        with contextlib.suppress(Exception):
            by_sentinel[process.sentinel] = process
    try:
        ready = multiprocessing.connection.wait(list(by_sentinel), timeout=0)
    except Exception:
        ready = []
    deaths = []
    for sentinel in ready:
        process = by_sentinel[sentinel]
        exitcode = None
        with contextlib.suppress(Exception):
            process.join(_EXIT_STATUS_WAIT)
            exitcode = process.exitcode
        deaths.append((process.pid, exitcode))
    return deaths


def _death_message(name: str, deaths: list[tuple[int, int | None]], cause: object) -> str:
    where = f"executor {name}" if name else "a process-pool executor"
    if len(deaths) == 1:
        pid, exitcode = deaths[0]
        what = f"worker process {pid} of {where} died with {describe_exit(exitcode)}"
    elif deaths:
        listed = ", ".join(f"{pid} ({describe_exit(code)})" for pid, code in deaths)
        what = f"worker processes of {where} died: {listed}"
    else:
        detail = ""
        if isinstance(cause, list | tuple) and cause:
            detail = f": {str(cause[-1]).strip()}"
        what = f"the worker processes of {where} stopped answering{detail}"
    return f"{what}; the pool is broken, its pending work failed, and it will be replaced"


if HOOKS_AVAILABLE:

    class _LeasedManagerThread(_stdlib._ExecutorManagerThread):
        def terminate_broken(self, cause: Any, *args: Any, **kwargs: Any) -> None:
            """Fail pending work with our error, then let the stdlib clean up."""
            executor: Any = self.executor_reference()
            revoke_error = getattr(executor, "_revoke_error", None)
            name = getattr(executor, "leasepool_name", "")
            death: WorkerDiedError | None = None
            if revoke_error is None:
                deaths = tuple(_dead_workers(list(self.processes.values())))
                message = _death_message(name, list(deaths), cause)
                death = WorkerDiedError(message, deaths=deaths, executor_name=name)
                revoke_error = functools.partial(
                    WorkerDiedError, message, deaths=deaths, executor_name=name
                )

            # Under the lock, so no submission slips in; the futures are failed
            # outside it, because their callbacks may submit again.
            with self.shutdown_lock:
                if executor is not None:
                    executor._broken = (
                        str(death) if death is not None else "the executor's lease was revoked"
                    )
                    executor._shutdown_thread = True
                items = list(self.pending_work_items.values())
                self.pending_work_items.clear()
            for item in items:
                with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
                    item.future.set_exception(revoke_error())
            del items
            if death is not None and executor is not None:
                callback = getattr(executor, "on_broken", None)
                if callback is not None:
                    with contextlib.suppress(Exception):  # never let this thread die here
                        callback(death)
            executor = None
            super().terminate_broken(cause, *args, **kwargs)


def start_prewarm(executor: LeasedProcessPoolExecutor) -> None:
    """Pre-warm without holding up the event loop for long.

    Forking is cheap (a few ms per worker) and must happen before the manager
    thread starts, so it is done right here. Spawning or forkserver workers
    costs tens of ms each in the parent: a short-lived thread does it.
    """
    start_method = None
    context: Any = getattr(executor, "_mp_context", None)
    with contextlib.suppress(Exception):
        start_method = context.get_start_method(allow_none=False)
    if start_method == "fork":
        executor.prewarm()
    else:
        threading.Thread(
            target=executor.prewarm, name=f"{executor.leasepool_name}-prewarm", daemon=True
        ).start()


def build_process_executor(
    *, workers: int, name: str, kwargs: dict[str, Any], serializer: str, prewarm: bool
) -> LeasedProcessPoolExecutor:
    """A :class:`LeasedProcessPoolExecutor` (cloudpickling if asked), pre-warmed if asked.

    Takes the options as plain values, not ``ExecutorOptions``: ``_backends`` imports
    this module, so importing ``_backends`` here would make a cycle.
    """
    cls: type[LeasedProcessPoolExecutor] = LeasedProcessPoolExecutor
    if serializer == "cloudpickle":
        from leasepool._serialization import with_cloudpickle

        cls = with_cloudpickle(LeasedProcessPoolExecutor)
    factory: Any = cls
    executor: LeasedProcessPoolExecutor = factory(max_workers=workers, **kwargs)
    executor.leasepool_name = name
    if prewarm:
        start_prewarm(executor)
    return executor
