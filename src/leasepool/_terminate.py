"""Killing process-pool workers, for ``hard_expiry_action="terminate"``.

Python 3.14 gives ``ProcessPoolExecutor.kill_workers()``; before that we reach
the worker processes through the executor's process table, which has kept
the same shape since 3.8.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor


def kill_process_workers(executor: Executor) -> list[int]:
    """SIGKILL every worker process of ``executor``; returns the pids it signalled."""
    processes = dict(getattr(executor, "_processes", None) or {})
    pids = [pid for pid in processes if isinstance(pid, int)]
    kill_workers = getattr(executor, "kill_workers", None)
    if callable(kill_workers):
        kill_workers()
        return pids
    for process in processes.values():
        with contextlib.suppress(Exception):  # already gone
            process.kill()
    return pids
