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
# Set by a handler about to do what running the request again would repeat (a plug-in's action may
# call out): the request is then never run again after a conflict (``rerun_middleware``).
ran_outside_rkey: web.RequestKey[bool] = web.RequestKey("ran_outside", bool)
