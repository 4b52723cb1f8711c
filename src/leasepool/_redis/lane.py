"""A dedicated connection for one kind of script call: the coordinator's hot path.

redis-py's general command path (pool checkout and return, retry wrapper,
observability hooks, a ``wait_for`` task per write when a socket timeout is
set) costs more client time per command than a whole lease script costs the
server. The coordinator never has more than one acquire, one release and one
heartbeat call in flight (see :class:`leasepool._redis.calls.CallQueue`), so
each of those gets a :class:`Lane`: a connection of its own, made by the
client's own pool (same address, TLS, credentials, database, protocol), that
sends ``EVALSHA`` packed here and reads the reply with redis-py's parser.

The script objects stay in charge of the scripts: their SHA is what a lane
sends, and a ``NOSCRIPT`` reply (a restarted or flushed server) goes through
the script object, which loads the script and runs it. A lane whose
connection breaks retries the call once through the client (with the client's
own retry policy); every call a lane carries is idempotent. A lane reads with
its own deadline (the client's ``socket_timeout``); a call cut off by
cancellation closes the lane's connection, since its reply is still due.

Clients whose pool is not a plain ``ConnectionPool`` or
``BlockingConnectionPool`` (Cluster, Sentinel) use the script objects only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool

from redis import exceptions as redis_exceptions


class LaneBrokenError(Exception):
    """The lane's connection failed before a reply: the call may be retried elsewhere."""


def _bulk(value: bytes | str | int) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def lanes_supported(client: Any) -> bool:
    pool = getattr(client, "connection_pool", None)
    return type(pool) in (ConnectionPool, BlockingConnectionPool)


class Lane:
    """One connection, one call at a time (the caller guarantees it)."""

    __slots__ = ("_conn", "_memo", "_pool", "_since", "_stalled", "_timeout", "_watch")

    def __init__(self, client: Any, constants: Sequence[str] = ()) -> None:
        self._pool: Any = client.connection_pool
        self._memo: dict[bytes | str | int, bytes] = {value: _bulk(value) for value in constants}
        """Arguments sent with most calls (the pool's keys...), packed once."""
        self._timeout: float | None = None
        self._conn: Any = None
        self._stalled = False
        self._since: float | None = None
        """Loop time at which the call in flight started (None: idle)."""
        self._watch: asyncio.TimerHandle | None = None

    async def _connection(self) -> Any:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._pool.make_connection()
            timeout = conn.socket_timeout
            self._timeout = float(timeout) if timeout else None
        if not conn.is_connected:
            # The handshake runs with the client's socket timeout; afterwards the lane
            # keeps its own read deadline (see call): without a socket timeout redis-py
            # writes without a wait_for task and reads without a timer.
            conn.socket_timeout = self._timeout
            try:
                await conn.connect()
            except BaseException:
                self._forget(conn)
                raise
            conn.socket_timeout = None
        return conn

    async def connect(self) -> None:
        """Open the connection ahead of the first call."""
        await self._connection()

    def _check(self) -> None:
        """The watchdog: one timer for the lane, not one per call. A call still in flight
        ``timeout`` seconds after it started has its connection closed, which fails the
        pending read (reported as a timeout)."""
        self._watch = None
        since, timeout = self._since, self._timeout
        if since is None or timeout is None:
            return  # idle: the watch ends until the next call
        loop = asyncio.get_running_loop()
        late = loop.time() - since
        if late >= timeout:
            self._stalled = True
            if self._conn is not None:
                self._forget(self._conn)
        else:
            self._watch = loop.call_later(timeout - late, self._check)

    def _forget(self, conn: Any) -> None:
        if self._conn is conn:
            self._conn = None
        task = asyncio.ensure_future(conn.disconnect(nowait=True))
        task.add_done_callback(_consume)

    async def call(
        self, script: Any, keys: Sequence[str], args: Sequence[bytes | str | int]
    ) -> Any:
        """``EVALSHA`` of ``script`` on this lane's connection."""
        memo = self._memo
        sha = memo.get(script.sha)
        if sha is None:
            sha = memo[script.sha] = _bulk(script.sha)
        parts = [
            b"*%d\r\n$7\r\nEVALSHA\r\n%b$%d\r\n%d\r\n"
            % (3 + len(keys) + len(args), sha, len(str(len(keys))), len(keys))
        ]
        parts += [memo.get(key) or _bulk(key) for key in keys]
        parts += [memo.get(arg) or _bulk(arg) for arg in args]
        conn = self._conn
        if conn is None or not conn.is_connected:
            try:
                conn = await self._connection()
            except (redis_exceptions.ConnectionError, OSError) as exc:
                raise LaneBrokenError(str(exc)) from exc  # (a timeout is not retried)
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        self._stalled = False
        if self._watch is None and self._timeout is not None:
            self._watch = loop.call_later(self._timeout, self._check)
        try:
            await conn.send_packed_command(parts, check_health=False)
            return await conn.read_response()
        except redis_exceptions.NoScriptError:
            self._since = None
            return await script(keys=keys, args=args)  # loads the script, then runs it
        except redis_exceptions.ResponseError:
            raise  # a complete reply: the connection is fine
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
            self._forget(conn)
            if self._stalled:
                raise redis_exceptions.TimeoutError(
                    f"no reply within {self._timeout} s (socket_timeout)"
                ) from exc
            raise LaneBrokenError(str(exc)) from exc
        except BaseException:
            self._forget(conn)  # cut off (cancelled): the reply is still due
            raise
        finally:
            self._since = None

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()
