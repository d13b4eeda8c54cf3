"""The browser pages: first-run setup, sign in and out, the desk, and the desk embedded by token.

The desk page is a server-rendered shell; its data comes from the /api routes and Socket.IO, the
same ones any other client uses (CONTRACT §2, §4, §7).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import aiohttp_jinja2
import jwt
import peewee as pw
from aiohttp import web

from desk import payloads
from desk.keys import auth_rkey, context_key, operator_rkey, token_rkey
from desk.services import auth
from desk.services.errors import ServiceError
from desk.store import Operator, OperatorQueue, Queue, Token, atomic, utcnow
from desk.web.middlewares import SESSION_COOKIE, is_api, same_origin
from desk.web.security import allowed_origins
from desk.web.views.session import client_address

# A path on this site after sign-in: no scheme, no host, no backslash or blank a browser would fold.
LOCAL_PATH = re.compile(r"/[A-Za-z0-9/_.~%?&=#-]*")
# The embedded desk's API token lives for a working day; the host mints a new embed URL after.
EMBED_TOKEN_DAYS = 1


def _no_operator_yet() -> bool:
    return not Operator.select().exists()


def _signed_in(request: web.Request) -> Operator | None:
    """Return the operator of the session cookie (pages never take a bearer token)."""
    return request.get(operator_rkey) if request.get(auth_rkey) == "cookie" else None


def _cross_site(request: web.Request) -> bool:
    """Whether a form post names another site (login CSRF); a post without Origin or Referer passes."""
    has_source = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(has_source) and not same_origin(request)


def _next_path(value: str | None) -> str:
    """Return a local path to go to after sign-in; anything else (another site) is the desk."""
    if value and LOCAL_PATH.fullmatch(value) and not value.startswith("//"):
        return value
    return "/"


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    secure = request.scheme == "https" or request.app[context_key].settings.base_url.startswith("https://")
    response.set_cookie(
        SESSION_COOKIE, token, max_age=auth.SESSION_DAYS * 86400, path="/", httponly=True, samesite="Lax",
        secure=secure,
    )


def _no_store(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


async def setup_form(request: web.Request) -> web.StreamResponse:
    """GET /setup: the form for the first admin, only while no operator exists."""
    if not _no_operator_yet():
        raise web.HTTPFound(request.app.router["login"].url_for())
    return aiohttp_jinja2.render_template("auth/setup.html", request, {"values": {}, "errors": {}})


async def setup_submit(request: web.Request) -> web.StreamResponse:
    """POST /setup: create the first admin and sign them in."""
    if _cross_site(request):
        raise web.HTTPForbidden(text="cross-site request refused")
    form = await request.post()
    values = {key: str(form.get(key, "")) for key in ("login", "name")}
    password = str(form.get("password", ""))
    if not _no_operator_yet():
        raise web.HTTPFound(request.app.router["login"].url_for())
    try:
        op = await auth.create_operator(values["login"], values["name"], password, role="admin")
    except ServiceError as exc:
        errors = exc.fields or {"login": exc.message}
        return aiohttp_jinja2.render_template("auth/setup.html", request, {"values": values, "errors": errors},
                                              status=400)
    # Two first-run forms sent at once (from any process): the first operator stored wins.
    if Operator.select(pw.fn.MIN(Operator.id)).scalar() != op.id:
        op.delete_instance(recursive=True)
        raise web.HTTPFound(request.app.router["login"].url_for())
    # The first admin answers the chats of every queue there is (a one-person desk works at once).
    with atomic():
        for queue in Queue.select(Queue.id):
            OperatorQueue.get_or_create(operator=op.id, queue=queue.id)
    response = web.HTTPSeeOther(request.app.router["desk"].url_for())
    _set_session_cookie(request, response, auth.issue_token(op, "session", days=auth.SESSION_DAYS))
    raise response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login."""
    if _no_operator_yet():
        raise web.HTTPFound(request.app.router["setup"].url_for())
    if _signed_in(request) is not None:
        raise web.HTTPFound(_next_path(request.query.get("next")))
    context = {"login": "", "error": None, "next": _next_path(request.query.get("next"))}
    return aiohttp_jinja2.render_template("auth/login.html", request, context)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST /login (fields ``login``, ``password``): set the session cookie and open the desk."""
    if _cross_site(request):
        raise web.HTTPForbidden(text="cross-site request refused")
    form = await request.post()
    login, password = str(form.get("login", "")), str(form.get("password", ""))
    target = _next_path(str(form.get("next", "")))

    def again(error: str, status: int) -> web.Response:
        return aiohttp_jinja2.render_template(
            "auth/login.html", request, {"login": login, "error": error, "next": target}, status=status)

    throttle: auth.LoginThrottle = request.app[context_key].throttle
    if throttle.blocked(login, client_address(request)):
        return again("Too many failed sign-ins. Wait a few minutes and try again.", 429)
    op = await auth.authenticate(login, password) if login and password else None
    if op is None:
        throttle.fail(login, client_address(request))
        return again("Wrong login or password.", 401)
    response = web.HTTPSeeOther(target)
    _set_session_cookie(request, response, auth.issue_token(op, "session", days=auth.SESSION_DAYS))
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: end the session (the CSRF middleware has checked the form's token)."""
    if request.get(auth_rkey) == "cookie":
        token = request[token_rkey]
        auth.revoke_token(token)
        await request.app[context_key].disconnect_token(token)
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _desk_config(request: web.Request, op: Operator, *, token: str | None, csrf: str | None) -> dict[str, Any]:
    """Return what the desk script needs to start, rendered as JSON into the page."""
    fresh = Operator.get_by_id(op.id)  # last_seq as of now: the script replays what follows it
    return {
        "mode": "token" if token else "cookie",
        "token": token,
        "csrf": csrf,
        "seq": fresh.last_seq,
        "me": payloads.operator(fresh),
        "origins": allowed_origins(request),
    }


