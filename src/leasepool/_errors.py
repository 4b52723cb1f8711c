"""Exception hierarchy.

Every error leasepool raises on purpose derives from :class:`LeasePoolError`,
except the builtin ``TimeoutError`` (acquire timeouts, as in 0.1.3) and the
``ValueError``/``TypeError`` raised for bad arguments.
"""

from __future__ import annotations


class LeasePoolError(Exception):
    """Base class of every leasepool error."""


class LeasePoolNotStartedError(LeasePoolError):
    """The manager is not running: it was never started, or it is stopping or stopped."""


class LeaseUnavailableError(LeasePoolError):
    """No lease can be granted without waiting (``wait=False``)."""


class LeaseExpiredError(LeasePoolError):
    """The lease was released, passed its hard expiry, or was revoked."""


class LeaseLostError(LeaseExpiredError):
    """The coordinator no longer knows the lease.

    Raised on the next submission after a renewal (or a revocation event) found
    that the lease is gone: it expired on the server, an operator revoked it, or
    the coordinator lost its data.
    """


class WouldBlock(LeasePoolError):
    """A ``*_nowait`` call could not complete without waiting or I/O; use the async call.

    Raised by :meth:`Coordinator.acquire_nowait` and :meth:`Coordinator.release_nowait`.
    It says nothing about the pool (it may be full, or the coordinator may simply
    need a round trip to decide): the caller falls back to ``acquire``/``release``.
    """


class UnsupportedBackendError(LeasePoolError):
    """The requested executor backend is not available on this Python."""


class CoordinatorUnavailableError(LeasePoolError):
    """The coordinator (for example Redis) cannot be reached or answered with an error.

    The message never contains a password: URLs are redacted before they are
    formatted into it.
    """


class CoordinatorStateError(LeasePoolError):
    """The coordinator's stored state is not what leasepool wrote (wrong key type, bad field)."""
