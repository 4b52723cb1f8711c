"""One pub/sub listener per client and event loop: wake-ups for waiters.

Every :class:`~leasepool.RedisCoordinator` started on the same client (in the
same event loop) shares one subscriber connection; each registers the events
channel of its pool and a handler. A handler gets each message as ``str``, and
``None`` whenever the channel is (re)subscribed: messages may have been missed
then, so the handler should recheck at once.

Pub/sub loses messages while disconnected, so it is only a hint: coordinators
also keep a timer to the earliest expiry.

Cluster clients: the subscription goes to a plain connection to the primary that
serves the first channel's hash slot (our channels carry the pool's hash tag),
made by us rather than by ``RedisCluster.pubsub()``, which redis-py before 6
lacks and whose node choice changed between releases. A cluster delivers
``PUBLISH`` on every node, so the other channels' messages arrive there too. The
node is looked up again on every reconnect, so a failover or slot move is followed.
Every supported redis-py (5.2 and later) thus subscribes the same way, and the
waiting connection sends no command of its own: no health-check PINGs, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from leasepool._redis.errors import REDIS_ERRORS

log = logging.getLogger("leasepool.redis")

Handler = Callable[[str | None], None]

_RETRY_FIRST, _RETRY_MAX = 0.05, 2.0
_IDLE_READ = 600.0  # seconds a read may wait for a message before it simply reads again
_STOP_WAIT = 5.0  # seconds a stop waits for the listener task (it takes milliseconds)

_REGISTRY: dict[tuple[int, int], _Subscriber] = {}


class _NoNodeError(ConnectionError):
    """The cluster's slot map has no node for the channel yet: retry later."""


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Subscriber:
    def __init__(self, client: Any, registry_key: tuple[int, int]) -> None:
        self._client = client
        self._key = registry_key
        self._handlers: dict[str, list[Handler]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)
        self._ready.setdefault(channel, asyncio.Event())
        self._restart()

    async def remove(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel, [])
        with contextlib.suppress(ValueError):
            handlers.remove(handler)
        if not handlers:
            self._handlers.pop(channel, None)
            self._ready.pop(channel, None)
        if self._handlers:
            self._restart()
            return
        _REGISTRY.pop(self._key, None)
        await self._stop()

    async def wait_ready(self, channel: str, within: float) -> bool:
        event = self._ready.get(channel)
        if event is None:
            return False
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            return False
        return True

    def _restart(self) -> None:
        old = self._task
        self._task = asyncio.get_running_loop().create_task(self._run(old))

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not await _end(task):
            log.warning("leasepool subscriber task did not end within %.0f s", _STOP_WAIT)

    async def _run(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            # Not ``await previous``: cancelling a task that awaits another task cancels
            # the awaited one instead, and the CancelledError that then comes back cannot
            # be told from our own. Swallowing it kept a cancelled restart alive, reading
            # for _IDLE_READ seconds, and the close waiting on it hung that long.
            # asyncio.wait raises our own cancellation and never the previous task's.
            await _end(previous)
        delay = _RETRY_FIRST
        while self._handlers:
            channels = list(self._handlers)
            for channel in channels:
                self._ready[channel].clear()
            pubsub = node_client = None
            try:
                # One connection for all channels: a cluster broadcasts PUBLISH to
                # every node, so the other pools' events arrive here too.
                pubsub, node_client = await self._open(channels[0])
                await pubsub.subscribe(*channels)
                while True:
                    # Waits for a message without sending any command. Not block=True:
                    # before redis-py 8 that read still obeyed the client's socket_timeout,
                    # so an idle subscriber timed out, reconnected and made every
                    # coordinator recheck each few seconds. A long read timeout returns
                    # None instead, on every version, and the connection stays open.
                    # The raw reply, [kind, channel, data]: cheaper than get_message's dict.
                    response = await pubsub.parse_response(block=False, timeout=_IDLE_READ)
                    if response:
                        delay = _RETRY_FIRST
                        self._dispatch(response)
                        # Let the waiters just woken run before redis-py's next read.
                        await asyncio.sleep(0)
            except REDIS_ERRORS as exc:
                log.debug("leasepool subscriber lost its connection: %s", type(exc).__name__)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS, asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(_close(pubsub, node_client)), 2.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def _open(self, channel: str) -> tuple[Any, Any]:
        """A PubSub for ``channel``, and the node client made for it (None if none)."""
        client = self._client
        get_node = getattr(client, "get_node_from_key", None)
        if get_node is None:
            return client.pubsub(), None
        await client.initialize()  # loads the slot map; a no-op once done
        node = get_node(channel)
        if node is None:
            raise _NoNodeError(f"no cluster node serves channel {channel!r}")
        from redis.asyncio import ConnectionPool, Redis

        pool = ConnectionPool(
            connection_class=node.connection_class, max_connections=2, **node.connection_kwargs
        )
        node_client = Redis(connection_pool=pool)
        return node_client.pubsub(), node_client

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, (list, tuple)) or len(response) < 3:
            return
        kind = _text(response[0])
        channel = _text(response[1])
        if kind == "message":
            payload: str | None = _text(response[2])
        elif kind == "subscribe":
            event = self._ready.get(channel)
            if event is not None:
                event.set()
            payload = None
        else:
            return
        handlers = self._handlers.get(channel, ())
        for handler in handlers if len(handlers) == 1 else list(handlers):
            try:
                handler(payload)
            except Exception:
                log.exception("leasepool event handler failed on %r", payload)


async def _end(task: asyncio.Task[None]) -> bool:
    """Cancel ``task`` and wait, bounded, until it has ended; False if it has not.

    The wait never raises the task's own outcome, but does raise a cancellation of the
    caller. A task that swallowed a cancellation is cancelled again, a few times.
    """
    for _ in range(3):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=_STOP_WAIT / 3)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("leasepool subscriber task ended with %r", task.exception())
            return True
    return False


async def _close(pubsub: Any, node_client: Any) -> None:
    # PubSub.aclose() appeared in redis-py 5.0.1; reset() is its older name.
    close = getattr(pubsub, "aclose", None) or pubsub.reset
    try:
        await close()
    finally:
        if node_client is not None:
            await node_client.aclose()


class Subscription:
    """A handler registered for one channel; :meth:`close` unregisters it."""

    def __init__(self, subscriber: _Subscriber, channel: str, handler: Handler) -> None:
        self._subscriber = subscriber
        self._channel = channel
        self._handler = handler
        self._closed = False

    async def wait_ready(self, within: float) -> bool:
        """Wait until the channel is subscribed; False after ``within`` seconds."""
        return await self._subscriber.wait_ready(self._channel, within)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._subscriber.remove(self._channel, self._handler)


def subscribe(client: Any, channel: str, handler: Handler) -> Subscription:
    """Register ``handler`` for ``channel`` on the shared subscriber of ``client``."""
    key = (id(client), id(asyncio.get_running_loop()))
    subscriber = _REGISTRY.get(key)
    if subscriber is None:
        subscriber = _REGISTRY[key] = _Subscriber(client, key)
    subscriber.add(channel, handler)
    return Subscription(subscriber, channel, handler)
