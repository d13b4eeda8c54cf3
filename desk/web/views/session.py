"""API sessions (bearer tokens) and the operator's own record and status."""

from __future__ import annotations

from aiohttp import web

from desk import payloads
from desk.keys import context_key, token_rkey
from desk.services import assignment, auth
from desk.web.middlewares import json_error, require_operator
from desk.web.util import read_json

API_TOKEN_DAYS = 30


def client_address(request: web.Request) -> str:
    """Return the peer address used for the login throttle."""
    return request.remote or "unknown"


async def create_session(request: web.Request) -> web.Response:
    """POST /api/session {login, password} -> {token, operator}."""
    data = await read_json(request)
    login, password = data.get("login"), data.get("password")
    if not isinstance(login, str) or not isinstance(password, str):
        return json_error(400, "invalid", "login and password are required",
                          {"login": "required", "password": "required"})
    throttle: auth.LoginThrottle = request.app[context_key].throttle
    if throttle.blocked(login, client_address(request)):
        return json_error(429, "too_many_requests", "too many failed sign-ins; wait a few minutes")
    op = await auth.authenticate(login, password)
    if op is None:
        throttle.fail(login, client_address(request))
        return json_error(401, "unauthorized", "wrong login or password")
    token = auth.issue_token(op, "api", days=API_TOKEN_DAYS)
    return web.json_response({"token": token, "operator": payloads.operator(op)})


async def delete_session(request: web.Request) -> web.Response:
    """DELETE /api/session: revoke the token (or session) used for this request."""
    require_operator(request)
    auth.revoke_token(request[token_rkey])
    await request.app[context_key].disconnect_token(request[token_rkey])
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    """GET /api/operators/me."""
    return web.json_response(payloads.operator(require_operator(request)))


async def set_my_status(request: web.Request) -> web.Response:
    """PUT /api/operators/me/status {status}."""
    op = require_operator(request)
    data = await read_json(request)
    op = assignment.set_status(request.app[context_key], op, data.get("status"))
    return web.json_response(payloads.operator(op))
