"""The Socket.IO server and its one namespace: authentication at connect, one room per operator."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from desk.context import Context
from desk.realtime.rooms import operator_room, token_room
from desk.services import auth

log = logging.getLogger(__name__)

NAMESPACE = "/"
# Socket event payloads from clients (engineio's default is 1 MB; the desk sends nothing large).
MAX_HTTP_BUFFER = 1_000_000
# A control message asking every process to drop one operator's or token's sockets.
CONTROL_EVENT = "desk:disconnect"


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
        manager = socketio.AsyncRedisManager(ctx.settings.redis_url, channel="desk")
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        # None: only the desk's own origin (python-socketio compares with the Host); never '*'.
        cors_allowed_origins=cors_origins,
        max_http_buffer_size=MAX_HTTP_BUFFER,
        ping_interval=25,
        ping_timeout=20,
    )
    sio.register_namespace(DeskNamespace(ctx))
    return sio
