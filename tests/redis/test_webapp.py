"""End to end, without Docker: the example web app under real ``uvicorn --workers 3``.

Three worker processes, each with its own manager, share one Redis capacity of 2.
Every ``POST /work`` answer carries the wall-clock start and end of the blocking
work as the worker measured them, so the test can count how many ran at once
across processes, the way ``deploy/load.py`` does under Compose.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _redis_server import free_port  # tests/ is on sys.path: conftest puts it there

_NEEDS = "the example web app needs starlette and uvicorn: pip install -r deploy/requirements.txt"
pytest.importorskip("starlette", reason=_NEEDS)
pytest.importorskip("uvicorn", reason=_NEEDS)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3
CAPACITY = 2
REQUESTS = 24
WORK_MS = 300
RAMP_SECONDS = 0.5
# Long enough that, with 24 x 0.3 s of work on 2 slots (3.6 s), no request should
# time out; a 503 would still be a legal answer, just not the expected one.
ACQUIRE_TIMEOUT = 10.0
STARTUP_SECONDS = 20.0

# Our own server on loopback: never go through a proxy named in http_proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class WebApp:
    base_url: str
    pool: str
    redis_url: str
    log: Path


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def call(url: str, method: str = "GET", timeout: float = 30.0) -> Answer:
    data = b"" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return Answer(response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, _json(exc.read()))


def _json(raw: bytes) -> dict[str, Any]:
    # Starlette's own answers (405, 404) are plain text, not JSON.
    try:
        body = json.loads(raw)
    except ValueError:
        return {"text": raw.decode(errors="replace")}
    return body if isinstance(body, dict) else {"value": body}


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    # At equal times an end (-1) sorts before a start (+1): back-to-back work
    # on a slot handed over does not count as overlapping.
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def live_leases(redis_url: str, pool: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        return int(client.zcard(f"leasepool:{{{pool}}}:leases"))
    finally:
        client.close()


def delete_pool(redis_url: str, pool: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"leasepool:{{{pool}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _wait_until_started(process: subprocess.Popen[bytes], log: Path, base_url: str) -> None:
    """Every worker has run its lifespan (so holds a started manager) and HTTP answers.

    Waiting for all workers, not just the first, gives each the same chance to
    accept connections when the burst starts.
    """
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if log.read_text().count("Application startup complete.") >= WORKERS:
            with contextlib.suppress(OSError):
                if call(f"{base_url}/healthz", timeout=2).status == 200:
                    return
        time.sleep(0.1)
    pytest.fail(f"uvicorn did not start {WORKERS} workers in time:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM for a graceful shutdown (lifespan stops each manager), SIGKILL if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # The workers are in uvicorn's own session (start_new_session): make sure none
    # outlives its parent, whatever way the parent ended.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


@pytest.fixture(scope="module")
def webapp(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    pool = f"t-webapp-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = tmp_path_factory.mktemp("webapp") / "uvicorn.log"
    env = {
        **os.environ,
        "LEASEPOOL_REDIS_URL": redis_url,
        "LEASEPOOL_POOL": pool,
        "LEASEPOOL_CAPACITY": str(CAPACITY),
        "LEASEPOOL_ACQUIRE_TIMEOUT": str(ACQUIRE_TIMEOUT),
        "LEASEPOOL_MAX_POOLS": str(CAPACITY),
        "LEASEPOOL_LEASE_SECONDS": "30",
        "LEASEPOOL_MAX_WORK_MS": "10000",
    }
    command = [
        sys.executable, "-m", "uvicorn", "deploy.webapp.app:app",
        "--app-dir", str(REPO),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(WORKERS),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = WebApp(f"http://127.0.0.1:{port}", pool, redis_url, log)
    try:
        _wait_until_started(process, log, app.base_url)
        yield app
    finally:
        code = _stop(process)
        with contextlib.suppress(Exception):
            delete_pool(redis_url, pool)
    # Only reached when the tests ran: the shutdown path (manager.stop() in the
    # lifespan) must be clean too.
    output = log.read_text()
    assert code == 0, f"uvicorn exited with {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert output.count("Application shutdown complete.") == WORKERS, output[-3000:]


def test_workers_share_one_capacity(webapp: WebApp) -> None:
    url = f"{webapp.base_url}/work?ms={WORK_MS}"
    started = time.monotonic()

    def fire(i: int) -> Answer:
        # Starts spread over RAMP_SECONDS, far less than the 3.6 s of work, so the
        # pool still fills. Connections that all arrive in one instant are often
        # accepted by one uvicorn worker, which drains the shared socket's backlog
        # at once; spread out, each connection goes to whichever worker wakes first.
        delay = started + i * RAMP_SECONDS / REQUESTS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return call(url, "POST")

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        answers = list(pool.map(fire, range(REQUESTS)))

    statuses = [answer.status for answer in answers]
    assert set(statuses) <= {200, 503}, statuses
    for answer in answers:
        if answer.status == 503:
            assert answer.body["error"] == "busy", answer.body
    served = [answer.body for answer in answers if answer.status == 200]
    assert served, statuses

    peak = max_concurrency([(body["started_at"], body["ended_at"]) for body in served])
    assert peak <= CAPACITY, f"{peak} ran at once with capacity {CAPACITY}"
    # 24 requests for 2 slots: if the pool was never full, the limit went untested.
    assert peak == CAPACITY, f"the pool never filled up: at most {peak} ran at once"

    per_pid = Counter(body["pid"] for body in served)
    assert len(per_pid) >= CAPACITY, f"requests per worker {per_pid}: too few workers served"
    tokens = [body["token"] for body in served]
    assert len(set(tokens)) == len(tokens), "fencing tokens must be unique per pool"

    # Each answer is sent after its lease was released: nothing may be left held.
    # A waiter that timed out may leave a grant being released in the background,
    # hence a short bounded wait instead of one look.
    deadline = time.monotonic() + 5
    while live_leases(webapp.redis_url, webapp.pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_leases(webapp.redis_url, webapp.pool) == 0


def test_stats_health_and_bad_input(webapp: WebApp) -> None:
    health = call(f"{webapp.base_url}/healthz")
    assert health.status == 200
    assert health.body["status"] == "ok"

    stats = call(f"{webapp.base_url}/stats")
    assert stats.status == 200
    assert stats.body["backend"] == "thread"
    assert stats.body["max_pools"] == CAPACITY
    coordinator = stats.body["coordinator"]
    assert coordinator["kind"] == "redis"
    assert coordinator["pool"] == webapp.pool
    assert coordinator["capacity"] == CAPACITY
    pool = stats.body["pool"]  # read from Redis by the app, not cached
    assert pool["name"] == webapp.pool
    assert pool["capacity"] == CAPACITY
    assert 0 <= pool["leased"] <= CAPACITY

    for bad in ("abc", "-1", "10001"):
        answer = call(f"{webapp.base_url}/work?ms={bad}", "POST")
        assert answer.status == 400, (bad, answer)
    assert call(f"{webapp.base_url}/work", "GET").status == 405


def test_load_script_reports_within_capacity(webapp: WebApp) -> None:
    """deploy/load.py, which the Compose ``load`` service runs, against the same app."""
    command = [
        sys.executable, str(REPO / "deploy" / "load.py"),
        "--url", webapp.base_url,
        "--requests", "12",
        "--concurrency", "12",
        "--ms", "100",
        "--wait", "10",
        "--json",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["capacity"] == CAPACITY  # read from GET /stats
    assert summary["within_capacity"] is True
    assert 1 <= summary["max_concurrency"] <= CAPACITY
    assert set(summary["status"]) <= {"200", "503"}
