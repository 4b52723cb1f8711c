"""Killing and reaping process-pool workers.

``hard_expiry_action="terminate"`` kills a revoked lease's workers with
:func:`kill_process_workers`: Python 3.14's ``ProcessPoolExecutor.kill_workers()``
where it exists, otherwise SIGKILL to each process in the executor's process
table (a private attribute that has kept its shape since 3.8).

Every retirement then waits in :func:`reap` until the worker processes it
snapshotted beforehand have exited and been reaped, so a retiring executor
counts against capacity for exactly as long as its processes exist.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import threading
import time
from concurrent.futures import Executor
from typing import Any

# A worker that is still alive this long after its executor shut down (one that
# ignores SIGTERM, say) is killed, so a retirement always ends.
REAP_GRACE_SECONDS = 10.0


def worker_processes(executor: Executor) -> list[Any]:
    """The executor's live ``multiprocessing.Process`` objects; [] for other executors."""
    table = getattr(executor, "_processes", None)
    if not table:
        return []
    for _ in range(5):
        try:
            return list(table.values())
        except RuntimeError:  # resized by another thread mid-copy: try again
            continue
    return []


def kill_process_workers(executor: Executor) -> list[int]:
    """SIGKILL every worker process of ``executor``; returns the pids it signalled."""
    processes = worker_processes(executor)
    pids = [process.pid for process in processes if isinstance(process.pid, int)]
    kill_workers = getattr(executor, "kill_workers", None)
    if callable(kill_workers):
        kill_workers()
        return pids
    for process in processes:
        with contextlib.suppress(Exception):  # already gone
            process.kill()
    return pids


def shut_down_and_reap(
    executor: Executor, kill: Any = None, grace: float = REAP_GRACE_SECONDS
) -> None:
    """Optionally ``kill(executor)``, shut it down, and return once its workers are gone.

    Blocks: call it from a helper thread, never from the event loop.
    """
    processes = worker_processes(executor)
    manager_thread = getattr(executor, "_executor_manager_thread", None)
    if kill is not None:
        kill(executor)
    executor.shutdown(wait=True, cancel_futures=True)
    # kill_workers() (3.14) shuts down without waiting and forgets the manager
    # thread, so shutdown(wait=True) above may not have joined it: do it here.
    if (
        isinstance(manager_thread, threading.Thread)
        and manager_thread.is_alive()
        and manager_thread is not threading.current_thread()
    ):
        manager_thread.join()
    reap(processes, grace)


def reap(processes: list[Any], grace: float = REAP_GRACE_SECONDS) -> None:
    """Wait until every process has exited, and reap it.

    A process still running after ``grace`` seconds is killed. Exit is read
    from the process's sentinel, never from its pid alone, so a pid that was
    already reaped (and maybe reused) is never signalled.
    """
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(Exception):
            remaining = max(0.0, deadline - time.monotonic())
            if not multiprocessing.connection.wait([process.sentinel], remaining):
                process.kill()
            process.join()
