"""The Lua scripts, loaded once and registered on a client.

The ``.lua`` files live in the top-level ``lua/`` folder of the source tree;
the wheel ships them as ``leasepool/lua/``. Every script but ``init.lua`` runs
with ``_shared.lua`` (constants and local helper functions, no operation of its
own): its base (everything above its ``-- @helpers`` line) first, its helpers
at the script's own ``-- @helpers`` line when it has one, else right after the
base. So a fast path placed before that line returns before the helpers'
closures are made, which every call would pay for. They run through redis-py
script objects, which send ``EVALSHA`` and reload the script after ``NOSCRIPT``
(a restarted or flushed server).
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
"""Helpers included in every script but ``init``."""
HELPERS_MARK = "-- @helpers"
"""The line of ``_shared.lua`` where its helpers start, and of a script where they go."""


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


def _split_at_mark(text: str) -> tuple[str, str]:
    """``text`` before the first line that starts with :data:`HELPERS_MARK`, and from it."""
    at = text.find("\n" + HELPERS_MARK)
    if text.startswith(HELPERS_MARK):
        at = -1
    elif at < 0:
        return text, ""
    return text[: at + 1], text[at + 1 :]


@functools.cache
def loaded_source(name: str) -> str:
    """What is sent to Redis for ``name``: ``_shared.lua``'s base, the script, and the
    helpers at the script's ``-- @helpers`` line (else before the script). ``init``
    goes alone."""
    text = script_source(name)
    if name == "init":
        return text
    base, helpers = _split_at_mark(script_source(SHARED))
    fast, rest = _split_at_mark(text)
    if not rest:
        return f"{base}{helpers}\n-- ---- {name}.lua ----\n{text}"
    return f"{base}\n-- ---- {name}.lua ----\n{fast}{helpers}\n-- ---- {name}.lua, on ----\n{rest}"


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
