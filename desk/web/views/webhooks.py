"""POST /webhooks/{channel_id}: check -> parse -> store -> 200; GET: the verification handshake.

The provider checks the secret or signature over the raw bytes before anything is parsed. The
answer is sent once what the request carries is committed; fetches and pushes come after it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from desk.context import UnknownProvider
from desk.keys import context_key
from desk.services import inbound
from desk.store import Channel, queries
from desk.web.middlewares import json_error
from providers.base import BadPayload, BadSignature

log = logging.getLogger(__name__)


def _channel(request: web.Request) -> Channel | None:
    try:
        channel_id = int(request.match_info["channel_id"])
    except ValueError:
        return None
    channel = queries.channel_by_id(channel_id)
    if channel is None or not channel.enabled:
        return None
    return channel


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """Read the raw body, or None when it is over ``limit`` (checked before and while reading)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def receive(request: web.Request) -> web.Response:
    """Accept one webhook delivery."""
    ctx = request.app[context_key]
    channel = _channel(request)
    if channel is None:
        return json_error(404, "not_found", "no such channel")
    try:
        provider = ctx.provider(channel)
    except UnknownProvider:
        return json_error(404, "not_found", "the channel's provider is not installed")
    body = await _read_body(request, ctx.settings.webhook_limit)
    if body is None:
        return json_error(413, "too_large", f"the body is larger than {ctx.settings.webhook_limit} bytes")
    try:
        provider.verify_request(request.headers, body)
    except BadSignature:
        return json_error(403, "bad_signature", "the request's secret or signature is wrong")
    try:
        parsed = provider.parse(body)
    except BadPayload as exc:
        return json_error(400, "bad_payload", str(exc))
    ctx.write_retrying(lambda changes: inbound.receive(ctx, changes, channel, parsed))
    return web.json_response({"ok": True})


async def verify(request: web.Request) -> web.Response:
    """Answer a messenger's GET handshake (Facebook's hub.challenge)."""
    ctx = request.app[context_key]
    channel = _channel(request)
    if channel is None:
        return json_error(404, "not_found", "no such channel")
    answer = ctx.provider(channel).verification_response(request.query)
    if answer is None:
        return web.Response(status=403, text="verification failed")
    return web.Response(text=answer, content_type="text/plain")
