"""The two hand-written tables of docs/reference.md name every argument and stats() key."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from leasepool import LeasedExecutorManager

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def section(start: str, end: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    return text.split(start, 1)[1].split(end, 1)[0]


def test_every_manager_argument_is_described() -> None:
    table = section("### Arguments kept from 0.1.3", "### stats()")
    named = set(re.findall(r"`\*{0,2}([a-z_]+)`", table))
    parameters = inspect.signature(LeasedExecutorManager.__init__).parameters
    missing = [name for name in parameters if name != "self" and name not in named]
    assert missing == []


async def test_every_stats_key_is_described() -> None:
    table = section("### stats()", "## ExecutorLease")
    named = set(re.findall(r"`([a-z_]+)`", table))
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        stats = manager.stats()
    finally:
        await manager.stop()
    keys = set(stats) | set(stats["counters"]) | set(stats["coordinator"])
    assert sorted(keys - named) == []
