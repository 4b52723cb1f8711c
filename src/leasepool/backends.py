"""Backends at leasepool 0.1.3's module path ``leasepool.backends``.

``ExecutorBackend`` and ``normalize_backend`` are the package's own; the two
helpers below keep 0.1.3's signatures and delegate to ``leasepool._backends``.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from leasepool._backends import ExecutorBackend, executor_class, normalize_backend
from leasepool._backends import build_executor as _build

__all__ = ["ExecutorBackend", "build_executor", "normalize_backend", "resolve_executor_cls"]


def resolve_executor_cls(backend: ExecutorBackend | str) -> type[Executor]:
    """The executor class for ``backend``: ``UnsupportedBackendError`` when this
    Python lacks it (the interpreter backend before 3.14)."""
    return executor_class(normalize_backend(backend))


def build_executor(
    *,
    backend: ExecutorBackend | str,
    max_workers: int,
    name_prefix: str,
    executor_seq: int,
    executor_kwargs: dict[str, Any],
) -> Executor:
    """A new executor of ``backend`` with ``max_workers`` workers; thread and
    interpreter workers are named ``{name_prefix}-{executor_seq}``."""
    return _build(
        normalize_backend(backend),
        workers=max_workers,
        thread_name_prefix=f"{name_prefix}-{executor_seq}",
        kwargs=executor_kwargs,
    )
