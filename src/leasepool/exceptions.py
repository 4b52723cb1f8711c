"""The exceptions, at leasepool 0.1.3's module path ``leasepool.exceptions``.

A re-export only: the classes live in ``leasepool._errors`` and are the same
objects as ``leasepool.LeasePoolError`` and friends, so ``except`` clauses
written against either path catch the same errors.
"""

from __future__ import annotations

from leasepool._errors import (
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
)

__all__ = [
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
]
