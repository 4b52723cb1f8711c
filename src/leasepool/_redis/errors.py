"""Turn redis-py exceptions into leasepool's own errors.

Unreachable servers, timeouts, refused commands (ACL, read-only replica, busy
script) become :class:`CoordinatorUnavailableError`; state that leasepool did
not write (a wrong key type, a corrupt field) becomes
:class:`CoordinatorStateError`. Messages go through :func:`scrub`, so no
password ever reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable

from leasepool._errors import CoordinatorStateError, CoordinatorUnavailableError, LeasePoolError
from leasepool._redis.url import scrub
from redis import exceptions as redis_exceptions

STATE_CODE = "LEASEPOOL_STATE"

REDIS_ERRORS: tuple[type[BaseException], ...] = (redis_exceptions.RedisError, OSError)
"""What a redis-py call can raise besides cancellation (OSError: socket trouble)."""


def is_wrongtype(exc: BaseException) -> bool:
    return isinstance(exc, redis_exceptions.ResponseError) and "WRONGTYPE" in str(exc)


def translate(
    exc: BaseException, *, action: str, target: str, secrets: Iterable[str | None] = ()
) -> LeasePoolError:
    """The leasepool error for ``exc``, raised while doing ``action`` against ``target``."""
    detail = scrub(f"{type(exc).__name__}: {exc}", *secrets)
    if isinstance(exc, redis_exceptions.ResponseError):
        text = scrub(str(exc), *secrets)
        if text.startswith(STATE_CODE):
            return CoordinatorStateError(f"{action}: {text[len(STATE_CODE) :].strip()}")
        if "WRONGTYPE" in text:
            return CoordinatorStateError(
                f"{action}: a key of the pool holds the wrong type: {text}"
            )
        return CoordinatorUnavailableError(f"{action}: Redis at {target} refused: {detail}")
    return CoordinatorUnavailableError(f"{action}: cannot reach Redis at {target}: {detail}")
