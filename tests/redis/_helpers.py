"""Helpers for the Redis tests: worker processes, server-side counters."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
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
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._queue: queue.Queue[str | None] | None = None
        self._stderr: list[str] = []
        stderr, kept = self.process.stderr, self._stderr

        def drain() -> None:  # so that a chatty worker never blocks on a full pipe
            assert stderr is not None
            for line in stderr:
                kept.append(line)

        self._stderr_thread = threading.Thread(target=drain, daemon=True)
        self._stderr_thread.start()

    def stderr_text(self) -> str:
        return "".join(self._stderr)

    def send(self, line: str) -> None:
        """Write one line to the worker's stdin (modes block, queue, storm)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _lines(self) -> queue.Queue[str | None]:
        """Stdout lines, read by a thread (None at end of output)."""
        if self._queue is None:
            self._queue = queue.Queue()
            stdout, lines = self.process.stdout, self._queue

            def pump() -> None:
                assert stdout is not None
                for line in stdout:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
        return self._queue

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next JSON line (blocking; fails on exit or after ``timeout`` s)."""
        while True:
            try:
                line = self._lines().get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"worker said nothing for {timeout}s") from None
            if line is None:
                self.process.wait(10)
                self._stderr_thread.join(5)
                stderr = self.stderr_text()
                raise AssertionError(f"worker exited {self.process.returncode}: {stderr[-3000:]}")
            if line.strip():
                parsed: dict[str, Any] = json.loads(line)
                return parsed

    def read_until(self, key: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Lines up to and including the first one that has ``key``."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.read(timeout=max(0.1, deadline - time.monotonic()))
            lines.append(line)
            if key in line:
                return lines

    def read_all(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Every line until the worker exits (it must exit with status 0)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines().get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"worker still running after {timeout}s") from None
            if line is None:
                break
            if line.strip():
                lines.append(json.loads(line))
        self.process.wait(10)
        self._stderr_thread.join(5)
        assert self.process.returncode == 0, self.stderr_text()[-3000:]
        return lines

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def commandstats(client: Any) -> dict[str, int]:
    """Server-side calls per command (sync client)."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
