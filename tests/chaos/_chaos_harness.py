"""The chaos suite's harness: worker processes, Redis control, and each scenario's figures.

A :class:`Scenario` owns everything a scenario starts (worker processes, Redis
servers, proxies) and kills all of it in :meth:`Scenario.cleanup`, whatever
happened. Its figures come from two independent witnesses: the protected
resource (the work's own timestamps, fencing) and the workers' event lines
(grants, and one outcome for every submitted job).

Invariants the figures rest on:

* Peak concurrency is counted over every interval the resource saw, accepted or
  refused, with an end sorting before a start at the same instant.
* Work lost counts jobs that announced a ``submit`` but never an outcome, in
  processes the scenario did not kill (a SIGKILLed process's jobs die with it,
  and the resource closes their intervals when it sees the socket close).
* Every failed job or acquire must carry a clear error; anything else counts as
  ``unclear`` and fails the scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _overlap import max_overlap
from _redis_server import RedisServer

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_chaos_worker.py"
REPORT_ENV = "LEASEPOOL_CHAOS_REPORT"
SESSION_START = time.time()

Event = dict[str, Any]


def crowded(rows: list[dict[str, Any]], capacity: int) -> list[dict[str, Any]]:
    """The first intervals found open together with more than ``capacity`` others (for errors)."""
    rows = sorted(rows, key=lambda r: r["start"])
    for i, row in enumerate(rows):
        together = [r for r in rows[: i + 1] if r["end"] > row["start"]]
        if len(together) > capacity:
            return together
    return []


class ChaosRedis(RedisServer):
    """A throwaway server that can also crash and come back with its data (AOF)."""

    def __init__(self, *, aof: bool = False) -> None:
        extra = ("--appendonly", "yes", "--appendfsync", "always") if aof else ()
        super().__init__(extra_args=extra)
        self.aof = aof

    def crash(self) -> None:
        """SIGKILL: no shutdown, nothing saved beyond what the AOF already has."""
        self.kill()

    def come_back(self) -> None:
        """Start again on the same port: with its AOF if it has one, else empty."""
        if not self.aof:
            self.restart()
        else:
            self.start()


class Proc:
    """One ``_chaos_worker.py`` process and the events it printed so far."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.killed = False
        self.exit_problem: str | None = None
        self.stderr_at_exit = ""
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._eof = False
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(dict(config, name=name))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                with self._cond:
                    self.events.append(json.loads(line))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()

    def of(self, ev: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e["ev"] == ev]

    def wait_for(
        self,
        ev: str,
        *,
        count: int = 1,
        timeout: float = 30.0,
        where: Callable[[Event], bool] | None = None,
    ) -> Event:
        """The ``count``-th event named ``ev`` (that ``where`` accepts); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    e for e in self.events if (not ev or e["ev"] == ev) and (not where or where(e))
                ]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    tail = "".join(self.stderr)[-2000:]
                    raise AssertionError(
                        f"{self.name}: no {ev!r} #{count} within {timeout}s "
                        f"(exited={self._eof}); last events {self.events[-5:]}; stderr {tail}"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_any(
        self, *evs: str, since: float = 0.0, count: int = 1, timeout: float = 30.0
    ) -> Event:
        """The ``count``-th event named one of ``evs``, stamped at or after ``since``."""
        return self.wait_for(
            "", count=count, timeout=timeout, where=lambda e: e["ev"] in evs and e["t"] >= since
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill9(self) -> None:
        self.killed = True
        self.process.kill()
        self.process.wait(10)

    def finish(self, timeout: float = 30.0) -> None:
        """Ask the worker to exit (after its background commands) and wait for it."""
        if self.process.poll() is None and not self.killed:
            with contextlib.suppress(OSError):
                self.send("exit")
            bye = self.wait_for("bye", timeout=timeout)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                # Recorded, not raised, so that the scenario still reports its figures.
                self.exit_problem = (
                    f"{self.name} did not exit within 10 s of stop(); tasks left after stop(): "
                    f"{bye['tasks_left']}"
                )
                self.stderr_at_exit = "".join(self.stderr)[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Scenario:
    """One chaos scenario: what it started, what it injected, and its figures."""

    def __init__(self, name: str, *, pool: str, capacity: int, resource: Any, url: str) -> None:
        self.name = name
        self.pool = pool
        self.capacity = capacity
        self.resource = resource
        self.url = url
        self.procs: list[Proc] = []
        self.closers: list[Callable[[], None]] = []
        self.faults: list[str] = []
        self.slot_back: float | None = None
        self.extra: dict[str, Any] = {}
        if capacity == 1:
            resource.fence(pool)

    def worker(self, name: str, *, url: str | None = None, **options: Any) -> Proc:
        config = {
            "url": url or self.url,
            "pool": self.pool,
            "capacity": self.capacity,
            "port": self.resource.port,
            **options,
        }
        proc = Proc(name, config)
        self.procs.append(proc)
        proc.wait_for("ready", timeout=60)
        return proc

    def fault(self, what: str) -> float:
        self.faults.append(what)
        return time.time()

    def on_cleanup(self, closer: Callable[[], None]) -> None:
        self.closers.append(closer)

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.close()
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer()

    # -- figures ------------------------------------------------------------------------

    def intervals(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.resource.intervals(self.pool)
        return rows

    def outcomes(self) -> dict[str, Any]:
        lost, unclear, submitted, grants = [], [], 0, 0
        for proc in self.procs:
            grants += len(proc.of("acquired"))
            submits = {e["job"] for e in proc.of("submit")}
            submitted += len(submits)
            done = {e["job"] for e in proc.of("job")}
            if not proc.killed:
                lost += sorted(submits - done)
            unclear += [
                e for e in proc.of("job") + proc.of("acquire_failed") if not e.get("clear", True)
            ]
        return {"grants": grants, "submitted": submitted, "lost": lost, "unclear": unclear}

    def report(self, *, peak_of: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Compute, write (JSON) and return the figures; ``peak_of`` limits the asserted peak."""
        rows = self.intervals()
        outcomes = self.outcomes()
        figures = {
            "scenario": self.name,
            "capacity": self.capacity,
            "fenced": self.capacity == 1,
            "grants": outcomes["grants"],
            "jobs": len(rows),
            "faults": self.faults,
            "peak": max_overlap((r["start"], r["end"]) for r in rows),
            "stale_rejected": sum(not r["accepted"] for r in rows),
            "work_lost": len(outcomes["lost"]),
            "unclear_errors": [e["error"] for e in outcomes["unclear"]][:10],
            "slot_back_s": self.slot_back,
            "exit_problems": [p.exit_problem for p in self.procs if p.exit_problem],
            **self.extra,
        }
        if peak_of is not None:
            figures["peak_checked"] = max_overlap(
                (r["start"], r["end"]) for r in rows if peak_of(r)
            )
        write_figures(figures)
        return figures

    def check(self, figures: dict[str, Any]) -> None:
        """The promises every scenario keeps."""
        checked = figures.get("peak_checked", figures["peak"])
        assert checked <= self.capacity, (
            f"{self.name}: peak {checked} > cap {self.capacity}; intervals "
            f"{crowded(self.intervals(), self.capacity)}"
        )
        assert figures["work_lost"] == 0, f"{self.name}: work lost {self.outcomes()['lost']}"
        assert not figures["unclear_errors"], f"{self.name}: unclear {figures['unclear_errors']}"
        assert figures["jobs"] > 0, f"{self.name}: no work reached the resource"
        stuck = [p for p in self.procs if p.exit_problem]
        assert not stuck, f"{stuck[0].exit_problem}; its stack: {stuck[0].stderr_at_exit}"


