"""The ``leasepool`` command (also ``python -m leasepool``): arguments and exit status.

Conventions every subcommand keeps (tests/unit/test_cli*.py and
tests/redis/test_redis_cli*.py check them):

* Results go to stdout; messages and errors go to stderr, prefixed
  ``leasepool <command>:``. Exit status: 0 done, 1 the operation failed (no such
  pool or lease, a damaged pool, Redis unreachable or refusing), 2 a usage error
  (bad argument, no URL), 130 interrupted. A closed stdout pipe ends the command
  quietly with 0.
* Every command takes ``--json`` and, where Redis is needed, ``--url`` (else
  ``LEASEPOOL_REDIS_URL``) and ``--prefix`` (else ``LEASEPOOL_KEY_PREFIX``).
* Looking (``status``, ``pools``, ``exporter``) never writes to Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from leasepool._cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    say,
)
from leasepool._cli_format import format_status, status_json
from leasepool._errors import LeasePoolError
from leasepool._settings import URL_ENV
from leasepool._validation import MAX_CAPACITY, capacity_value

__all__ = ["CommandError", "format_status", "main", "status_json"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` except where there is no default to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def seconds_arg(raw: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {raw!r}")
    return value


def count_arg(raw: str) -> int:
    """An argparse type: an integer >= 1."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {raw!r}")
    return int(raw)


def capacity_arg(raw: str) -> int:
    """An argparse type: a capacity, validated like every other capacity."""
    try:
        return capacity_value("capacity", int(raw.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer from 0 (paused) to {MAX_CAPACITY}, got {raw!r}"
        ) from None


def port_arg(raw: str) -> int:
    """An argparse type: a TCP port, 1..65535."""
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {raw!r}")
    return int(raw)


def _version() -> str:
    from leasepool import __version__

    return f"leasepool {__version__}"


def _common(p: argparse.ArgumentParser, *, redis: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (NDJSON for streams)")
    if not redis:
        return
    p.add_argument("--url", help=f"Redis URL (default: ${URL_ENV})")
    p.add_argument(
        "--prefix",
        default=None,
        help="key prefix of the pools (default: $LEASEPOOL_KEY_PREFIX, else leasepool)",
    )


def _sub(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, formatter_class=_Formatter
    )
    return parser


def _add_demo(sub: Any) -> None:
    demo = _sub(sub, "demo", "show leasing at work (locally, or across processes with Redis)")
    demo.add_argument(
        "--local", action="store_true", help="run the local demo even when a URL is set"
    )
    demo.add_argument("--redis", metavar="URL", help="deprecated alias of --url")
    demo.add_argument("--processes", type=count_arg, default=3, help="worker processes (Redis)")
    demo.add_argument("--capacity", type=count_arg, default=2, help="global capacity (Redis)")
    demo.add_argument("--tasks", type=count_arg, default=6, help="tasks per process (Redis)")
    demo.add_argument("--pool", default="demo", help="pool name; its capacity is overwritten")
    _common(demo)


def _add_status(sub: Any) -> None:
    status = _sub(sub, "status", "live leases of one pool, or of every pool (read-only)")
    status.add_argument("pool", nargs="?", help="pool name (omit for every pool)")
    status.add_argument(
        "--watch",
        nargs="?",
        type=seconds_arg,
        const=1.0,
        metavar="SECONDS",
        help="refresh every SECONDS (1 when given without a value) until interrupted",
    )
    status.add_argument("--limit", type=count_arg, default=1000, help="most leases listed per pool")
    _common(status)


def _add_exporter(sub: Any) -> None:
    exporter = _sub(sub, "exporter", "serve Prometheus metrics of every pool (read-only)")
    exporter.add_argument("--port", type=port_arg, default=9781, help="HTTP port for /metrics")
    exporter.add_argument("--address", default="127.0.0.1", help="address to listen on")
    exporter.add_argument(
        "--interval",
        type=seconds_arg,
        default=5.0,
        help="seconds a reading of Redis is reused: at most one per interval",
    )
    _common(exporter)


def parser() -> argparse.ArgumentParser:
    """The command's argument parser (every argument has help; defaults are shown)."""
    top = argparse.ArgumentParser(
        prog="leasepool",
        description="Lease executors with a global cap: look at and manage pools in Redis.",
        epilog=f"The Redis URL comes from --url, else ${URL_ENV}. Exit status: 0 done, "
        "1 failed (no such pool or lease, Redis error), 2 usage error, 130 interrupted.",
        formatter_class=_Formatter,
    )
    top.add_argument("--version", action="version", version=_version())
    sub = top.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do; `leasepool COMMAND --help` shows its options",
    )
    _add_demo(sub)
    _add_status(sub)
    pools = _sub(sub, "pools", "list the pools under the prefix (read-only)")
    _common(pools)
    revoke = _sub(sub, "revoke", "remove a lease; its holder stops using it")
    revoke.add_argument("pool", help="pool name")
    revoke.add_argument("lease_id", help="lease id, as `status` shows it")
    _common(revoke)
    capacity = _sub(sub, "capacity", "show or change a pool's capacity")
    capacity.add_argument("pool", help="pool name")
    capacity.add_argument(
        "n",
        type=capacity_arg,
        nargs="?",
        help=f"new capacity, 0 (paused) to {MAX_CAPACITY}; omit to show it",
    )
    _common(capacity)
    _add_exporter(sub)
    return top


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _commands() -> dict[str, Command]:
    from leasepool import _cli_commands, _cli_status

    return {
        "demo": _cli_commands.demo,
        "status": _cli_status.status,
        "pools": _cli_status.pools,
        "revoke": _cli_commands.revoke,
        "capacity": _cli_commands.capacity,
        "exporter": _cli_commands.exporter,
    }


def _quiet_stdout() -> None:
    # The reader went away: point stdout at /dev/null so that the interpreter's
    # final flush cannot raise a second BrokenPipeError on the way out.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    started = time.monotonic()
    try:
        return asyncio.run(_commands()[args.command](args))
    except CommandError as exc:
        say(args, str(exc))
        return exc.code
    except (LeasePoolError, ValueError, TypeError) as exc:
        say(args, str(exc))
        return EXIT_FAILED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        say(args, f"interrupted after {time.monotonic() - started:.1f}s")
        return EXIT_INTERRUPTED
