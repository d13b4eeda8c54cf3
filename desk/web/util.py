"""Small helpers shared by the views: JSON bodies, integer query parameters, the chat in the URL."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from desk.services.errors import Invalid, NotFound
from desk.store import Chat, Operator, queries

MAX_JSON_BODY = 1024 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    """Return the request's JSON object body, or raise Invalid."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=request.content_length)
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    return data


def int_param(request: web.Request, name: str, *, default: int | None = None, low: int | None = None,
              high: int | None = None) -> int | None:
    """Return an integer query parameter, or raise Invalid."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise Invalid(f"{name} must be a whole number", fields={name: "not a number"}) from exc
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"{name} is out of range", fields={name: "out of range"})
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """Return an integer id from the URL, or 404."""
    try:
        return int(request.match_info[name])
    except (KeyError, ValueError) as exc:
        raise NotFound("no such object") from exc


def visible_chat(request: web.Request, op: Operator) -> Chat:
    """Return the chat in the URL if ``op`` may see it; otherwise 404 (never 403: no leaks)."""
    chat = Chat.get_or_none(Chat.id == path_id(request))
    if chat is None or not queries.can_see(op, chat):
        raise NotFound("no such chat")
    return chat
