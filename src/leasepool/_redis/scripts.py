"""The Lua scripts, loaded once and registered on a client.

The ``.lua`` files live in the top-level ``lua/`` folder of the source tree;
the wheel ships them as ``leasepool/lua/``. Every script but ``init.lua`` runs
with ``_shared.lua`` (local helper functions, no operation of its own)
prepended. They run through redis-py script objects, which send ``EVALSHA``
and reload the script after ``NOSCRIPT`` (a restarted or flushed server).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SCRIPT_NAMES = (
    "init",
    "acquire",
    "release",
    "renew",
    "heartbeat",
    "reclaim",
    "set_capacity",
    "revoke",
    "status",  # read-only: run it with EVALSHA_RO (see lua/status.lua)
)
SHARED = "_shared"
"""Helpers prepended to every script but ``init``."""


def _source_checkout_dir() -> Path:
    # src/leasepool/_redis/scripts.py -> <checkout>/lua
    return Path(__file__).resolve().parents[3] / "lua"


@functools.cache
def script_source(name: str) -> str:
    """The text of ``lua/<name>.lua``: from the installed package, else the source checkout."""
    if name not in SCRIPT_NAMES and name != SHARED:
        raise ValueError(f"unknown script {name!r}")
    filename = f"{name}.lua"
    packaged = resources.files("leasepool").joinpath("lua", filename)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    fallback = _source_checkout_dir() / filename
    if fallback.is_file():
        return fallback.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"leasepool's Lua script {filename} is missing: neither the installed package "
        f"(leasepool/lua/) nor the source checkout ({fallback.parent}) has it"
    )


@functools.cache
def loaded_source(name: str) -> str:
    """What is sent to Redis for ``name``: the script, after ``_shared.lua`` unless init."""
    text = script_source(name)
    if name == "init":
        return text
    return f"{script_source(SHARED)}\n-- ---- {name}.lua ----\n{text}"


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts registered on one client (each an ``AsyncScript``)."""

    init: Any
    acquire: Any
    release: Any
    renew: Any
    heartbeat: Any
    reclaim: Any
    set_capacity: Any
    revoke: Any
    status: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(**{name: client.register_script(loaded_source(name)) for name in SCRIPT_NAMES})
