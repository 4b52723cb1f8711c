"""What every ``leasepool`` subcommand shares: exit codes, the user-facing error,
messages to the operator, and where the Redis URL and key prefix come from.

A leaf of the command-line modules: it imports none of them, so ``_cli`` (the
parser and dispatcher) and the subcommand modules (``_cli_commands``,
``_cli_status``, ``_exporter``) all depend on it and never on each other's
helpers. Redis modules are imported inside the functions that need them, so
``leasepool --help`` does not load redis-py.
"""

from __future__ import annotations

import argparse
import os
import sys

from leasepool._settings import URL_ENV

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PREFIX_ENV = "LEASEPOOL_KEY_PREFIX"


class CommandError(Exception):
    """A user-facing failure: printed without a traceback; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def redis_url(args: argparse.Namespace) -> str:
    """The URL from ``--url``, else from the environment (a usage error when neither)."""
    from leasepool._redis.url import check_url

    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CommandError(f"no Redis URL: pass --url or set {URL_ENV}", EXIT_USAGE)
    try:
        return check_url(url)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def key_prefix(args: argparse.Namespace) -> str:
    """``--prefix``, else ``LEASEPOOL_KEY_PREFIX``, else ``leasepool``."""
    from leasepool._redis.keys import DEFAULT_PREFIX, check_key_prefix

    env = os.environ.get(PREFIX_ENV, "").strip()
    try:
        return check_key_prefix(args.prefix or env or DEFAULT_PREFIX)
    except (TypeError, ValueError) as exc:
        where = "--prefix" if args.prefix else PREFIX_ENV
        raise CommandError(f"{where}: {exc}", EXIT_USAGE) from None


def say(args: argparse.Namespace, message: str) -> None:
    """A message for the operator, on stderr."""
    print(f"leasepool {args.command}: {message}", file=sys.stderr, flush=True)
