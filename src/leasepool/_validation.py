"""Argument validation shared by every public entry point.

The rules are those of leasepool 0.1.3, made strict where 0.1.3 let nonsense
through: sizes are real integers (no bools, no 0.9), durations are finite.

Invariant: every message starts with 0.1.3's wording for the same mistake
("max_pools must be > 0", "check_interval must be a finite number > 0", ...),
so a ``pytest.raises(match=...)`` written against 0.1.3 still matches; the
value we got follows.
"""

from __future__ import annotations

import math
import numbers
import operator


class ArgumentTypeError(TypeError, ValueError):
    """A wrong-typed argument.

    It is a ``TypeError``, and also a ``ValueError`` because leasepool 0.1.3
    raised ``ValueError`` for these and code written for it catches that.
    """


def positive_int(name: str, value: object) -> int:
    """An integer >= 1: an ``int`` or anything with ``__index__`` (numpy integers), as in
    0.1.3. Rejects bools and floats, even 2.0."""
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an integer > 0, got {value!r}")
    try:
        result = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(f"{name} must be an integer > 0, got {value!r}") from None
    if result < 1:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result


def _bound(allow_zero: bool) -> str:
    return ">= 0" if allow_zero else "> 0"


def finite_number(name: str, value: object, *, allow_zero: bool | None = None) -> float:
    """A finite real number (no bools). ``allow_zero`` only picks the bound named in
    the message, for the duration checks below."""
    wording = "a real number" if allow_zero is None else f"a finite number {_bound(allow_zero)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be {wording}, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be {wording}, got {value!r}")
    return result


def _in_range(name: str, value: object, result: float, allow_zero: bool) -> float:
    if result < 0 or (result == 0 and not allow_zero):
        raise ValueError(f"{name} must be {_bound(allow_zero)} seconds, got {value!r}")
    return result


def positive_duration(name: str, value: object) -> float:
    """A finite number of seconds > 0."""
    return _in_range(name, value, finite_number(name, value, allow_zero=False), False)


def non_negative_duration(name: str, value: object) -> float:
    """A finite number of seconds >= 0 (a grace of 0 means no grace)."""
    return _in_range(name, value, finite_number(name, value, allow_zero=True), True)


def _as_float_like_013(name: str, value: object, allow_zero: bool) -> float:
    # 0.1.3 converted its durations with float(): numeric strings such as "2.5"
    # (and anything with __float__) were accepted, and code written for it may pass them.
    if isinstance(value, (numbers.Real, bool)):
        return finite_number(name, value, allow_zero=allow_zero)
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"{name} must be a finite number {_bound(allow_zero)}, got {value!r}"
        ) from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number {_bound(allow_zero)}, got {value!r}")
    return result


def compat_positive_duration(name: str, value: object) -> float:
    """For the durations 0.1.3 had: like :func:`positive_duration`, and numeric strings too."""
    return _in_range(name, value, _as_float_like_013(name, value, False), False)


def compat_non_negative_duration(name: str, value: object) -> float:
    """For ``lease_grace_seconds``: like :func:`non_negative_duration`, and numeric strings."""
    return _in_range(name, value, _as_float_like_013(name, value, True), True)


def optional_positive_duration(name: str, value: object) -> float | None:
    return None if value is None else positive_duration(name, value)


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a bool, got {value!r}")
    return value


def optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a str or None, got {value!r}")
    return value


def optional_timeout(name: str, value: object) -> float | None:
    """How long ``acquire`` may wait: None or +inf wait forever; 0 or less means one
    try only (0.1.3 read a negative timeout that way too). NaN is refused: it would
    make the deadline never come."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number of seconds or None, got {value!r}")
    result = float(value)
    if math.isnan(result):
        raise ValueError(f"{name} must be a number of seconds or None, got {value!r}")
    if result == math.inf:
        return None
    return max(result, 0.0)


MAX_CAPACITY = 1_000_000
"""The largest global capacity a pool may have. With 0 (a paused pool) it bounds the one
range of capacities that the constructor, the CLI and the Lua scripts all accept: every
value in it is exact in a Lua double and prints without an exponent."""


def capacity_value(name: str, value: object) -> int:
    """A pool capacity: an integer from 0 (paused: nothing is granted) to MAX_CAPACITY."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            f"{name} must be an integer from 0 to {MAX_CAPACITY}, got {value!r}"
        )
    result = operator.index(value)
    if not 0 <= result <= MAX_CAPACITY:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_CAPACITY}, got {value!r}")
    return result
