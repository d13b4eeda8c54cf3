"""The Socket.IO server and its one namespace: authentication at connect, one room per operator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio

from desk.context import Context
from desk.realtime.redis import DeskRedisManager
from desk.realtime.rooms import operator_room, token_room
from desk.services import auth

log = logging.getLogger(__name__)

NAMESPACE = "/"
# Socket event payloads from clients (engineio's default is 1 MB; the desk sends nothing large).
MAX_HTTP_BUFFER = 1_000_000
# Seconds between engine.io pings; a proxy in front must allow longer idle reads (docs/deploy.md).
PING_INTERVAL = 25
PING_TIMEOUT = 20
# Seconds the shutdown waits for clients to collect their close packet.
CLOSE_WAIT = 2.0


class DeskNamespace(socketio.AsyncNamespace):
    """Authenticates each connection and puts it in its operator's room; clients join nothing else."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(NAMESPACE)
        self.ctx = ctx

    async def on_connect(self, sid: str, environ: dict, auth_data: Any = None) -> None:
        """Accept the token of ``auth`` or the session cookie; refuse anyone else."""
        token = None
        if isinstance(auth_data, dict) and isinstance(auth_data.get("token"), str):
            token = auth_data["token"]
        else:
            request = environ.get("aiohttp.request")
            if request is not None:
                token = request.cookies.get("desk_session")
        op = auth.operator_for_token(token) if token else None
        if op is None:
            raise socketio.exceptions.ConnectionRefusedError("authentication failed")
        await self.save_session(sid, {"operator_id": op.id})
        await self.enter_room(sid, operator_room(op.id))
        await self.enter_room(sid, token_room(auth.token_hash(token)))


def create_server(ctx: Context, *, cors_origins: list[str] | None) -> socketio.AsyncServer:
    """Build the AsyncServer, with the Redis manager when ``--redis`` is set."""
    manager = None
    if ctx.settings.redis_url:
        manager = DeskRedisManager(ctx.settings.redis_url)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        # None: only the desk's own origin (python-socketio compares with the Host); never '*'.
        cors_allowed_origins=cors_origins,
        max_http_buffer_size=MAX_HTTP_BUFFER,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        transports=list(ctx.settings.transports),
    )
    sio.register_namespace(DeskNamespace(ctx))
    return sio


def manager_ctx(sio: socketio.AsyncServer):
    """Return the cleanup context that subscribes to Redis at start-up, checks it, and closes it at the end."""
    async def redis_ctx(_: object) -> AsyncIterator[None]:
        manager = sio.manager
        if not isinstance(manager, DeskRedisManager):
            yield
            return
        manager.start()
        yield
        await manager.stop()
    return redis_ctx


async def close_transports(sio: socketio.AsyncServer) -> None:
    """Close every client's websocket, so that clients reconnect (to this or another process).

    Run on shutdown: an open websocket would otherwise hold aiohttp's graceful stop until the
    ping timeout (45 s) or the shutdown timeout. The JS client ignores engine.io's CLOSE packet on
    a websocket, so after it the socket's writer is told to stop, which closes the websocket.
    A Socket.IO-level disconnect would tell clients not to come back.
    """
    sockets = list(sio.eio.sockets.values())
    if not sockets:
        return
    try:
        # engine.io waits until each client has fetched its CLOSE packet: a long-polling client
        # that never asks again would hold the shutdown for ever.
        await asyncio.wait_for(sio.eio.disconnect(), CLOSE_WAIT)
    except TimeoutError:
        log.info("some long-polling clients did not collect their close packet; stopping anyway")
    except Exception:  # shutting down regardless
        log.exception("closing client connections on shutdown failed")
    for client in sockets:
        queue = getattr(client, "queue", None)
        if queue is not None:
            queue.put_nowait(None)  # engineio's writer closes the websocket when it reads None
