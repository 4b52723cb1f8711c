"""The layers of ``leasepool._redis`` hold as its package docstring states them.

The docstring lists the modules from the bottom layer up; each module may import only
modules listed before it. The waiting state machine and the protocol do no I/O: they
import neither asyncio, nor redis-py, nor anything that reads a clock or a socket.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import leasepool._redis

PACKAGE = Path(leasepool._redis.__file__).resolve().parent
IO_FREE = ("protocol", "waiting_events", "waiting_clock", "waiting", "deadlines")
IO_MODULES = {"asyncio", "redis", "socket", "time", "selectors", "threading"}


def documented_order() -> list[str]:
    doc = leasepool._redis.__doc__ or ""
    return re.findall(r"``([a-z_]+)``", doc)


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(modules of this package it imports, top-level names of everything else it imports)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("leasepool._redis."):
                ours.add(node.module.rsplit(".", 1)[1])
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others.update(alias.name.split(".")[0] for alias in node.names)
    return ours, others


def test_the_docstring_lists_every_module_once() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    order = documented_order()
    assert len(order) == len(set(order))
    assert sorted(order) == modules


@pytest.mark.parametrize("module", documented_order())
def test_a_module_imports_only_lower_layers(module: str) -> None:
    order = documented_order()
    ours, _ = imports_of(module)
    higher = sorted(m for m in ours if order.index(m) >= order.index(module))
    assert not higher, f"{module} imports {higher}, listed at or above it"


@pytest.mark.parametrize("module", IO_FREE)
def test_the_state_machine_and_the_protocol_do_no_io(module: str) -> None:
    _, others = imports_of(module)
    assert not others & IO_MODULES, f"{module} imports {sorted(others & IO_MODULES)}"
