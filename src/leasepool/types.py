"""The type aliases of leasepool 0.1.3, at its module path ``leasepool.types``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

SyncCallable: TypeAlias = Callable[..., Any]
"""A plain (not async) callable, as submitted to a leased executor."""

SizeProvider: TypeAlias = Callable[[], int]
"""The ``size_provider`` argument: returns the current amount of work, in units."""

__all__ = ["SizeProvider", "SyncCallable"]
