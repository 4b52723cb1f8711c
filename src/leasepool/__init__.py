"""leasepool: lease whole executors for a bounded time, with backpressure,
locally or against one global capacity shared through Redis.

``import leasepool`` does not import redis-py: :class:`RedisCoordinator` is loaded on
first access (module ``__getattr__``), so a process that never touches Redis never
pays for it. ``__all__`` and ``dir()`` still list it, and ``from leasepool import
RedisCoordinator`` works as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from leasepool._backends import ExecutorBackend
from leasepool._clock import Clock
from leasepool._coordinator import (
    Coordinator,
    Grant,
    GrantRequest,
    LeaseRecord,
    PoolStatus,
    ReleaseOutcome,
    WaitingProcess,
)
from leasepool._errors import (
    CoordinatorStateError,
    CoordinatorUnavailableError,
    LeaseExpiredError,
    LeaseLostError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
    WouldBlock,
)
from leasepool._grinder import WorkGrinder
from leasepool._lease import ExecutorLease
from leasepool._manager import LeasedExecutorManager
from leasepool._memory import InMemoryCoordinator
from leasepool._process_logging import ProcessLoggingConfig
from leasepool._serialization import SerializationError
from leasepool._settings import LeasePoolSettings
from leasepool._statistics import (
    CoordinatorStatistics,
    LeaseStats,
    ManagerCounters,
    ManagerStats,
    MemoryCoordinatorStatistics,
    RedisCoordinatorStatistics,
)
from leasepool._workers import WorkerDiedError

if TYPE_CHECKING:
    from leasepool._redis.coordinator import RedisCoordinator

logging.getLogger("leasepool").addHandler(logging.NullHandler())

__version__ = "0.2.0"

__all__ = [
    "Clock",
    "Coordinator",
    "CoordinatorStateError",
    "CoordinatorStatistics",
    "CoordinatorUnavailableError",
    "ExecutorBackend",
    "ExecutorLease",
    "Grant",
    "GrantRequest",
    "InMemoryCoordinator",
    "LeaseExpiredError",
    "LeaseLostError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeasePoolSettings",
    "LeaseRecord",
    "LeaseStats",
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "ManagerCounters",
    "ManagerStats",
    "MemoryCoordinatorStatistics",
    "PoolStatus",
    "ProcessLoggingConfig",
    "RedisCoordinator",
    "RedisCoordinatorStatistics",
    "ReleaseOutcome",
    "SerializationError",
    "UnsupportedBackendError",
    "WaitingProcess",
    "WorkGrinder",
    "WorkerDiedError",
    "WouldBlock",
    "__version__",
]


if not TYPE_CHECKING:
    # Hidden from type checkers, which see the import above instead: a visible module
    # __getattr__ would make them accept any misspelt ``leasepool.Name``.

    def __getattr__(name: str) -> object:
        # Only names that would import redis-py are lazy; the rest are bound above.
        if name == "RedisCoordinator":
            from leasepool._redis.coordinator import RedisCoordinator

            globals()[name] = RedisCoordinator
            return RedisCoordinator
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
