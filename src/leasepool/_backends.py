"""Executor backends: which ``concurrent.futures`` executor a pool holds."""

from __future__ import annotations

import concurrent.futures
import enum
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from leasepool._errors import UnsupportedBackendError


class ExecutorBackend(enum.StrEnum):
    """The kind of executor a manager leases out."""

    THREAD = "thread"
    PROCESS = "process"
    INTERPRETER = "interpreter"
    """``InterpreterPoolExecutor``; Python 3.14 and later only."""


def normalize_backend(backend: object) -> ExecutorBackend:
    """Accept the enum or a case-insensitive name; ``ValueError`` for anything else."""
    if isinstance(backend, ExecutorBackend):
        return backend
    if isinstance(backend, str):
        try:
            return ExecutorBackend(backend.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(repr(b.value) for b in ExecutorBackend)
    raise ValueError(f"backend must be one of {choices}, got {backend!r}")


def executor_class(backend: ExecutorBackend) -> type[Executor]:
    if backend is ExecutorBackend.THREAD:
        return ThreadPoolExecutor
    if backend is ExecutorBackend.PROCESS:
        return ProcessPoolExecutor
    interpreter_pool: type[Executor] | None = getattr(
        concurrent.futures, "InterpreterPoolExecutor", None
    )
    if interpreter_pool is None:
        raise UnsupportedBackendError(
            "backend='interpreter' needs InterpreterPoolExecutor, which Python 3.14+ provides"
        )
    return interpreter_pool


def build_executor(
    backend: ExecutorBackend, *, workers: int, thread_name_prefix: str, kwargs: dict[str, Any]
) -> Executor:
    cls = executor_class(backend)
    options = dict(kwargs)
    if backend is not ExecutorBackend.PROCESS:
        # ProcessPoolExecutor has no thread_name_prefix parameter.
        options.setdefault("thread_name_prefix", thread_name_prefix)
    factory: Any = cls
    executor: Executor = factory(max_workers=workers, **options)
    return executor
