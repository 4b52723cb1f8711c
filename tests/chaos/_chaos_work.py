"""The work the chaos workers run on their leased executors.

Each job opens one connection to the protected resource (``_chaos_resource.py``),
announces itself with its pool, fencing token and start time, holds the resource
for ``hold`` seconds and reports its end time. The timestamps are taken inside
the work itself (``time.time()``: one clock for every process on the host), so
the resource measures concurrency from what the work did, not from what the
leases claimed. A resource that refuses the token makes the job raise
:class:`StaleTokenError` at once, without holding the resource.

This module is imported by executor workers (threads, or child processes of the
process backend), so it must stay importable on its own: stdlib only.
"""

from __future__ import annotations

import io
import json
import socket
import time
from typing import BinaryIO


class StaleTokenError(Exception):
    """The protected resource refused the job's fencing token as stale."""


def _send(stream: io.BufferedIOBase | BinaryIO, message: dict[str, object]) -> None:
    stream.write((json.dumps(message) + "\n").encode())
    stream.flush()


def job(port: int, pool: str, token: int, hold: float, job_id: str) -> tuple[float, float]:
    """Use the resource for ``hold`` seconds under ``token``; return (start, end)."""
    start = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        stream = sock.makefile("rwb")
        _send(stream, {"op": "start", "pool": pool, "token": token, "job": job_id, "t": start})
        reply = stream.readline().strip()
        if reply != b"ok":
            _send(stream, {"op": "end", "t": time.time()})
            stream.readline()
            raise StaleTokenError(f"resource refused token {token} of pool {pool!r}: {reply!r}")
        time.sleep(hold)
        end = time.time()
        _send(stream, {"op": "end", "t": end})
        stream.readline()
    return start, end
