"""Every public class, function, method and property has a docstring (IDE help, and the
API reference that mkdocstrings builds from them: docs/reference.md)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import leasepool
import leasepool.testing


def _public_api() -> Iterator[tuple[str, Any]]:
    modules: list[Any] = [leasepool, leasepool.testing]
    prometheus = pytest.importorskip("leasepool.prometheus")
    modules.append(prometheus)
    for module in modules:
        for name in module.__all__:
            if name != "__version__":
                yield f"{module.__name__}.{name}", getattr(module, name)


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties that ``cls`` defines or inherits from leasepool, as
    the function (or property) of the class that defines it."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("leasepool"):
            continue  # inherited from builtins or the stdlib: documented there
        raw = vars(owner)[name]
        if isinstance(raw, staticmethod | classmethod):
            yield name, raw.__func__
        elif isinstance(raw, property) or inspect.isfunction(raw):
            yield name, raw


def test_every_public_object_and_member_has_a_docstring() -> None:
    missing = []
    for path, obj in _public_api():
        if isinstance(obj, dict | str | int):
            continue  # data: documented where it is defined
        if not inspect.getdoc(obj):
            missing.append(path)
        if inspect.isclass(obj):
            # getdoc also finds the docstring of the interface method a class implements
            # (Coordinator.acquire for RedisCoordinator.acquire), as IDEs show it.
            missing += [
                f"{path}.{name}" for name, member in _members(obj) if not inspect.getdoc(member)
            ]
    assert missing == []


def test_the_walk_finds_the_members_it_must() -> None:
    """Guard the test above against walking nothing."""
    found = {path for path, _ in _public_api()}
    assert {"leasepool.RedisCoordinator", "leasepool.LeasedExecutorManager"} <= found
    members = dict(_members(leasepool.RedisCoordinator))
    assert {"status", "revoke", "set_capacity", "from_url", "from_env", "pool"} <= set(members)
