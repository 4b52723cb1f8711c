"""Compatibility fixtures: the original 0.1.3 "Error handling" page must still be true.

The two programs below come from that page. Only their indentation was
restored (the copy we have lost it); every line is otherwise exactly as
published, blank lines included (there were none), because the point is that
code written for the original runs on this package unchanged. Do not tidy them.

The page's short snippets are checked as async tests further down.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
)

EXPIRY_PROGRAM = r'''"""
Lease expiry and revocation.
A lease has:
- soft expiry: lease_seconds
- hard expiry: lease_seconds + lease_grace_seconds
After hard expiry, new submissions through that lease are rejected.
"""
from __future__ import annotations
import asyncio
from leasepool import LeasedExecutorManager, LeaseExpiredError
def echo(value: str) -> str:
    return value
async def main() -> None:
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=1,
        min_pools=1,
        workers_per_pool=1,
        lease_grace_seconds=0.1,
        check_interval=60,
    )
    await manager.start()
    try:
        lease = await manager.acquire(
            owner="expiry-demo",
            lease_seconds=0.1,
        )
        print("Lease ID:", lease.lease_id)
        print("Soft expires at:", lease.soft_expires_at)
        print("Hard expires at:", lease.hard_expires_at)
        print("Before expiry:", await lease.run(echo, "ok"))
        await asyncio.sleep(0.25)
        try:
            lease.executor.submit(echo, "too late")
        except LeaseExpiredError as exc:
            print("Submit after hard expiry was rejected:", exc)
        print("Manager stats after expiry handling:", manager.stats())
    finally:
        await manager.stop()
if __name__ == "__main__":
    asyncio.run(main())
'''

FULL_EXCEPTION_PROGRAM = r'''"""
Common error handling patterns.
This example demonstrates the library exceptions users are most likely to handle.
"""
from __future__ import annotations
import asyncio
from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)
def echo(value: str) -> str:
    return value
async def main() -> None:
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=1,
        min_pools=1,
        lease_grace_seconds=0.05,
    )
    try:
        await manager.acquire()
    except LeasePoolNotStartedError as exc:
        print("Acquire before start failed:", exc)
    await manager.start()
    try:
        first = await manager.acquire(owner="first")
        try:
            await manager.acquire(owner="second", wait=False)
        except LeaseUnavailableError as exc:
            print("No lease available:", exc)
        await first.release()
        expiring = await manager.acquire(owner="expiring", lease_seconds=0.05)
        executor = expiring.executor
        await asyncio.sleep(0.15)
        try:
            executor.submit(echo, "too late")
        except LeaseExpiredError as exc:
            print("Lease expired:", exc)
    finally:
        await manager.stop()
if __name__ == "__main__":
    asyncio.run(main())
'''

STDERR_PROBLEMS = re.compile(r"Traceback|Exception ignored|\b\w+Warning: |never awaited")


def run_program(source: str, tmp_path: Path) -> str:
    script = tmp_path / "program.py"
    script.write_text(source, encoding="utf-8")
    environment = os.environ.copy()
    environment["PYTHONWARNINGS"] = "default"
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"exit code {result.returncode}\n--- stdout ---\n{result.stdout}\n"
        f"--- stderr ---\n{result.stderr}"
    )
    assert not STDERR_PROBLEMS.search(result.stderr), result.stderr
    return result.stdout


def line_starting(output: str, prefix: str) -> str:
    found = [line for line in output.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, f"expected one line starting {prefix!r}:\n{output}"
    return found[0]


@pytest.mark.parametrize("source", [EXPIRY_PROGRAM, FULL_EXCEPTION_PROGRAM])
def test_fixtures_are_valid_python_with_no_blank_lines(source: str) -> None:
    compile(source, "<reference page>", "exec")
    assert all(line.strip() for line in source.splitlines())


def test_expiry_program_runs_unchanged(tmp_path: Path) -> None:
    out = run_program(EXPIRY_PROGRAM, tmp_path)
    lease_id = line_starting(out, "Lease ID: ").removeprefix("Lease ID: ")
    assert lease_id
    soft = float(line_starting(out, "Soft expires at: ").removeprefix("Soft expires at: "))
    hard = float(line_starting(out, "Hard expires at: ").removeprefix("Hard expires at: "))
    assert hard - soft == pytest.approx(0.1, abs=1e-6)
    assert line_starting(out, "Before expiry: ") == "Before expiry: ok"
    line_starting(out, "Submit after hard expiry was rejected: ")
    stats_line = line_starting(out, "Manager stats after expiry handling: ")
    assert "'backend': 'thread'" in stats_line
    assert "'max_pools': 1" in stats_line
    # The order the page promises: the lease worked, then was rejected, then stats.
    assert (
        out.index("Before expiry:")
        < out.index("Submit after hard expiry was rejected:")
        < out.index("Manager stats after expiry handling:")
    )


def test_full_exception_program_runs_unchanged(tmp_path: Path) -> None:
    out = run_program(FULL_EXCEPTION_PROGRAM, tmp_path)
    assert [line.split(":", 1)[0] for line in out.splitlines()] == [
        "Acquire before start failed",
        "No lease available",
        "Lease expired",
    ], out


# ---------------------------------------------------------------------------
# The page's exception table and short snippets.


def test_exception_table() -> None:
    for exc_type in (
        LeasePoolNotStartedError,
        LeaseUnavailableError,
        LeaseExpiredError,
        UnsupportedBackendError,
    ):
        assert issubclass(exc_type, LeasePoolError)
    assert issubclass(LeasePoolError, Exception)


@pytest.fixture
async def manager() -> AsyncIterator[LeasedExecutorManager]:
    started = LeasedExecutorManager(backend="thread", max_pools=1, min_pools=1)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def test_snippet_acquire_before_start() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=1)
    handled = False
    try:
        await manager.acquire()
    except LeasePoolNotStartedError:
        handled = True
    assert handled


async def test_snippet_fail_fast_without_capacity(manager: LeasedExecutorManager) -> None:
    held = await manager.acquire(owner="holder")
    handled = False
    started = time.monotonic()
    try:
        lease = await manager.acquire(wait=False)
    except LeaseUnavailableError:
        # Return HTTP 503, retry later, or enqueue elsewhere.
        handled = True
    assert handled
    assert time.monotonic() - started < 0.5, "wait=False must not wait"

    await held.release()
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_snippet_bounded_wait_times_out(manager: LeasedExecutorManager) -> None:
    held = await manager.acquire(owner="holder")
    handled = False
    started = time.monotonic()
    try:
        lease = await manager.acquire(timeout=2.0)
    except TimeoutError:
        handled = True
    elapsed = time.monotonic() - started
    assert handled
    assert 1.9 <= elapsed < 5.0

    # The caller that timed out must not have kept a place or a slot.
    await held.release()
    lease = await manager.acquire(wait=False)
    await lease.release()


async def test_snippet_bounded_wait_succeeds_when_capacity_frees(
    manager: LeasedExecutorManager,
) -> None:
    held = await manager.acquire(owner="holder")

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        await held.release()

    releaser = asyncio.create_task(release_soon())
    try:
        lease = await manager.acquire(timeout=2.0)
    finally:
        await releaser
    assert manager.leased_count == 1
    await lease.release()
    assert manager.leased_count == 0
