"""Validation of the manager's keyword-only additions (everything past 0.1.3's options)."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from leasepool._backends import ExecutorBackend, ExecutorOptions
from leasepool._clock import Clock
from leasepool._serialization import validate_serializer
from leasepool._validation import non_negative_duration, positive_int

HardExpiryAction = Literal["reject", "terminate"]

DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds ``stop()`` waits for running work before it kills process workers."""


def check_stop_timeout(value: object) -> float:
    """``stop_timeout``: a finite number of seconds >= 0 (0: do not wait for running work)."""
    return non_negative_duration("stop_timeout", value)


def check_clock(clock: object) -> Clock | None:
    if clock is None:
        return None
    if isinstance(clock, type) or not (
        callable(getattr(clock, "monotonic", None)) and callable(getattr(clock, "call_at", None))
    ):
        raise TypeError(f"clock must be an instance with monotonic() and call_at(), got {clock!r}")
    return clock  # type: ignore[return-value]


def check_hard_expiry_action(action: object, backend: ExecutorBackend) -> HardExpiryAction:
    if action == "reject":
        return "reject"
    if action != "terminate":
        raise ValueError(f"hard_expiry_action must be 'reject' or 'terminate', got {action!r}")
    if backend is not ExecutorBackend.PROCESS:
        raise ValueError(
            "hard_expiry_action='terminate' needs backend='process': "
            f"{backend.value} workers cannot be killed"
        )
    return "terminate"


def process_options(
    backend: ExecutorBackend, serializer: object, prewarm: bool, executor_kwargs: dict[str, Any]
) -> ExecutorOptions:
    """Validate the process-backend options up front; the executor options they make."""
    chosen = validate_serializer(serializer)
    if chosen == "cloudpickle":
        if backend is ExecutorBackend.THREAD:
            raise ValueError(
                "serializer='cloudpickle' needs backend='process' or 'interpreter': "
                "thread workers share the caller's memory and pickle nothing"
            )
        import cloudpickle  # type: ignore[import-untyped]  # noqa: F401  (fail now if missing)
    if "max_tasks_per_child" in executor_kwargs:
        tasks = executor_kwargs["max_tasks_per_child"]
        if backend is not ExecutorBackend.PROCESS:
            raise ValueError(
                f"max_tasks_per_child={tasks!r} is a ProcessPoolExecutor option: "
                f"it needs backend='process', got backend={backend.value!r}"
            )
        if tasks is not None:
            positive_int("max_tasks_per_child", tasks)
            context = executor_kwargs.get("mp_context")
            method = None
            if context is not None:
                with contextlib.suppress(Exception):
                    method = context.get_start_method(allow_none=False)
            if method == "fork":
                raise ValueError(
                    f"max_tasks_per_child={tasks!r} cannot be used with a 'fork' mp_context "
                    "(workers replaced while threads run could deadlock): pass "
                    "mp_context=multiprocessing.get_context('spawn') or 'forkserver', "
                    "or no mp_context (then 'spawn' is used)"
                )
    return ExecutorOptions(
        serializer=chosen, prewarm=prewarm and backend is ExecutorBackend.PROCESS
    )
