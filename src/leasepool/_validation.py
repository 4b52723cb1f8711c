"""Argument validation shared by every public entry point.

The rules are those of leasepool 0.1.3, made strict: sizes are real integers
(no bools, no 0.9), durations are finite real numbers.
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
    """An integer >= 1. Rejects bools, floats (even 2.0) and integer-likes that are not ints."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be a positive integer, got {value!r}")
    result = operator.index(value)
    if result < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return result


def finite_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def positive_duration(name: str, value: object) -> float:
    """A finite number of seconds > 0."""
    result = finite_number(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return result


def non_negative_duration(name: str, value: object) -> float:
    """A finite number of seconds >= 0 (a grace of 0 means no grace)."""
    result = finite_number(name, value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return result


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
    """None (wait forever) or a finite number of seconds >= 0; 0 means one try only."""
    return None if value is None else non_negative_duration(name, value)


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
