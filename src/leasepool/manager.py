"""The manager at leasepool 0.1.3's module path ``leasepool.manager``.

Re-exports the names 0.1.3 had here. The three process-logging helpers keep
0.1.3's signatures and delegate to ``leasepool._process_logging``; the manager
itself uses that module directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from logging.handlers import QueueListener
from typing import Any

from leasepool._backends import ExecutorBackend, normalize_backend
from leasepool._errors import LeaseExpiredError, LeasePoolNotStartedError, LeaseUnavailableError
from leasepool._lease import ExecutorLease
from leasepool._manager import LeasedExecutorManager
from leasepool._process_logging import (
    ProcessLoggingConfig,
    log_level,
    worker_initializer,
)
from leasepool._process_logging import _ForwardToLogger as _Forward
from leasepool.backends import build_executor
from leasepool.types import SizeProvider

logger = logging.getLogger(__name__)
"""0.1.3 had a module logger here; the manager logs on ``leasepool`` (or your ``logger=``)."""

__all__ = [
    "ExecutorBackend",
    "ExecutorLease",
    "LeaseExpiredError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "ProcessLoggingConfig",
    "SizeProvider",
    "build_executor",
    "build_queue_listener",
    "coerce_log_level",
    "logger",
    "normalize_backend",
    "process_worker_initializer",
]


def coerce_log_level(level: int | str) -> int:
    """A logging level as a number, from a number or a standard name (any case)."""
    return log_level(level, "level")


def process_worker_initializer(
    log_queue: Any | None,
    level: int | str,
    clear_existing_handlers: bool,
    user_initializer: Callable[..., Any] | None,
    user_initargs: tuple[Any, ...],
) -> None:
    """A process worker's initializer: send its logs to ``log_queue`` (unless None),
    then run the user's own initializer."""
    if log_queue is None:
        if user_initializer is not None:
            user_initializer(*user_initargs)
        return
    numeric = log_level(level, "level")
    worker_initializer(log_queue, numeric, clear_existing_handlers, user_initializer, user_initargs)


def build_queue_listener(*, log_queue: Any, target_logger: logging.Logger) -> QueueListener:
    """A listener (not yet started) that hands each worker record to ``target_logger``."""
    return QueueListener(log_queue, _Forward(target_logger), respect_handler_level=True)
