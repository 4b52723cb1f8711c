"""``leasepool status`` and ``leasepool pools``: read-only views, once or ``--watch``.

Invariants: nothing here writes to Redis (see :class:`RedisAdmin`); one pool
that cannot be read is reported on stderr (naming its key) while the others are
still shown; terminal escape codes are written only when stdout is a terminal;
with ``--json --watch`` every refresh is exactly one line of JSON (NDJSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from leasepool._cli_common import EXIT_FAILED, EXIT_OK, CommandError, key_prefix, redis_url, say
from leasepool._cli_format import format_status, status_json
from leasepool._errors import LeasePoolError
from leasepool._redis.admin import PoolReport, RedisAdmin, connect

# Home the cursor and redraw over the previous frame: each line is cleared to its end,
# and what a longer previous frame left below is cleared too (no flicker of a full clear).
HOME, CLEAR_LINE, CLEAR_BELOW = "\033[H", "\033[K", "\033[J"


async def open_admin(args: argparse.Namespace) -> tuple[Any, RedisAdmin]:
    """A client (a cluster client when the server is a cluster node) and its admin."""
    url, prefix = redis_url(args), key_prefix(args)  # usage errors before connecting
    client = await connect(url)
    return client, RedisAdmin(client, key_prefix=prefix)


@dataclass
class Frame:
    """One reading of the pools: reports of the pools read, errors of the others."""

    reports: list[PoolReport] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _missing(admin: RedisAdmin, pool: str) -> str:
    return f"no pool {pool!r} under key prefix {admin.key_prefix!r} (see `leasepool pools`)"


async def read_frame(admin: RedisAdmin, pool: str | None, limit: int) -> Frame:
    """Read one pool, or every pool; a pool that fails is an error of the frame.
    Failing to list the pools at all raises."""
    names = [pool] if pool else await admin.pools()
    frame = Frame()
    for name in names:
        try:
            report = await admin.report(name, limit=limit)
        except LeasePoolError as exc:
            frame.errors[name] = str(exc)
            continue
        if not report.exists:
            frame.errors[name] = _missing(admin, name)
        else:
            frame.reports.append(report)
    return frame


def _text(frame: Frame, pool: str | None) -> str:
    shown = [format_status(r.status) for r in frame.reports]
    shown += [f"pool {name}: ERROR {error}" for name, error in frame.errors.items()]
    if not shown:
        return "no pools" if pool is None else ""
    return "\n\n".join(shown)


def _json(frame: Frame) -> list[dict[str, Any]]:
    rows = [status_json(r.status) for r in frame.reports]
    return rows + [{"pool": name, "error": error} for name, error in frame.errors.items()]


def _report_errors(args: argparse.Namespace, frame: Frame) -> None:
    for error in frame.errors.values():
        say(args, error)


async def _once(args: argparse.Namespace, admin: RedisAdmin) -> int:
    frame = await read_frame(admin, args.pool, args.limit)
    _report_errors(args, frame)
    if args.json:
        print(json.dumps(_json(frame), indent=2))
    elif frame.reports or args.pool is None:
        print(_text(frame, args.pool))
    return EXIT_FAILED if frame.errors else EXIT_OK


def _draw(args: argparse.Namespace, frame: Frame, tty: bool) -> None:
    if args.json:
        line = {"time": time.time(), "pools": _json(frame)}
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    elif tty:
        stamp = time.strftime("%H:%M:%S")
        body = f"every {args.watch:g}s, at {stamp}; Ctrl-C to stop\n\n{_text(frame, args.pool)}"
        sys.stdout.write(
            HOME + body.replace("\n", CLEAR_LINE + "\n") + CLEAR_LINE + "\n" + CLEAR_BELOW
        )
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        sys.stdout.write(f"--- {stamp}\n{_text(frame, args.pool)}\n")
    sys.stdout.flush()


async def _watch(args: argparse.Namespace, admin: RedisAdmin) -> int:
    tty = sys.stdout.isatty() and not args.json
    first = True
    shown: dict[str, str] = {}
    async with _interruptible() as interrupted:
        while not interrupted.is_set():
            try:
                frame = await read_frame(admin, args.pool, args.limit)
            except LeasePoolError as exc:
                if first:
                    raise
                frame = Frame(errors={"*": str(exc)})
            if first and args.pool and args.pool in frame.errors:
                # A mistyped pool name fails at once instead of watching nothing.
                raise CommandError(frame.errors[args.pool])
            if not tty and frame.errors != shown:
                _report_errors(args, frame)  # on stderr once, not every refresh
            shown = frame.errors
            _draw(args, frame, tty)
            first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), args.watch)
    raise KeyboardInterrupt


@contextlib.asynccontextmanager
async def _interruptible() -> AsyncIterator[asyncio.Event]:
    """An event set by Ctrl-C (SIGINT). The watch stops between two readings instead of
    being cancelled in the middle of one, so the client is always closed cleanly."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, event.set)
    except (NotImplementedError, RuntimeError):  # no signal handlers here: plain Ctrl-C
        yield event
        return
    try:
        yield event
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def status(args: argparse.Namespace) -> int:
    """``leasepool status [POOL] [--watch [SECONDS]] [--json]``."""
    client, admin = await open_admin(args)
    try:
        if args.watch is None:
            return await _once(args, admin)
        return await _watch(args, admin)
    finally:
        await client.aclose()


async def pools(args: argparse.Namespace) -> int:
    """``leasepool pools [--json]``: the pool names under the prefix, one per line."""
    client, admin = await open_admin(args)
    try:
        names = await admin.pools()
    finally:
        await client.aclose()
    if args.json:
        print(json.dumps(names))
    elif names:
        print("\n".join(names))
    else:
        say(args, f"no pools under key prefix {admin.key_prefix!r}")
    return EXIT_OK
