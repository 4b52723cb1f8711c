"""Helpers for the Redis tests: worker processes, server-side counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKER = Path(__file__).resolve().parent / "_worker.py"


class Worker:
    """A ``_worker.py`` OS process whose JSON lines are read as they come."""

    def __init__(self, mode: str, url: str, pool: str, capacity: int, **opts: Any) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), mode, url, pool, str(capacity), json.dumps(opts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next JSON line (blocking; fails on exit or after ``timeout`` s)."""
        import selectors

        assert self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise AssertionError(f"worker said nothing for {timeout}s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"worker exited {self.process.returncode}: {stderr[-3000:]}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def read_all(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Every line until the worker exits (it must exit with status 0)."""
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err[-3000:]
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The highest number of intervals open at once (an end sorts before a start)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def commandstats(client: Any) -> dict[str, int]:
    """Server-side calls per command (sync client)."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
