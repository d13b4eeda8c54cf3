"""Socket.IO across processes through Redis, and a check that this process still hears the channel.

python-socketio's ``AsyncRedisManager`` waits up to 60 s between attempts after Redis goes away,
and nothing tells a process that its subscription is gone. Desk's manager tries again at most
``RETRY_MAX`` seconds apart, and its health check (``watch``) asks Redis every ``CHECK_EVERY``
seconds how many processes listen on the channel (``PUBSUB NUMSUB``) and whether this process
hears a ping it publishes itself; one that does not is subscribed again (TARGETS R5: within
10 s). Events lost meanwhile heal by replay from the event log (CONTRACT §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import socketio
from socketio.redis_manager import parse_redis_sentinel_url

from desk.realtime.packets import event_packet, send_here

try:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff
except ImportError:  # redis is an optional dependency; socketio reports it when the manager connects
    Retry = None

log = logging.getLogger(__name__)

CHANNEL = "desk"
# Pauses between subscription attempts: double from RETRY_MIN up to RETRY_MAX, so that a Redis
# that comes back is heard again within a couple of seconds.
RETRY_MIN = 0.25
RETRY_MAX = 2.0
# Seconds between health checks, and how long a ping may take to come back.
CHECK_EVERY = 2.0
PING_TIMEOUT = 1.5
# Connecting to a Redis that is down must fail fast: an emit waits for its publish.
CONNECT_TIMEOUT = 2.0
# Longest wait for a command's answer (publish, the checks); a connection that stays silent
# longer is dropped. Not for the subscription, which may rightly be silent for long.
COMMAND_TIMEOUT = 1.5
# Publishes in flight at once. redis-py's pool refuses a command beyond its 100 connections
# ("Too many connections"), and python-socketio answers any failed publish by connecting again;
# when the old client closed at once, every publish in flight on it failed too and connected
# again: under a backlog of emits, a storm of reconnections that lost emits (bench/RESULTS.md).
PUBLISH_CONCURRENCY = 32
# Desk's own messages on the channel start with this prefix and are not JSON, so that
# python-socketio's listeners (Desk's too) never take them for Socket.IO traffic.
CONTROL = b"desk:"
PING = CONTROL + b"ping:"
DISCONNECT = CONTROL + b"disconnect:"
# The events of one committed change, published as one message (``emit_many``).
EMITS = CONTROL + b"emits:"


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT}
    if Retry is not None:
        # redis-py's default retries (backing off up to 10 s) would hold each emit while Redis is down.
        options["retry"] = Retry(ExponentialWithJitterBackoff(base=0.1, cap=0.5), 2)
    return options


class DeskRedisManager(socketio.AsyncRedisManager):
    """An ``AsyncRedisManager`` that subscribes again quickly and can tell whether it still hears the channel."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__(url, channel=channel, redis_options=_options())
        # True from a successful SUBSCRIBE until the listener fails or a ping does not come back.
        self.subscribed = False
        # Processes listening on the channel at the last check (PUBSUB NUMSUB); None: Redis unreachable.
        self.subscribers: int | None = None
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._checker: Any = None
        self._tasks: set[asyncio.Task] = set()
        self._publishing = asyncio.Semaphore(PUBLISH_CONCURRENCY)
        # When the listener last took a message off the channel (time.monotonic()).
        self._heard_at = 0.0

    # --- connections ------------------------------------------------------------------------

    def _client(self, **options: Any) -> Any:
        """Return a new Redis client for the manager's URL (Sentinel URLs too)."""
        module = self._get_redis_module()
        options = {**self.redis_options, **options}
        if urlparse(self.redis_url).scheme in {"redis+sentinel", "valkey+sentinel"}:
            sentinels, service, kwargs = parse_redis_sentinel_url(self.redis_url)
            sentinel = module.sentinel.Sentinel(sentinels, **{**options, **kwargs})
            return sentinel.master_for(service or self.channel)
        return module.Redis.from_url(self.redis_url, **options)

    def client(self, **options: Any) -> Any:
        """Return a new Redis client for the manager's URL, for another use than Socket.IO (the send rate limits)."""
        return self._client(**options)

    def _redis_connect(self) -> None:
        # The publishing client (python-socketio's ``_publish`` calls this again after a failed
        # publish): close the old one's connections once the publishes still in flight on it
        # have had their time. The listener has clients of its own.
        old = self.redis
        self.redis = self._client(socket_timeout=COMMAND_TIMEOUT)
        self.connected = True
        if old is not None:
            self._spawn(_close_later(old, COMMAND_TIMEOUT + CONNECT_TIMEOUT))

    async def _publish(self, data: Any) -> Any:
        """Publish one message, with at most PUBLISH_CONCURRENCY publishes in flight."""
        async with self._publishing:
            return await super()._publish(data)

    async def emit_many(self, events: list[tuple[str, Any, str]], namespace: str = "/") -> None:
        """Emit ``(event, data, room)`` items here, in order, and publish them to the other processes as one message.

        python-socketio publishes each emit on its own: a change seen by 100 operators is 300
        events, and one publish each cost more than everything else the change did (bench/RESULTS.md).
        """
        await self.emit_encoded([(event, json.dumps(data, separators=(",", ":")), room) for event, data, room in events],
                                namespace)

    async def emit_encoded(self, events: list[tuple[str, str, str]], namespace: str = "/") -> None:
        """``emit_many`` for payloads already encoded as JSON: ``(event, payload JSON, room)`` items."""
        for event, payload_json, room in events:
            await send_here(self.server, room, event_packet(event, payload_json, namespace), namespace)
        # The message ``_listen`` reads, with each payload's text spliced in rather than encoded again.
        items = ",".join(f"[{json.dumps(event)},{payload_json},{json.dumps(room)}]" for event, payload_json, room in events)
        head = json.dumps({"host": self.host_id, "namespace": namespace}, separators=(",", ":"))
        body = EMITS + f'{head[:-1]},"events":[{items}]}}'.encode()
        async with self._publishing:
            for attempt in (0, 1):  # as python-socketio's own publish: once more on a new connection
                try:
                    if not self.connected:
                        self._redis_connect()
                    await self.redis.publish(self.channel, body)
                    return
                except Exception:
                    if attempt:
                        raise
                    self.connected = False

    async def _redis_listen_with_retries(self) -> AsyncIterator[dict]:
        """Yield what the channel carries; after a failure subscribe again with a short, capped pause."""
        delay = RETRY_MIN
        lost_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            client = pubsub = None
            try:
                client = self._client()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                if lost_at is None:
                    log.info("subscribed to Redis channel %r", self.channel)
                else:
                    log.warning("subscribed to Redis channel %r again after %.1f s", self.channel, loop.time() - lost_at)
                lost_at, delay = None, RETRY_MIN
                async for message in pubsub.listen():
                    yield message
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away or refused: try again shortly
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning("lost Redis channel %r (%s); subscribing again", self.channel, exc)
                else:
                    log.debug("Redis channel %r: still not subscribed (%s)", self.channel, exc)
            finally:
                self.subscribed = False
                await _close(pubsub, client)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _listen(self) -> AsyncIterator[bytes | dict]:
        channel = self.channel.encode()
        async for message in self._redis_listen_with_retries():
            if message.get("type") != "message" or message.get("channel") != channel:
                continue
            self._heard_at = time.monotonic()
            data = message.get("data")
            if isinstance(data, bytes) and data.startswith(EMITS):
                batch = json.loads(data[len(EMITS):])
                host = batch["host"]
                if host != self.host_id:
                    # python-socketio's listener takes a dict as an already decoded message.
                    for event, payload, room in batch["events"]:
                        yield {"method": "emit", "event": event, "data": [payload], "namespace": batch["namespace"],
                               "room": room, "host_id": host}
                continue
            if isinstance(data, bytes) and data.startswith(CONTROL):
                self._control(data)
                continue
            yield data

    def _control(self, data: bytes) -> None:
        if data.startswith(PING):
            future = self._pings.pop(data[len(PING):], None)
            if future is not None and not future.done():
                future.set_result(None)
        elif data.startswith(DISCONNECT):
            host, _, room = data[len(DISCONNECT):].partition(b":")
            if host.decode() != self.host_id:
                self._spawn(self._disconnect_here(room.decode()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- dropping sockets on every process --------------------------------------------------

    async def _disconnect_here(self, room: str) -> None:
        for sid, _eio_sid in list(self.get_participants("/", room)):
            await self.server.disconnect(sid, namespace="/", ignore_queue=True)

    async def disconnect_room(self, room: str) -> None:
        """Disconnect the sockets in ``room`` on this process and ask the other processes to do the same."""
        await self._disconnect_here(room)
        try:
            await self._publish_raw(DISCONNECT + self.host_id.encode() + b":" + room.encode())
        except Exception:  # the change that asked for it is committed: do not fail it for Redis
            log.exception("could not ask the other processes to drop the sockets of %s", room)

    async def _command(self, name: str, *args: Any) -> Any:
        """Run one command on the checker's connection; drop the connection when it fails."""
        if self._checker is None:
            self._checker = self._client(socket_timeout=COMMAND_TIMEOUT)
        try:
            return await getattr(self._checker, name)(*args)
        except Exception:
            checker, self._checker = self._checker, None
            await _close(checker)
            raise

    async def _publish_raw(self, data: bytes) -> None:
        await self._command("publish", self.channel, data)

    # --- health -----------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe now rather than at the first client's connection, and start the health check."""
        if not self.server.manager_initialized:  # python-socketio initializes the manager lazily
            self.server.manager_initialized = True
            self.initialize()
        self._spawn(self.watch())

    async def stop(self) -> None:
        """Stop listening and checking, and close the connections to Redis."""
        tasks = [task for task in (*self._tasks, getattr(self, "thread", None)) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close(self._checker, self.redis)
        self._checker = self.redis = None
        self.connected = False

    async def watch(self) -> None:
        """Check every ``CHECK_EVERY`` seconds that this process hears the channel."""
        while True:
            await asyncio.sleep(CHECK_EVERY)
            try:
                await self.check()
            except Exception:  # never let the check die: it is what brings the subscription back
                log.exception("the Redis health check failed")

    async def check(self) -> bool:
        """Count the channel's subscribers and ping this process through Redis; subscribe again when deaf."""
        try:
            try:
                counts = await self._command("pubsub_numsub", self.channel)
            except Exception:  # maybe only this connection died: once more on a new one
                counts = await self._command("pubsub_numsub", self.channel)
        except Exception as exc:  # Redis is down: the listener is trying again, or will be told to
            if self.subscribers is not None:
                log.warning("Redis is unreachable (%s)", exc)
            # A subscription that outlives its server is a connection nobody answers: count it
            # lost, so that the first check that reaches Redis again subscribes anew.
            self.subscribed = False
            self.subscribers = None
            return False
        self.subscribers = int(counts[0][1]) if counts else 0
        # A listener far behind (a backlog of emits, a starved loop) hears its ping late, but it
        # has taken messages off the channel lately: subscribing again would throw that backlog
        # away. A silent connection carries nothing, not even the pings every process sends.
        recent = time.monotonic() - CHECK_EVERY
        if self.subscribed and (await self._hears_itself() or self._heard_at > recent):
            return True
        log.warning("this process does not hear Redis channel %r (%d processes do): subscribing again",
                    self.channel, self.subscribers)
        await self.resubscribe()
        return False

    async def _hears_itself(self) -> bool:
        token = f"{self.host_id}:{secrets.token_hex(4)}".encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[token] = future
        try:
            await self._publish_raw(PING + token)
            await asyncio.wait_for(future, PING_TIMEOUT)
            return True
        except Exception:
            return False
        finally:
            self._pings.pop(token, None)

    async def resubscribe(self) -> None:
        """Drop the current subscription (or the pause before the next attempt) and subscribe at once."""
        self.subscribed = False
        thread = getattr(self, "thread", None)
        if thread is None:
            return
        # Wait for the old listener to close its connection, so that no message is heard twice.
        thread.cancel()
        await asyncio.gather(thread, return_exceptions=True)
        self.thread = self.server.start_background_task(self._thread)

    def health(self) -> dict[str, Any]:
        """Return what GET /healthz shows about Redis."""
        return {"redis": "subscribed" if self.subscribed else "unsubscribed", "redis_subscribers": self.subscribers}


async def _close_later(client: Any, delay: float) -> None:
    """Close a replaced client after ``delay`` seconds, when no command can still be waiting on it (or at stop)."""
    try:
        await asyncio.sleep(delay)
    finally:
        await _close(client)


async def _close(*clients: Any) -> None:
    """Close Redis clients and pub/sub objects, ignoring the errors of a connection already gone."""
    for client in clients:
        if client is None:
            continue
        with contextlib.suppress(Exception):
            await client.aclose()
