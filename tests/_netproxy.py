"""A loopback TCP proxy for tests: inject latency, partitions and resets between a client
and a real server.

``NetProxy(host, port)`` listens on 127.0.0.1 on a free port and forwards every accepted
connection to ``host:port``. It runs its own asyncio loop in a daemon thread, so it works
the same from synchronous tests, from async tests (whose loop it never blocks for more than
a control round trip), and from other processes that connect to its port.

Invariants:

- Byte order within each direction of a connection is always preserved: a chunk is
  never written before an earlier one, whatever the latency or jitter.
- Latency is per direction. A chunk read at time ``t`` is written at
  ``max(t + latency + U(0, jitter), previous chunk's write time)``. With
  ``set_latency(d)`` (both directions) a request/reply round trip gains ``2 * d``;
  ``set_latency(d, direction="to_client")`` delays only replies, so the server runs a
  command ``~0`` after the client sent it and the client hears of it ``d`` later.
- ``partition()`` is a blackhole: sockets stay open, nothing is forwarded in either
  direction, and new connections are accepted but not connected upstream. Bytes sent
  meanwhile are held (TCP would retransmit them) and delivered after ``heal()``, in order.
  Once ``partition()`` returns, no further byte reaches either side until ``heal()``.
- ``reset()`` closes every current connection (both sides); the listener stays up.
- Bounded: at most ``max_connections`` connections at once (extra ones are closed at
  accept); each direction holds at most ``_QUEUE_CHUNKS`` chunks of up to ``_CHUNK`` bytes
  before it stops reading (TCP back-pressure does the rest). Only loopback is used.
- ``close()`` stops the listener, closes every connection, stops the loop and joins the
  thread; it is idempotent. The proxy is a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

Direction = Literal["both", "to_server", "to_client"]

_CHUNK = 65536
_QUEUE_CHUNKS = 256
_CONTROL_TIMEOUT = 10.0
_T = TypeVar("_T")


class _Link:
    """The delay settings of one direction (read by the loop thread, set by any thread)."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.jitter = 0.0


class _Pipe:
    """One proxied connection: two pumps per direction (a reader and a delayed writer)."""

    def __init__(self, proxy: NetProxy, client_w: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_w = client_w
        self.server_w: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.client_w, self.server_w):
            if writer is not None:
                writer.transport.abort()


class NetProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_host:target_port`` (see module doc)."""

    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 256) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"target_host must be loopback, got {target_host!r}")
        self.target_host = target_host
        self.target_port = int(target_port)
        self.max_connections = max_connections
        self._links = {"to_server": _Link(), "to_client": _Link()}
        self._rng = random.Random(0)
        self._pipes: set[_Pipe] = set()
        self._accepted = 0
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"netproxy->{target_port}", daemon=True
        )
        self._thread.start()
        try:
            self._flowing = self._call(self._make_event())
            self._server = self._call(
                asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_CHUNK)
            )
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CONTROL_TIMEOUT)
            self._loop.close()
            raise
        self.port: int = int(self._server.sockets[0].getsockname()[1])

    # -- control (any thread) ---------------------------------------------------------

    def url_for(self, db: int = 0, scheme: str = "redis") -> str:
        """A Redis URL that reaches the target through this proxy."""
        return f"{scheme}://127.0.0.1:{self.port}/{db}"

    def set_latency(
        self, seconds: float, *, jitter: float = 0.0, direction: Direction = "both"
    ) -> None:
        """Delay each chunk by ``seconds`` (+ uniform ``[0, jitter]``) in ``direction``."""
        if seconds < 0 or jitter < 0:
            raise ValueError(f"latency and jitter must be >= 0, got {seconds!r}, {jitter!r}")
        if direction not in ("both", "to_server", "to_client"):
            raise ValueError(f"direction must be both, to_server or to_client, got {direction!r}")
        names = ("to_server", "to_client") if direction == "both" else (direction,)
        for name in names:
            link = self._links[name]
            link.latency, link.jitter = float(seconds), float(jitter)

    def partition(self) -> None:
        """Stop forwarding in both directions (sockets stay open); returns once in force."""
        self._call(self._set_flowing(False))

    def heal(self) -> None:
        """Forward again; bytes held during the partition are delivered in order."""
        self._call(self._set_flowing(True))

    def reset(self) -> None:
        """Close every current connection, both sides; new ones are still accepted."""
        self._call(self._close_pipes())

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._pipes)

    @property
    def accepted(self) -> int:
        """Connections accepted since the start."""
        return self._accepted

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CONTROL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> NetProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed and not self._thread.is_alive():
            coro.close()
            raise RuntimeError("NetProxy is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(_CONTROL_TIMEOUT)

    # -- loop thread --------------------------------------------------------------------

    @staticmethod
    async def _make_event() -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _close_pipes(self) -> None:
        pipes, self._pipes = list(self._pipes), set()
        tasks = [task for pipe in pipes for task in pipe.tasks]
        for pipe in pipes:
            pipe.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        self._server.close()
        await self._close_pipes()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._accepted += 1
        pipe = _Pipe(self, client_w)
        if len(self._pipes) >= self.max_connections:
            pipe.close()
            return
        self._pipes.add(pipe)
        me = asyncio.current_task()
        assert me is not None
        pipe.tasks.add(me)  # so that reset() during the upstream connect cancels it
        try:
            await self._flowing.wait()  # a partitioned network never reaches the server
            server_r, server_w = await asyncio.open_connection(
                self.target_host, self.target_port, limit=_CHUNK
            )
        except (OSError, asyncio.CancelledError):
            pipe.tasks.discard(me)
            self._drop(pipe)
            return
        pipe.server_w = server_w
        pipe.tasks.discard(me)
        self._start_direction(pipe, client_r, server_w, self._links["to_server"])
        self._start_direction(pipe, server_r, client_w, self._links["to_client"])

    def _start_direction(
        self, pipe: _Pipe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
        for coro in (self._read(reader, chunks, link), self._write(writer, chunks)):
            task = self._loop.create_task(coro)
            pipe.tasks.add(task)
            task.add_done_callback(functools.partial(self._task_done, pipe))

    async def _read(
        self, reader: asyncio.StreamReader, chunks: asyncio.Queue[tuple[float, bytes]], link: _Link
    ) -> None:
        last = 0.0
        while True:
            try:
                data = await reader.read(_CHUNK)
            except OSError:
                data = b""
            now = self._loop.time()
            extra = self._rng.uniform(0.0, link.jitter) if link.jitter else 0.0
            last = max(last, now + link.latency + extra)
            await chunks.put((last, data))
            if not data:
                return

    async def _write(
        self, writer: asyncio.StreamWriter, chunks: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        while True:
            due, data = await chunks.get()
            while True:
                await self._flowing.wait()
                delay = due - self._loop.time()
                if delay <= 0 and self._flowing.is_set():
                    break
                await asyncio.sleep(max(delay, 0.0))
            if not data:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    def _task_done(self, pipe: _Pipe, task: asyncio.Task[None]) -> None:
        pipe.tasks.discard(task)
        failed = not task.cancelled() and task.exception() is not None
        if failed or not pipe.tasks:
            self._drop(pipe)

    def _drop(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        pipe.close()
