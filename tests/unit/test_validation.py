"""Strict argument validation: every rule, each bad value, and no state change on rejection.

leasepool 0.1.3 raised ``ValueError`` for bad arguments, so every rejection here is a
``ValueError`` (wrong types are also ``TypeError``), and the message names the parameter.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

from leasepool import (
    ExecutorBackend,
    InMemoryCoordinator,
    LeasedExecutorManager,
    LeasePoolNotStartedError,
    UnsupportedBackendError,
    WorkGrinder,
)
from leasepool.testing import ManualClock

NAN = float("nan")
INF = float("inf")

# (value, expected exception type) for integer sizes: bools, fractions, non-finite,
# zero, negatives and wrong types.
BAD_SIZES: list[Any] = [True, False, 0.9, 2.5, 2.0, NAN, INF, -INF, -1, 0, "2", None, [2]]
# Durations that must be finite and > 0. Numeric strings such as "1" are accepted,
# as 0.1.3 accepted them (tests/unit/test_compat_013.py); other strings are not.
BAD_DURATIONS: list[Any] = [True, False, NAN, INF, -INF, -1, -0.5, 0, 0.0, "one", None, [1]]
# Durations where 0 is allowed (grace).
BAD_NON_NEGATIVE: list[Any] = [True, False, NAN, INF, -INF, -1, -0.001, "one", [1]]
# acquire(timeout=): as in 0.1.3 a negative timeout means "no wait" and +inf "forever";
# NaN, bools and non-numbers are refused.
BAD_TIMEOUTS: list[Any] = [True, False, NAN, "1", [1]]
WRONG_TYPES = (str, type(None), list, bool)


def assert_rejected(excinfo: pytest.ExceptionInfo[BaseException], name: str, value: Any) -> None:
    exc = excinfo.value
    assert isinstance(exc, ValueError), f"{name}={value!r} raised {type(exc).__name__}"
    assert name in str(exc), f"message does not name {name!r}: {exc}"
    if isinstance(value, WRONG_TYPES):
        # Wrong types (bools included) are also TypeErrors.
        assert isinstance(exc, TypeError), f"{name}={value!r} should be a TypeError too"


def make(**kwargs: Any) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 2)
    return LeasedExecutorManager(**kwargs)


# -- constructor: integer sizes ------------------------------------------------


@pytest.mark.parametrize("name", ["max_pools", "min_pools", "units_per_pool", "workers_per_pool"])
@pytest.mark.parametrize("value", BAD_SIZES, ids=repr)
def test_integer_sizes_reject_bad_values(name: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"max_pools": 4, name: value}
    with pytest.raises(ValueError) as excinfo:
        LeasedExecutorManager(**kwargs)
    assert_rejected(excinfo, name, value)


@pytest.mark.parametrize("name", ["max_pools", "min_pools", "units_per_pool", "workers_per_pool"])
@pytest.mark.parametrize("value", [1, 3])
def test_integer_sizes_accept_positive_ints(name: str, value: int) -> None:
    kwargs: dict[str, Any] = {"max_pools": 3, "min_pools": 1, name: value}
    manager = LeasedExecutorManager(**kwargs)
    if name == "max_pools":
        assert manager.stats()["max_pools"] == value
    if name == "workers_per_pool":
        assert manager.stats()["workers_per_pool"] == value


def test_max_pools_is_required() -> None:
    with pytest.raises(TypeError, match="max_pools"):
        LeasedExecutorManager()  # type: ignore[call-arg]


def test_min_pools_above_max_pools_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_pools"):
        LeasedExecutorManager(max_pools=2, min_pools=3)
    # Equal is fine.
    assert LeasedExecutorManager(max_pools=2, min_pools=2).stats()["min_pools"] == 2


def test_numpy_like_integers_are_accepted() -> None:
    class Index(int):
        pass

    manager = LeasedExecutorManager(max_pools=Index(2))
    assert manager.stats()["max_pools"] == 2


# -- constructor: durations ------------------------------------------------------


@pytest.mark.parametrize("name", ["check_interval", "default_lease_seconds"])
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_positive_durations_reject_bad_values(name: str, value: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        make(**{name: value})
    assert_rejected(excinfo, name, value)


@pytest.mark.parametrize("name", ["check_interval", "default_lease_seconds"])
@pytest.mark.parametrize("value", [0.001, 1, 2.5, 86400])
def test_positive_durations_accept_finite_positive(name: str, value: float) -> None:
    make(**{name: value})


@pytest.mark.parametrize("value", [*BAD_NON_NEGATIVE, None], ids=repr)
def test_lease_grace_seconds_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        make(lease_grace_seconds=value)
    assert_rejected(excinfo, "lease_grace_seconds", value)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 15])
def test_lease_grace_seconds_allows_zero(value: float) -> None:
    make(lease_grace_seconds=value)


# -- constructor: backends ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("thread", ExecutorBackend.THREAD),
        ("THREAD", ExecutorBackend.THREAD),
        ("Thread", ExecutorBackend.THREAD),
        ("process", ExecutorBackend.PROCESS),
        ("PrOcEsS", ExecutorBackend.PROCESS),
        ("interpreter", ExecutorBackend.INTERPRETER),
        (ExecutorBackend.THREAD, ExecutorBackend.THREAD),
        (ExecutorBackend.PROCESS, ExecutorBackend.PROCESS),
    ],
)
def test_backend_accepts_enum_and_case_insensitive_names(
    given: Any, expected: ExecutorBackend
) -> None:
    manager = make(backend=given)
    assert manager.backend is expected
    assert manager.stats()["backend"] == expected.value


@pytest.mark.parametrize("value", ["threads", "proc", "", "fork", None, 1, True, ["thread"]])
def test_unknown_backend_is_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match="backend"):
        make(backend=value)


def test_backend_is_a_str_enum() -> None:
    assert ExecutorBackend.THREAD == "thread"
    assert {b.value for b in ExecutorBackend} == {"thread", "process", "interpreter"}


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="interpreter backend exists on 3.14+")
async def test_interpreter_backend_is_unsupported_before_3_14() -> None:
    manager = make(backend="interpreter", max_pools=1)
    with pytest.raises(UnsupportedBackendError, match=r"3\.14"):
        await manager.start()
    # The failed start left nothing behind: not started, no executors.
    assert manager.total_count == 0
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    await manager.stop()  # a no-op, as for any manager that never started


# -- constructor: other options ------------------------------------------------------


@pytest.mark.parametrize("value", ["explode", "", None, "REJECTED", 1])
def test_hard_expiry_action_rejects_unknown(value: Any) -> None:
    with pytest.raises(ValueError, match="hard_expiry_action"):
        make(hard_expiry_action=value)


def test_hard_expiry_terminate_needs_process_backend() -> None:
    with pytest.raises(ValueError, match="hard_expiry_action"):
        make(backend="thread", hard_expiry_action="terminate")
    make(backend="process", hard_expiry_action="terminate")
    make(backend="thread", hard_expiry_action="reject")


@pytest.mark.parametrize("value", [object(), "memory", 1, InMemoryCoordinator])
def test_coordinator_type_is_checked(value: Any) -> None:
    with pytest.raises(TypeError, match="coordinator"):
        make(coordinator=value)


@pytest.mark.parametrize("value", [object(), "monotonic", 1.0])
def test_clock_type_is_checked(value: Any) -> None:
    with pytest.raises(TypeError, match="clock"):
        make(clock=value)


def test_clock_accepts_any_object_with_the_protocol() -> None:
    make(clock=ManualClock())


@pytest.mark.parametrize("value", [1, "len", object()])
def test_size_provider_must_be_callable(value: Any) -> None:
    with pytest.raises(TypeError, match="size_provider"):
        make(size_provider=value)


@pytest.mark.parametrize("value", [1, "cb", object()])
def test_on_soft_expiry_must_be_callable(value: Any) -> None:
    with pytest.raises(TypeError, match="on_soft_expiry"):
        make(on_soft_expiry=value)


@pytest.mark.parametrize("value", [None, 1, b"x"])
def test_name_prefix_must_be_a_str(value: Any) -> None:
    with pytest.raises(TypeError, match="name_prefix"):
        make(name_prefix=value)


@pytest.mark.parametrize(
    "name", ["forward_process_logs", "clear_process_log_handlers", "auto_renew"]
)
@pytest.mark.parametrize("value", [1, "yes", None])
def test_boolean_options_must_be_bools(name: str, value: Any) -> None:
    with pytest.raises(TypeError, match=name):
        make(**{name: value})


@pytest.mark.parametrize("value", ["LOUD", True, None, 1.5, ""])
def test_process_log_level_rejects_non_levels(value: Any) -> None:
    with pytest.raises(ValueError, match="process_log_level"):
        make(process_log_level=value)


@pytest.mark.parametrize("value", ["info", "WARNING", " debug ", logging.ERROR, 5])
def test_process_log_level_accepts_names_and_numbers(value: Any) -> None:
    make(process_log_level=value)


def test_process_logging_must_be_a_config() -> None:
    with pytest.raises(TypeError, match="process_logging"):
        make(process_logging={"enabled": True})


# -- acquire -------------------------------------------------------------------------


def _snapshot(manager: LeasedExecutorManager) -> dict[str, Any]:
    stats = manager.stats()
    return {
        key: stats[key] for key in ("available", "leased", "total", "leases", "waiting", "counters")
    } | {"coordinator_held": stats["coordinator"].get("held")}


@pytest.mark.parametrize("value", [*BAD_DURATIONS[:-2], "one", [1]], ids=repr)
async def test_acquire_lease_seconds_rejects_bad_values(
    make_manager: Callable[..., LeasedExecutorManager], value: Any
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    before = _snapshot(manager)
    with pytest.raises(ValueError) as excinfo:
        await manager.acquire(lease_seconds=value)
    assert_rejected(excinfo, "lease_seconds", value)
    assert _snapshot(manager) == before
    # No executor leaked: the only one can still be leased without waiting.
    lease = await manager.acquire(wait=False)
    await lease.release()


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
async def test_acquire_timeout_rejects_bad_values(
    make_manager: Callable[..., LeasedExecutorManager], value: Any
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    before = _snapshot(manager)
    with pytest.raises(ValueError) as excinfo:
        await manager.acquire(timeout=value)
    assert_rejected(excinfo, "timeout", value)
    assert _snapshot(manager) == before
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_bad_timeout_while_full_does_not_queue_a_waiter(
    make_manager: Callable[..., LeasedExecutorManager],
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    held = await manager.acquire()
    before = _snapshot(manager)
    with pytest.raises(ValueError, match="timeout"):
        await manager.acquire(timeout=NAN)
    with pytest.raises(ValueError, match="lease_seconds"):
        await manager.acquire(lease_seconds=0)
    assert _snapshot(manager) == before
    assert manager.stats()["waiting"] == 0
    await held.release()
    assert manager.available_count == 1


@pytest.mark.parametrize(("name", "value"), [("owner", 1), ("owner", b"me"), ("wait", "yes")])
async def test_acquire_owner_and_wait_types(
    make_manager: Callable[..., LeasedExecutorManager], name: str, value: Any
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    before = _snapshot(manager)
    with pytest.raises(TypeError, match=name):
        await manager.acquire(**{name: value})
    assert _snapshot(manager) == before


async def test_acquire_accepts_good_values(
    make_manager: Callable[..., LeasedExecutorManager],
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=2.5, owner="me", wait=True, timeout=0)
    assert (lease.lease_seconds, lease.owner) == (2.5, "me")
    await lease.release()
    lease = await manager.acquire(lease_seconds=1, timeout=3)
    assert lease.lease_seconds == 1.0
    await lease.release()


@pytest.mark.parametrize("value", [1, None, b"x"])
async def test_release_lease_id_must_be_a_str(
    make_manager: Callable[..., LeasedExecutorManager], value: Any
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    with pytest.raises(TypeError, match="lease_id"):
        await manager.release(value)
    assert lease.active
    assert manager.leased_count == 1


# -- renew ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, NAN, INF, -INF, -1, 0, 0.0, "1", [1]], ids=repr)
async def test_renew_seconds_rejects_bad_values(
    make_manager: Callable[..., LeasedExecutorManager], value: Any
) -> None:
    manager = make_manager(max_pools=1)
    await manager.start()
    lease = await manager.acquire(lease_seconds=10)
    soft, hard = lease.soft_expires_at, lease.hard_expires_at
    renewals = manager.stats()["counters"]["renewals"]
    with pytest.raises(ValueError) as excinfo:
        await lease.renew(value)
    assert_rejected(excinfo, "seconds", value)
    assert (lease.soft_expires_at, lease.hard_expires_at) == (soft, hard)
    assert manager.stats()["counters"]["renewals"] == renewals
    assert lease.active


# -- WorkGrinder -----------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_SIZES, ids=repr)
def test_grinder_batch_size_threshold_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        WorkGrinder(executor_manager=make(), batch_size_threshold=value)
    assert_rejected(excinfo, "batch_size_threshold", value)


@pytest.mark.parametrize("name", ["max_wait_seconds", "lease_seconds"])
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_grinder_durations_reject_bad_values(name: str, value: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        WorkGrinder(executor_manager=make(), **{name: value})
    assert_rejected(excinfo, name, value)


@pytest.mark.parametrize("value", [None, object(), "manager"])
def test_grinder_needs_a_manager(value: Any) -> None:
    with pytest.raises(TypeError, match="executor_manager"):
        WorkGrinder(executor_manager=value)


def test_grinder_owner_prefix_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="owner_prefix"):
        WorkGrinder(executor_manager=make(), owner_prefix=3)  # type: ignore[arg-type]


def test_grinder_accepts_good_values() -> None:
    grinder = WorkGrinder(
        executor_manager=make(), max_wait_seconds=0.5, batch_size_threshold=1, lease_seconds=3
    )
    stats = grinder.stats()
    assert stats["batch_size_threshold"] == 1
    assert stats["max_wait_seconds"] == 0.5
    assert stats["lease_seconds"] == 3.0


# -- coordinator and clock helpers ------------------------------------------------------


@pytest.mark.parametrize("value", [*BAD_SIZES[:-2], "2", [2]], ids=repr)
def test_memory_coordinator_capacity_is_validated(value: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        InMemoryCoordinator(capacity=value)
    assert_rejected(excinfo, "capacity", value)


@pytest.mark.parametrize("value", BAD_SIZES, ids=repr)
async def test_memory_coordinator_set_capacity_is_validated(value: Any) -> None:
    coordinator = InMemoryCoordinator(capacity=2)
    with pytest.raises(ValueError) as excinfo:
        await coordinator.set_capacity(value)
    assert_rejected(excinfo, "capacity", value)
    assert coordinator.capacity == 2


@pytest.mark.parametrize("value", ["", "a{b", "b}", None, 3])
def test_memory_coordinator_pool_name_is_validated(value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="pool"):
        InMemoryCoordinator(pool=value)


@pytest.mark.parametrize("value", [-1, NAN, INF, "1", True])
def test_manual_clock_advance_is_validated(value: Any) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(value)
    assert clock.monotonic() == 1000.0
