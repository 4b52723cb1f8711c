"""How the ``leasepool`` command shows pools: text tables and JSON objects.

Pure functions of the data: no I/O, no terminal codes (the caller decides where
output goes and whether it may redraw a screen).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leasepool._coordinator import PoolStatus

MAX_WAITERS_SHOWN = 10


def age(ms: int) -> str:
    """A duration in milliseconds, short: ``4.2s``, ``3.5m``, ``2.0h``."""
    seconds = ms / 1000
    if abs(seconds) < 120:
        return f"{seconds:.1f}s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def capacity_text(capacity: int | None) -> str:
    """``unset`` (no capacity stored) or the number (0 means paused)."""
    return "unset" if capacity is None else str(capacity)


def _headline(status: PoolStatus) -> str:
    waiting = f", {status.waiting} waiting" if status.waiting else ""
    paused = " (paused: capacity 0)" if status.capacity == 0 else ""
    cap = capacity_text(status.capacity)
    return f"pool {status.pool}: {len(status.leases)}/{cap} leased{waiting}{paused}"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        ("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def format_status(status: PoolStatus) -> str:
    """A pool as text: a headline, who waits, and one row per live lease."""
    lines = [_headline(status)]
    waiters = status.waiters
    if waiters:
        shown = ", ".join(f"{w.host}:{w.pid} {w.count}" for w in waiters[:MAX_WAITERS_SHOWN])
        extra = len(waiters) - MAX_WAITERS_SHOWN
        more = f", ... {extra} more processes" if extra > 0 else ""
        lines.append(f"  waiting per process: {shown}{more}")
    if not status.leases:
        return "\n".join([*lines, "  (no live leases)"])
    rows = [("LEASE", "OWNER", "HOST:PID", "TOKEN", "AGE", "LEFT")]
    for lease in status.leases:
        rows.append(
            (
                lease.lease_id,
                lease.owner or "-",
                f"{lease.host}:{lease.pid}",
                str(lease.token),
                age(status.now_ms - lease.acquired_ms),
                age(lease.hard_ms - status.now_ms),
            )
        )
    return "\n".join(lines + _table(rows))


def status_json(status: PoolStatus) -> dict[str, Any]:
    """A pool as a JSON-ready dict (the shape ``status --json`` prints)."""
    return {
        "pool": status.pool,
        "capacity": status.capacity,
        "paused": status.capacity == 0,
        "waiting": status.waiting,
        "waiters": [{"host": w.host, "pid": w.pid, "count": w.count} for w in status.waiters],
        "now_ms": status.now_ms,
        "leases": [
            {
                "lease_id": lease.lease_id,
                "owner": lease.owner,
                "host": lease.host,
                "pid": lease.pid,
                "token": lease.token,
                "acquired_ms": lease.acquired_ms,
                "soft_ms": lease.soft_ms,
                "hard_ms": lease.hard_ms,
                "age_ms": status.now_ms - lease.acquired_ms,
                "left_ms": lease.hard_ms - status.now_ms,
            }
            for lease in status.leases
        ],
    }
