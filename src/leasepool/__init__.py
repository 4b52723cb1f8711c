"""leasepool: lease whole executors for a bounded time, with backpressure,
locally or against one global capacity shared through Redis."""

from __future__ import annotations

import logging

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
)
from leasepool._grinder import WorkGrinder
from leasepool._lease import ExecutorLease
from leasepool._manager import LeasedExecutorManager
from leasepool._memory import InMemoryCoordinator
from leasepool._process_logging import ProcessLoggingConfig
from leasepool._redis.coordinator import RedisCoordinator
from leasepool._serialization import SerializationError
from leasepool._settings import LeasePoolSettings
from leasepool._workers import WorkerDiedError

logging.getLogger("leasepool").addHandler(logging.NullHandler())

__version__ = "0.2.0"

__all__ = [
    "Clock",
    "Coordinator",
    "CoordinatorStateError",
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
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "PoolStatus",
    "ProcessLoggingConfig",
    "RedisCoordinator",
    "ReleaseOutcome",
    "SerializationError",
    "UnsupportedBackendError",
    "WaitingProcess",
    "WorkGrinder",
    "WorkerDiedError",
    "__version__",
]
