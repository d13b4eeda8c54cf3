"""Every ``web.AppKey`` of the app, typed, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing import Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    import socketio

    from desk.context import Context
    from desk.settings import Settings

settings_key: web.AppKey["Settings"] = web.AppKey("settings")
context_key: web.AppKey["Context"] = web.AppKey("context")
http_key: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
sio_key: web.AppKey["socketio.AsyncServer"] = web.AppKey("sio")

# Per-request values set by the auth middleware.
operator_rkey: web.RequestKey[Any] = web.RequestKey("operator", object)
auth_rkey: web.RequestKey[Any] = web.RequestKey("auth", object)
token_rkey: web.RequestKey[Any] = web.RequestKey("token", object)
