"""The manager's configuration: every constructor argument, validated once, frozen.

Invariants:

* :func:`build_config` is the only place the manager's arguments are checked; a
  :class:`ManagerConfig` that exists holds only valid, normalised values
  (durations as ``float``, sizes as ``int``, the backend as an enum, a real
  clock, a coordinator instance).
* Checks run in the order 0.1.3 ran them, with 0.1.3's messages, so the first
  bad argument is the one reported.
* Building a config has no side effects beyond importing ``cloudpickle`` when it
  is asked for (to fail early when it is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from leasepool._backends import ExecutorBackend, ExecutorOptions, normalize_backend
from leasepool._clock import MONOTONIC_CLOCK, Clock
from leasepool._coordinator import Coordinator
from leasepool._lease import SoftExpiryCallback
from leasepool._memory import InMemoryCoordinator
from leasepool._options import (
    HardExpiryAction,
    check_clock,
    check_hard_expiry_action,
    check_stop_timeout,
    process_options,
)
from leasepool._process_logging import ProcessLoggingConfig, log_level
from leasepool._validation import (
    boolean,
    compat_non_negative_duration,
    compat_positive_duration,
    positive_int,
)


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """What a :class:`~leasepool.LeasedExecutorManager` was built with, after validation."""

    backend: ExecutorBackend
    max_pools: int
    min_pools: int
    units_per_pool: int
    size_provider: Callable[[], int] | None
    check_interval: float
    default_lease_seconds: float
    lease_grace_seconds: float
    workers_per_pool: int
    name_prefix: str
    logger: logging.Logger
    process_logging: ProcessLoggingConfig
    coordinator: Coordinator
    clock: Clock
    on_soft_expiry: SoftExpiryCallback | None
    hard_expiry_action: HardExpiryAction
    auto_renew: bool
    executor_options: ExecutorOptions
    max_leases_per_executor: int | None
    stop_timeout: float
    executor_kwargs: Mapping[str, Any]
    """Passed to every new executor (a copy of the caller's ``**executor_kwargs``)."""


def _sizes(max_pools: object, min_pools: object) -> tuple[int, int]:
    checked_max = positive_int("max_pools", max_pools)
    checked_min = positive_int("min_pools", min_pools)
    if checked_min > checked_max:
        raise ValueError(
            "min_pools cannot be greater than max_pools: "
            f"min_pools={checked_min}, max_pools={checked_max}"
        )
    return checked_max, checked_min


def _process_logging(
    backend: ExecutorBackend,
    process_logging: object,
    forward_process_logs: object,
    process_log_level: int | str,
    process_log_target_logger: logging.Logger | None,
    clear_process_log_handlers: object,
) -> ProcessLoggingConfig:
    forward = boolean("forward_process_logs", forward_process_logs)
    if process_logging is None:
        config = ProcessLoggingConfig(
            enabled=forward,
            level=log_level(process_log_level),
            target_logger=process_log_target_logger,
            clear_child_handlers=boolean("clear_process_log_handlers", clear_process_log_handlers),
        )
    elif not isinstance(process_logging, ProcessLoggingConfig):
        raise TypeError(f"process_logging must be a ProcessLoggingConfig, got {process_logging!r}")
    elif (
        forward
        or process_log_level != logging.INFO
        or process_log_target_logger is not None
        or clear_process_log_handlers is not True
    ):
        raise ValueError(
            "Pass either process_logging or the forward_process_logs/process_log_* "
            "arguments, not both."
        )
    else:
        config = process_logging
    if config.enabled and backend is not ExecutorBackend.PROCESS:
        raise ValueError(
            "process log forwarding is only supported for process backend, "
            f"not backend={backend.value!r}"
        )
    return config


def _callable_or_none(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


def build_config(
    *,
    backend: ExecutorBackend | str,
    max_pools: int,
    min_pools: int,
    units_per_pool: int,
    size_provider: Callable[[], int] | None,
    check_interval: float,
    default_lease_seconds: float,
    lease_grace_seconds: float,
    workers_per_pool: int,
    name_prefix: str,
    logger: logging.Logger | None,
    process_logging: ProcessLoggingConfig | None,
    forward_process_logs: bool,
    process_log_level: int | str,
    process_log_target_logger: logging.Logger | None,
    clear_process_log_handlers: bool,
    coordinator: Coordinator | None,
    clock: Clock | None,
    on_soft_expiry: SoftExpiryCallback | None,
    hard_expiry_action: HardExpiryAction,
    auto_renew: bool,
    serializer: object,
    prewarm: bool,
    max_leases_per_executor: int | None,
    stop_timeout: float,
    executor_kwargs: dict[str, Any],
) -> ManagerConfig:
    """Check every argument of ``LeasedExecutorManager(...)``; raise on the first bad one."""
    checked_backend = normalize_backend(backend)
    checked_max, checked_min = _sizes(max_pools, min_pools)
    units = positive_int("units_per_pool", units_per_pool)
    _callable_or_none("size_provider", size_provider)
    interval = compat_positive_duration("check_interval", check_interval)
    lease_seconds = compat_positive_duration("default_lease_seconds", default_lease_seconds)
    grace = compat_non_negative_duration("lease_grace_seconds", lease_grace_seconds)
    workers = positive_int("workers_per_pool", workers_per_pool)
    if not isinstance(name_prefix, str):
        raise TypeError(f"name_prefix must be a str, got {name_prefix!r}")
    if coordinator is not None and not isinstance(coordinator, Coordinator):
        raise TypeError(f"coordinator must be a leasepool Coordinator, got {coordinator!r}")
    checked_clock = check_clock(clock) or MONOTONIC_CLOCK
    _callable_or_none("on_soft_expiry", on_soft_expiry)
    action = check_hard_expiry_action(hard_expiry_action, checked_backend)
    renew = boolean("auto_renew", auto_renew)
    options = process_options(
        checked_backend, serializer, boolean("prewarm", prewarm), executor_kwargs
    )
    bound = check_stop_timeout(stop_timeout)
    per_executor = (
        None
        if max_leases_per_executor is None
        else positive_int("max_leases_per_executor", max_leases_per_executor)
    )
    logs = _process_logging(
        checked_backend,
        process_logging,
        forward_process_logs,
        process_log_level,
        process_log_target_logger,
        clear_process_log_handlers,
    )
    return ManagerConfig(
        backend=checked_backend,
        max_pools=checked_max,
        min_pools=checked_min,
        units_per_pool=units,
        size_provider=size_provider,
        check_interval=interval,
        default_lease_seconds=lease_seconds,
        lease_grace_seconds=grace,
        workers_per_pool=workers,
        name_prefix=name_prefix,
        logger=logger or logging.getLogger("leasepool"),
        process_logging=logs,
        # Made only once every argument is known good: a bad call leaves nothing behind.
        coordinator=coordinator or InMemoryCoordinator(),
        clock=checked_clock,
        on_soft_expiry=on_soft_expiry,
        hard_expiry_action=action,
        auto_renew=renew,
        executor_options=options,
        max_leases_per_executor=per_executor,
        stop_timeout=bound,
        executor_kwargs=dict(executor_kwargs),
    )
