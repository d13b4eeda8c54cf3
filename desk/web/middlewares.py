"""Middlewares: JSON errors for /api/, who is asking (bearer token or session cookie), CSRF.

Order matters (see ``create_app``): errors wrap everything so that any failure below becomes a
JSON error; authentication runs before CSRF, which needs to know how the request authenticated.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from desk.context import rerun_on_conflict
from desk.keys import auth_rkey, context_key, operator_rkey, ran_outside_rkey, token_rkey
from desk.services import auth
from desk.services.errors import ServiceError
from desk.store import Operator

log = logging.getLogger(__name__)

SESSION_COOKIE = "desk_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 410: "gone", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests",
}


def json_error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> web.Response:
    """Return the JSON error of CONTRACT §2."""
    error: dict = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return web.json_response({"error": error}, status=status)


def is_api(request: web.Request) -> bool:
    """Whether the request is for the JSON API."""
    return request.path.startswith("/api/")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn service errors and HTTP errors on /api/ into JSON errors."""
    try:
        return await handler(request)
    except ServiceError as exc:
        if is_api(request) or request.path.startswith("/webhooks/"):
            return json_error(exc.status, exc.code, exc.message, exc.fields)
        raise _plain(exc.status, exc.message)
    except web.HTTPException as exc:
        if not is_api(request) or exc.status < 400:
            raise
        text = exc.text or ""
        message = exc.reason if not text or text.startswith(f"{exc.status}:") else text
        return json_error(exc.status, STATUS_CODES.get(exc.status, "error"), message)
    except Exception:
        if not is_api(request):
            raise
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "the server failed; the error is in its log")


def rerun_middleware(handlers: Collection[Handler]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Return the middleware that runs a request of ``handlers`` again when the database aborted its transaction.

    With several processes on PostgreSQL, two agents' transactions can deadlock; one is aborted.
    Each handler listed changes the store in one transaction and reaches nothing outside before
    it commits, so a run that failed left nothing behind (``rerun_on_conflict``). The middleware
    sits outside authentication: each run reads the operator afresh, as the handler reads the
    chat, so nothing a failed run changed in memory is seen by the next.
    """
    @web.middleware
    async def rerun(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler not in handlers:
            return await handler(request)
        return await rerun_on_conflict(lambda: handler(request), unless=lambda: request.get(ran_outside_rkey, False))

    return rerun


HTML_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 403: web.HTTPForbidden, 404: web.HTTPNotFound, 409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
}


def _plain(status: int, message: str) -> web.HTTPException:
    return HTML_ERRORS.get(status, web.HTTPBadRequest)(text=message)


def bearer_token(request: web.Request) -> str | None:
    """Return the bearer token of the request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the operator behind the request: ``request[operator_rkey]`` and how (``request[auth_rkey]``)."""
    request[operator_rkey] = None
    request[auth_rkey] = None
    token = bearer_token(request)
    if token is not None:
        request[operator_rkey] = auth.operator_for_token(token)
        request[auth_rkey] = "bearer" if request[operator_rkey] else None
        request[token_rkey] = token
    else:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            op = auth.operator_for_token(session)
            if op is not None:
                request[operator_rkey], request[auth_rkey], request[token_rkey] = op, "cookie", session
    return await handler(request)


def same_origin(request: web.Request) -> bool:
    """Whether Origin (or Referer) names this server."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    own = f"{request.scheme}://{request.host}"
    ctx = request.app[context_key]
    allowed = {own, ctx.settings.base_url}
    return any(source == origin or source.startswith(origin + "/") for origin in allowed)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cookie-authenticated state changes without the page's CSRF token and a same-origin Origin."""
    if request.method not in SAFE_METHODS and request.get(auth_rkey) == "cookie":
        ctx = request.app[context_key]
        expected = auth.csrf_token(ctx.secret_key, request[token_rkey])
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type == "application/x-www-form-urlencoded":
            given = (await request.post()).get("csrf_token", "")
        if not same_origin(request) or not hmac.compare_digest(str(given), expected):
            if is_api(request):
                return json_error(403, "csrf", "this request needs the page's CSRF token and a same-origin Origin")
            raise web.HTTPForbidden(text="cross-site request refused")
    return await handler(request)


def require_operator(request: web.Request) -> Operator:
    """Return the authenticated operator or answer 401."""
    op = request.get(operator_rkey)
    if op is None:
        raise web.HTTPUnauthorized(text="sign in first: a bearer token or the session cookie")
    return op


def require_admin(request: web.Request) -> Operator:
    """Return the authenticated admin or answer 401 / 403."""
    op = require_operator(request)
    if op.role != "admin":
        raise web.HTTPForbidden(text="only an admin may do this")
    return op
