"""``leasepool demo``, ``revoke``, ``capacity`` and ``exporter``.

``revoke`` and ``capacity N`` change a pool through the coordinators' own
scripts; showing a capacity only reads. Conventions (stdout/stderr, exit
status, ``--json``) are those of :mod:`leasepool._cli`;
the shared helpers come from :mod:`leasepool._cli_common`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from leasepool._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    key_prefix,
    redis_url,
    say,
)
from leasepool._cli_format import capacity_text
from leasepool._cli_status import open_admin
from leasepool._settings import URL_ENV


def _emit(args: argparse.Namespace, data: dict[str, Any], line: str) -> None:
    print(json.dumps(data) if args.json else line, flush=True)


async def revoke(args: argparse.Namespace) -> int:
    """``leasepool revoke POOL LEASE_ID``: 0 when a live lease was removed, else 1."""
    client, admin = await open_admin(args)
    try:
        live = await admin.revoke(args.pool, args.lease_id)
        exists = live or (await admin.report(args.pool, limit=1)).exists
    finally:
        await client.aclose()
    data = {"pool": args.pool, "lease_id": args.lease_id, "revoked": live}
    if live:
        _emit(args, data, f"revoked {args.lease_id} in pool {args.pool}")
        return EXIT_OK
    if args.json:
        _emit(args, data, "")
    if not exists:
        raise CommandError(f"no pool {args.pool!r} under key prefix {admin.key_prefix!r}")
    raise CommandError(f"no live lease {args.lease_id!r} in pool {args.pool!r}")


async def capacity(args: argparse.Namespace) -> int:
    """``leasepool capacity POOL [N]``: show the capacity (read-only), or set it."""
    client, admin = await open_admin(args)
    try:
        if args.n is None:
            report = await admin.report(args.pool, limit=1)
            if not report.exists:
                raise CommandError(f"no pool {args.pool!r} under key prefix {admin.key_prefix!r}")
            cap = report.status.capacity
            data = {"pool": args.pool, "capacity": cap, "paused": cap == 0}
            _emit(args, data, capacity_text(cap) + (" (paused)" if cap == 0 else ""))
            return EXIT_OK
        previous = await admin.set_capacity(args.pool, args.n)
    finally:
        await client.aclose()
    data = {"pool": args.pool, "old": previous, "capacity": args.n, "paused": args.n == 0}
    note = " (paused: nothing is granted until it is raised)" if args.n == 0 else ""
    _emit(args, data, f"pool {args.pool}: capacity {capacity_text(previous)} -> {args.n}{note}")
    return EXIT_OK


def _demo_url(args: argparse.Namespace) -> str | None:
    if args.redis:
        say(args, "--redis is deprecated: use --url (or set LEASEPOOL_REDIS_URL)")
        if args.url:
            raise CommandError("give the URL once: --url or --redis, not both", 2)
        args.url = args.redis
    if args.local or not (args.url or os.environ.get(URL_ENV)):
        return None
    return redis_url(args)


async def demo(args: argparse.Namespace) -> int:
    """``leasepool demo``: local by default; across processes with a Redis URL."""
    url = _demo_url(args)
    if url is not None:
        from leasepool._demo_redis import run_redis_demo

        return await run_redis_demo(
            url,
            processes=args.processes,
            capacity=args.capacity,
            tasks=args.tasks,
            pool=args.pool,
            key_prefix=key_prefix(args),
            as_json=args.json,
        )
    from leasepool._demo import run_local_demo

    started = time.time()

    def event(message: str) -> None:
        print(json.dumps({"time": time.time() - started, "event": message}), flush=True)

    stats = await run_local_demo(event if args.json else print)
    if args.json:
        print(json.dumps({"stats": stats}, default=str), flush=True)
    return EXIT_OK


async def exporter(args: argparse.Namespace) -> int:
    """``leasepool exporter``: serve ``/metrics`` until interrupted."""
    try:
        from leasepool._exporter import serve
    except ImportError as exc:
        raise CommandError(
            f"the exporter needs prometheus-client: pip install 'leasepool[prometheus]' ({exc})",
            EXIT_FAILED,
        ) from None
    return await serve(args)
