"""Forwarding log records from process-pool workers to the parent.

Each worker gets a ``QueueHandler`` on its root logger (installed by our
initializer, which then runs the user's own initializer). The parent runs one
``QueueListener`` that re-enters the parent's logger hierarchy, so the
application's handlers, formatters and levels apply to worker records too.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler, QueueListener
from typing import Any


@dataclass(frozen=True, slots=True)
class ProcessLoggingConfig:
    """Opt-in forwarding of process-backend worker logs to a parent logger.

    ``enabled``: turn forwarding on. ``level``: the workers' root logger level.
    ``target_logger``: the parent logger that receives worker records (default:
    the manager's logger). ``clear_child_handlers``: drop handlers a worker
    inherited, so records are not written twice.
    """

    enabled: bool = False
    level: int | str = logging.INFO
    target_logger: logging.Logger | None = None
    clear_child_handlers: bool = True


def log_level(value: object, name: str = "process_log_level") -> int:
    if isinstance(value, bool):
        raise ValueError(f"Invalid logging level: {value!r} ({name} must be a level name or int)")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        resolved = logging.getLevelName(value.strip().upper())
        if isinstance(resolved, int):
            return resolved
    raise ValueError(f"Invalid logging level: {value!r} ({name} must be a level name or int)")


class _ForwardToLogger(logging.Handler):
    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        if self._target.isEnabledFor(record.levelno):
            self._target.handle(record)


def worker_initializer(
    log_queue: Any,
    level: int,
    clear_handlers: bool,
    user_initializer: Callable[..., object] | None,
    user_initargs: tuple[Any, ...],
) -> None:
    root = logging.getLogger()
    if clear_handlers:
        root.handlers.clear()
    root.addHandler(QueueHandler(log_queue))
    root.setLevel(level)
    if user_initializer is not None:
        user_initializer(*user_initargs)


def preferred_context(executor_kwargs: dict[str, Any]) -> multiprocessing.context.BaseContext:
    """A non-fork context: forking after the listener thread started is unsafe."""
    given = executor_kwargs.get("mp_context")
    if given is not None:
        return given  # type: ignore[no-any-return]
    methods = multiprocessing.get_all_start_methods()
    for method in ("forkserver", "spawn"):
        if method in methods:
            return multiprocessing.get_context(method)
    return multiprocessing.get_context()


class ProcessLogBridge:
    """The parent side: a queue, a listener thread, and the executor kwargs that use them."""

    def __init__(self, config: ProcessLoggingConfig, fallback_logger: logging.Logger) -> None:
        self._config = config
        self._level = log_level(config.level, "process_logging.level")
        self._target = config.target_logger or fallback_logger
        self._queue: Any = None
        self._listener: QueueListener | None = None
        self._context: multiprocessing.context.BaseContext | None = None

    def start(self, executor_kwargs: dict[str, Any]) -> None:
        if self._listener is not None:
            return
        self._context = preferred_context(executor_kwargs)
        self._queue = self._context.Queue(-1)
        self._listener = QueueListener(self._queue, _ForwardToLogger(self._target))
        self._listener.start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        queue, self._queue = self._queue, None
        if queue is not None:
            queue.close()
            queue.join_thread()

    def executor_kwargs(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` with our initializer in front of the user's own."""
        kwargs = dict(base)
        user_initializer = kwargs.pop("initializer", None)
        user_initargs = tuple(kwargs.pop("initargs", ()))
        kwargs["initializer"] = worker_initializer
        kwargs["initargs"] = (
            self._queue,
            self._level,
            self._config.clear_child_handlers,
            user_initializer,
            user_initargs,
        )
        kwargs.setdefault("mp_context", self._context)
        return kwargs
