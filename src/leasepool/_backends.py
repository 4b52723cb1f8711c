"""Executor backends: which ``concurrent.futures`` executor a pool holds."""

from __future__ import annotations

import concurrent.futures
import enum
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
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
    supported = ", ".join(b.value for b in ExecutorBackend)
    raise ValueError(
        f"Unsupported backend {backend!r}. Supported: {supported} "
        "(backend takes an ExecutorBackend or one of these names, in any case)"
    )


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
            "InterpreterPoolExecutor is available only on Python 3.14+. "
            "backend='interpreter' needs it; use 'thread' or 'process' here"
        )
    return interpreter_pool


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """How the pool builds executors, beyond the executor's own kwargs.

    ``serializer="cloudpickle"`` (process and interpreter backends) pickles each
    call in the caller; ``prewarm`` (process backend) starts the workers when
    the executor is created.
    """

    serializer: str = "pickle"
    prewarm: bool = False


DEFAULT_OPTIONS = ExecutorOptions()


def build_executor(
    backend: ExecutorBackend,
    *,
    workers: int,
    thread_name_prefix: str,
    kwargs: dict[str, Any],
    options: ExecutorOptions = DEFAULT_OPTIONS,
) -> Executor:
    if backend is ExecutorBackend.PROCESS:
        from leasepool._workers import build_process_executor

        return build_process_executor(
            workers=workers,
            name=thread_name_prefix,
            kwargs=kwargs,
            serializer=options.serializer,
            prewarm=options.prewarm,
        )
    cls = executor_class(backend)
    if options.serializer == "cloudpickle":
        from leasepool._serialization import with_cloudpickle

        cls = with_cloudpickle(cls)
    # Thread and interpreter pools name their threads after the executor.
    arguments = dict(kwargs)
    arguments.setdefault("thread_name_prefix", thread_name_prefix)
    factory: Any = cls
    executor: Executor = factory(max_workers=workers, **arguments)
    return executor