def results_dir() -> Path:
    """Where scenarios write their figures: $LEASEPOOL_CHAOS_REPORT, else a temp dir."""
    path = Path(os.environ.get(REPORT_ENV) or Path(os.environ.get("TMPDIR", "/tmp")) / "lp-chaos")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_figures(figures: dict[str, Any]) -> None:
    figures["written"] = time.time()
    target = results_dir() / f"{figures['scenario']}.json"
    target.write_text(json.dumps(figures, indent=1, sort_keys=True))


def first_after(procs: Iterable[Proc], ev: str, t0: float) -> Event | None:
    """The earliest ``ev`` event of any of ``procs`` stamped after ``t0``."""
    found = [e for p in procs for e in p.of(ev) if e["t"] >= t0]
    return min(found, key=lambda e: e["t"]) if found else None


def wait_queued(client: Any, scenario: Scenario, count: int, timeout: float = 20.0) -> None:
    """Wait until the pool's Redis queue holds ``count`` tickets."""
    key = f"leasepool:{{{scenario.pool}}}:queue"
    deadline = time.monotonic() + timeout
    while client.zcard(key) < count:
        assert time.monotonic() < deadline, f"{scenario.name}: {count} tickets never queued"
        time.sleep(0.02)


def record_verdict(name: str, passed: bool, why: str) -> None:
    """Add the test's outcome to a scenario's figures (written even if it failed early)."""
    target = results_dir() / f"{name}.json"
    figures: dict[str, Any] = {"scenario": name}
    if target.exists():
        figures = json.loads(target.read_text())
    if figures.get("written", 0) < SESSION_START:
        figures = {"scenario": name}  # a file from an older run: this one failed before it
    figures["passed"] = passed
    if not passed:
        figures["failure"] = why or "failed"
    target.write_text(json.dumps(figures, indent=1, sort_keys=True))
