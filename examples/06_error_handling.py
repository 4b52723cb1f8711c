"""Step 06: every error you are expected to handle.

What it teaches, one section per error:

* ``LeasePoolNotStartedError``: ``acquire()`` before ``start()``;
* ``LeaseUnavailableError``: ``acquire(wait=False)`` with every executor leased;
* ``TimeoutError`` (the builtin): ``acquire(timeout=...)`` ran out of time;
* ``LeaseExpiredError``: submitting through a released or hard-expired lease;
* ``UnsupportedBackendError``: ``backend="interpreter"`` before Python 3.14;
* ``ValueError``: bad arguments, rejected up front instead of being coerced
  (a wrong type raises an error that is both a ``ValueError`` and a ``TypeError``).

All leasepool errors derive from ``LeasePoolError``, so one ``except`` clause can
catch them together; ``TimeoutError`` and ``ValueError`` are the builtins.

Run it: ``python examples/06_error_handling.py``
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
)


def echo(value: str) -> str:
    return value


def report(exc: BaseException) -> None:
    family = "a LeasePoolError" if isinstance(exc, LeasePoolError) else "a builtin"
    print(f"{type(exc).__name__} ({family}): {exc}")


async def not_started() -> None:
    print("-- acquire before start")
    manager = LeasedExecutorManager(backend="thread", max_pools=1)
    try:
        await manager.acquire()
    except LeasePoolNotStartedError as exc:
        report(exc)


async def capacity_errors() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=1, lease_grace_seconds=0.05)
    await manager.start()
    try:
        held = await manager.acquire(owner="holder")

        print("-- no capacity, fail fast")
        try:
            await manager.acquire(owner="fail-fast", wait=False)
        except LeaseUnavailableError as exc:
            report(exc)

        print("-- no capacity, bounded wait")
        try:
            await manager.acquire(owner="bounded", timeout=0.1)
        except TimeoutError as exc:
            report(exc)

        print("-- submit after release")
        await held.release()
        try:
            held.executor.submit(echo, "after release")
        except LeaseExpiredError as exc:
            report(exc)

        print("-- submit after hard expiry")
        expiring = await manager.acquire(owner="expiring", lease_seconds=0.05)
        await asyncio.sleep(0.25)
        try:
            expiring.executor.submit(echo, "too late")
        except LeaseExpiredError as exc:
            report(exc)
    finally:
        await manager.stop()


async def unsupported_backend() -> None:
    print("-- interpreter backend")
    # Depending on the version the check happens in the constructor or in
    # start(), so both sit inside the try.
    try:
        manager = LeasedExecutorManager(backend="interpreter", max_pools=1)
        await manager.start()
    except UnsupportedBackendError as exc:
        report(exc)
        return
    try:
        print(f"Python {sys.version_info.major}.{sys.version_info.minor} supports it")
    finally:
        await manager.stop()


async def bad_arguments() -> None:
    print("-- bad arguments")
    bad_constructors: list[dict[str, Any]] = [
        {"max_pools": 0},
        {"max_pools": True},
        {"max_pools": 1, "workers_per_pool": 0.9},
        {"max_pools": 1, "lease_grace_seconds": float("nan")},
        {"max_pools": 1, "backend": "gpu"},
    ]
    for kwargs in bad_constructors:
        try:
            LeasedExecutorManager(**kwargs)
        except ValueError as exc:
            # Wrong types may come as a subclass that is also a TypeError.
            print(f"{kwargs} rejected, {type(exc).__name__}: {exc}")

    manager = LeasedExecutorManager(backend="thread", max_pools=1)
    await manager.start()
    try:
        await manager.acquire(lease_seconds=-1)
    except ValueError as exc:
        print(f"acquire(lease_seconds=-1) rejected, {type(exc).__name__}: {exc}")
    finally:
        await manager.stop()


async def main() -> None:
    await not_started()
    await capacity_errors()
    await unsupported_backend()
    await bad_arguments()


if __name__ == "__main__":
    asyncio.run(main())
