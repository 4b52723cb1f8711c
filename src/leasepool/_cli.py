"""The ``leasepool`` command (also ``python -m leasepool``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from leasepool._coordinator import PoolStatus
from leasepool._errors import LeasePoolError

URL_ENV = "LEASEPOOL_REDIS_URL"


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leasepool",
        description="Lease executors with a global cap: look at and manage pools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def redis_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help=f"Redis URL (default: ${URL_ENV})")
        p.add_argument("--prefix", default="leasepool", help="key prefix (default: leasepool)")

    demo = sub.add_parser("demo", help="show leasing at work (local by default)")
    demo.add_argument("--redis", metavar="URL", help="share one capacity through this Redis")
    demo.add_argument("--processes", type=int, default=3, help="worker processes (with --redis)")
    demo.add_argument("--capacity", type=int, default=2, help="global capacity (with --redis)")
    demo.add_argument("--tasks", type=int, default=6, help="tasks per process (with --redis)")
    demo.add_argument("--pool", default="demo", help="pool name (with --redis)")

    status = sub.add_parser("status", help="live leases of one pool, or of every pool")
    status.add_argument("pool", nargs="?", help="pool name (default: every pool)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--watch", nargs="?", type=float, const=1.0, metavar="SECONDS", help="refresh every N s"
    )
    redis_options(status)

    pools = sub.add_parser("pools", help="list pools")
    pools.add_argument("--json", action="store_true", help="print JSON")
    redis_options(pools)

    revoke = sub.add_parser("revoke", help="remove a lease; its holder stops using it")
    revoke.add_argument("pool")
    revoke.add_argument("lease_id")
    redis_options(revoke)

    capacity = sub.add_parser("capacity", help="show or change a pool's capacity")
    capacity.add_argument("pool")
    capacity.add_argument("n", type=int, nargs="?", help="new capacity (omit to show it)")
    redis_options(capacity)
    return parser


def _url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CommandError(f"no Redis URL: pass --url or set {URL_ENV}")
    return str(url)


def _admin(args: argparse.Namespace) -> tuple[Any, Any]:
    import redis.asyncio

    from leasepool._redis_admin import RedisAdmin
    from leasepool._redis_url import check_url

    try:
        url = check_url(_url(args))
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    client = redis.asyncio.Redis.from_url(url)
    return client, RedisAdmin(client, key_prefix=args.prefix)


def _age(ms: int) -> str:
    seconds = ms / 1000
    if abs(seconds) < 120:
        return f"{seconds:.1f}s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def format_status(status: PoolStatus) -> str:
    cap = "unbounded" if status.capacity is None else str(status.capacity)
    waiting = f", {status.waiting} waiting" if status.waiting else ""
    lines = [f"pool {status.pool}: {len(status.leases)}/{cap} leased{waiting}"]
    waiters = status.waiters
    if waiters:
        shown = ", ".join(f"{w.host}:{w.pid} {w.count}" for w in waiters[:10])
        more = f", ... {len(waiters) - 10} more processes" if len(waiters) > 10 else ""
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
                _age(status.now_ms - lease.acquired_ms),
                _age(lease.hard_ms - status.now_ms),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += [
        ("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def status_json(status: PoolStatus) -> dict[str, Any]:
    return {
        "pool": status.pool,
        "capacity": status.capacity,
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


async def _status(args: argparse.Namespace) -> int:
    client, admin = _admin(args)
    try:
        while True:
            names = [args.pool] if args.pool else await admin.pools()
            statuses = [await admin.status(name) for name in names]
            if args.json:
                print(json.dumps([status_json(s) for s in statuses], indent=2))
            else:
                if args.watch:
                    print("\033[2J\033[H", end="")
                print("\n\n".join(format_status(s) for s in statuses) or "no pools")
            if not args.watch:
                return 0
            sys.stdout.flush()
            await asyncio.sleep(args.watch)
    finally:
        await client.aclose()


async def _pools(args: argparse.Namespace) -> int:
    client, admin = _admin(args)
    try:
        names = await admin.pools()
    finally:
        await client.aclose()
    print(json.dumps(names) if args.json else "\n".join(names) or "no pools")
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    client, admin = _admin(args)
    try:
        live = await admin.revoke(args.pool, args.lease_id)
    finally:
        await client.aclose()
    if live:
        print(f"revoked {args.lease_id} in pool {args.pool}")
        return 0
    print(f"no live lease {args.lease_id} in pool {args.pool}", file=sys.stderr)
    return 1


async def _capacity(args: argparse.Namespace) -> int:
    client, admin = _admin(args)
    try:
        if args.n is None:
            status = await admin.status(args.pool)
            print(status.capacity if status.capacity is not None else "unset")
            return 0
        previous = await admin.set_capacity(args.pool, args.n)
    finally:
        await client.aclose()
    print(f"pool {args.pool}: capacity {previous} -> {args.n}")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    if args.redis:
        from leasepool._demo_redis import run_redis_demo

        return await run_redis_demo(
            args.redis,
            processes=args.processes,
            capacity=args.capacity,
            tasks=args.tasks,
            pool=args.pool,
        )
    from leasepool._demo import run_local_demo

    await run_local_demo()
    return 0


COMMANDS = {
    "demo": _demo,
    "status": _status,
    "pools": _pools,
    "revoke": _revoke,
    "capacity": _capacity,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except (CommandError, LeasePoolError, ValueError, TypeError) as exc:
        print(f"leasepool {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nleasepool {args.command}: interrupted after {time.monotonic() - started:.1f}s")
        return 130
