"""The settings page (CONTRACT §5): a server-rendered shell for admins; its data comes from the
admin JSON routes, which any other client uses too. Secrets never go into the HTML: the page's
script reads them from ``GET /api/settings`` when it shows them.
"""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from desk import payloads
from desk.keys import auth_rkey, context_key, operator_rkey, token_rkey
from desk.services import auth


async def settings_page(request: web.Request) -> web.StreamResponse:
    """GET /settings: channels, operators, queues, embedding; admins only (agents get a 403 page)."""
    op = request.get(operator_rkey) if request.get(auth_rkey) == "cookie" else None
    if op is None:
        login = request.app.router["login"].url_for()
        raise web.HTTPFound(f"{login}?{urlencode({'next': request.path}, safe='/')}")
    if op.role != "admin":
        response = aiohttp_jinja2.render_template("errors/403.html", request, {
            "title": "Only admins open the settings",
            "detail": "Ask an admin of this desk to change channels, operators or queues.",
        }, status=403)
        response.headers["Cache-Control"] = "no-store"
        return response
    csrf = auth.csrf_token(request.app[context_key].secret_key, request[token_rkey])
    me = payloads.operator(op)
    config = {"mode": "cookie", "token": None, "csrf": csrf, "me": me}
    response = aiohttp_jinja2.render_template("settings/settings.html", request, {
        "config": config, "me": me, "csrf": csrf,
    })
    response.headers["Cache-Control"] = "no-store"
    return response
