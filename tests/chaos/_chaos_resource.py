"""The protected resource: a separate OS process that the chaos workers' jobs use.

Run as ``python _chaos_resource.py``: it prints its loopback port, then serves
until its stdin closes. Protocol: one JSON object per line on a TCP connection.

* A job sends ``{"op": "start", "pool", "token", "job", "t"}`` and gets ``ok`` or
  ``stale``; later ``{"op": "end", "t"}``. ``t`` is the job's own ``time.time()``.
  A connection that closes without an ``end`` (its process was killed) ends its
  interval at the moment the resource saw the close.
* ``{"op": "config", "pool", "fence": bool}`` turns fencing on for a pool.
* ``{"op": "report", "pool"}`` answers with every interval of the pool so far.

Fencing (for pools of capacity 1, where it is exact): a token lower than the
highest token already accepted for the pool is refused and counted as stale.
With a larger capacity several holders legitimately use older tokens, so a
pool's fencing stays off and only concurrency is measured.

Invariants: the resource never trusts a worker's view of its lease; it keeps
every interval it was told about, accepted or refused, and counts concurrency
over all of them (a refused job still ran until the refusal).
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_FENCED: set[str] = set()
_HIGHEST: dict[str, int] = {}
_INTERVALS: dict[str, list[dict[str, Any]]] = {}


def _start(message: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    pool, token = str(message["pool"]), int(message["token"])
    with _LOCK:
        accepted = pool not in _FENCED or token >= _HIGHEST.get(pool, token)
        if accepted:
            _HIGHEST[pool] = max(_HIGHEST.get(pool, token), token)
        record = {
            "start": float(message["t"]),
            "end": None,
            "token": token,
            "job": str(message.get("job", "")),
            "accepted": accepted,
            "cut": False,
        }
        _INTERVALS.setdefault(pool, []).append(record)
    return record, accepted


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        record: dict[str, Any] | None = None
        try:
            for raw in self.rfile:
                message = json.loads(raw)
                record = self._one(message, record)
        except (OSError, ValueError):
            pass
        finally:
            if record is not None and record["end"] is None:
                with _LOCK:
                    record["end"] = time.time()
                    record["cut"] = True

    def _one(self, message: dict[str, Any], record: dict[str, Any] | None) -> Any:
        op = message.get("op")
        if op == "start":
            record, accepted = _start(message)
            self._reply(b"ok" if accepted else b"stale")
            return record
        if op == "end" and record is not None:
            with _LOCK:
                record["end"] = float(message["t"])
            self._reply(b"done")
            return record
        if op == "config":
            with _LOCK:
                if message.get("fence"):
                    _FENCED.add(str(message["pool"]))
            self._reply(b"done")
        elif op == "report":
            with _LOCK:
                now = time.time()
                rows = [
                    dict(r, end=now if r["end"] is None else r["end"], open=r["end"] is None)
                    for r in _INTERVALS.get(str(message["pool"]), [])
                ]
            self._reply(json.dumps(rows).encode())
        return record

    def _reply(self, data: bytes) -> None:
        self.wfile.write(data + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve() -> None:
    with _Server(("127.0.0.1", 0), _Handler) as server:
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()  # until the test closes our stdin (or dies)
        server.shutdown()


class Resource:
    """The test's handle on a resource process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def _ask(self, message: dict[str, Any]) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            stream = sock.makefile("rwb")
            stream.write((json.dumps(message) + "\n").encode())
            stream.flush()
            return stream.readline()

    def fence(self, pool: str) -> None:
        self._ask({"op": "config", "pool": pool, "fence": True})

    def intervals(self, pool: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self._ask({"op": "report", "pool": pool}))
        return rows

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


if __name__ == "__main__":
    serve()