def _render_desk(request: web.Request, op: Operator, *, token: str | None, csrf: str | None) -> web.StreamResponse:
    config = _desk_config(request, op, token=token, csrf=csrf)
    response = aiohttp_jinja2.render_template("desk/desk.html", request, {
        "config": config, "me": config["me"], "csrf": csrf, "embedded": token is not None,
    })
    return _no_store(response)


async def desk_page(request: web.Request) -> web.StreamResponse:
    """GET /: the desk, for the operator of the session cookie."""
    op = _signed_in(request)
    if op is None:
        if _no_operator_yet():
            raise web.HTTPFound(request.app.router["setup"].url_for())
        raise web.HTTPFound(request.app.router["login"].url_for())
    csrf = auth.csrf_token(request.app[context_key].secret_key, request[token_rkey])
    return _render_desk(request, op, token=None, csrf=csrf)


def embed_operator(token: str, secret: str) -> Operator | None:
    """Return the enabled operator an embed JWT names, or None if it is expired, forged or unsigned."""
    if not token or len(token) > 4096 or not secret:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return None
    login = claims.get("sub")
    if not isinstance(login, str) or not login:
        return None
    return Operator.get_or_none((Operator.login == login) & (Operator.enabled == True))  # noqa: E712


async def embed_page(request: web.Request) -> web.StreamResponse:
    """GET /embed?token=JWT: the desk without a login form, authenticated by token, not cookie."""
    ctx = request.app[context_key]
    op = embed_operator(request.query.get("token", ""), auth.embed_secret(ctx.settings.embed_secret))
    if op is None:
        response = aiohttp_jinja2.render_template("errors/error.html", request, {
            "title": "This desk link is not valid",
            "detail": "It has expired or was not signed for this desk. Reload the page that shows the desk.",
        }, status=403)
        return _no_store(response)
    # Expired embed tokens are of no use to anyone: clear them as new ones are issued.
    Token.delete().where((Token.kind == "embed") & (Token.expires_at < utcnow() - dt.timedelta(hours=1))).execute()
    api_token = auth.issue_token(op, "embed", days=EMBED_TOKEN_DAYS)
    return _render_desk(request, op, token=api_token, csrf=None)


ERROR_PAGES = {
    403: ("Not allowed", "You may not open this page."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
}


@web.middleware
async def error_pages_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Render 403/404/405 for browsers as a page of the desk rather than bare text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        wants_page = (
            exc.status in ERROR_PAGES and not is_api(request) and request.method in ("GET", "HEAD")
            and not request.path.startswith(("/static/", "/webhooks/", "/socket.io"))
            and "text/html" in request.headers.get("Accept", "")
        )
        if not wants_page:
            raise
        title, detail = ERROR_PAGES[exc.status]
        if exc.status == 403 and exc.text and not exc.text.startswith("403"):
            detail = exc.text
        template = "errors/404.html" if exc.status == 404 else "errors/error.html"
        return aiohttp_jinja2.render_template(template, request, {"title": title, "detail": detail},
                                              status=exc.status)
