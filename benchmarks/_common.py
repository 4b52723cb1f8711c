"""Small helpers shared by the benchmark scripts.

Standard library only: scripts also run this module inside throwaway venvs that hold a
published leasepool release, where nothing else is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

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
