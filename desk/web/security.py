"""Response headers that keep the pages safe: CSP (with the embedding allow-list), nosniff, referrer.

CONTRACT §2: only origins on the allow-list may frame the desk (``frame-ancestors`` on every page,
``'none'`` without a list). The list is ``--embed-origins`` plus the settings page's list, kept as
the JSON list in the ``embed_origins`` setting.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from desk.keys import context_key
from desk.store import Setting

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EMBED_ORIGINS_SETTING = "embed_origins"
# A host[:port] and an origin as a browser sends them: nothing that could end a CSP directive.
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def is_origin(value: object) -> bool:
    """Whether ``value`` is a plain origin (``https://host[:port]``)."""
    return isinstance(value, str) and bool(ORIGIN.fullmatch(value))


def allowed_origins(request: web.Request) -> list[str]:
    """Return the origins allowed to frame the desk and talk to it by postMessage."""
    ctx = request.app[context_key]
    origins = list(ctx.settings.embed_origins)
    row = Setting.get_or_none(Setting.key == EMBED_ORIGINS_SETTING)
    if row is not None:
        try:
            stored = json.loads(row.value)
        except ValueError:
            stored = []
        if isinstance(stored, list):
            origins.extend(o.rstrip("/") for o in stored if isinstance(o, str))
    result: list[str] = []
    for origin in origins:
        if not is_origin(origin):
            log.warning("ignoring embed origin %r: not scheme://host[:port]", origin)
        elif origin not in result:
            result.append(origin)
    return result


def content_security_policy(request: web.Request, frame_ancestors: list[str]) -> str:
    """Return the page CSP: own scripts only, no inline script, framing by the allow-list only."""
    host = request.host
    # The Host header comes from the client: only a plain host[:port] goes into the header.
    sockets = f" ws://{host} wss://{host}" if HOST.fullmatch(host) else ""
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: for attachments the embedded desk fetches with its token; data: for generated icons.
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        f"connect-src 'self'{sockets}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {ancestors}",
    ])


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add CSP, X-Content-Type-Options and Referrer-Policy to every response (errors included)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(request, exc)
        raise
    _secure(request, response)
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin: the embed URL carries a token, which must not leak to other sites; the CSRF
    # check still sees the Referer of the desk's own forms.
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/static/"):
        # The pages import their modules without version numbers: revalidate (ETag) every time,
        # so an upgrade never leaves a browser with old and new modules mixed.
        headers.setdefault("Cache-Control", "no-cache")
    if "Content-Security-Policy" in headers:  # attachments set their own, stricter one
        return
    if _is_page(response):
        origins = allowed_origins(request)
        headers["Content-Security-Policy"] = content_security_policy(request, origins)
        if not origins:
            headers["X-Frame-Options"] = "DENY"  # for browsers without frame-ancestors
    else:
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"


def _is_page(response: web.StreamResponse) -> bool:
    return response.headers.get("Content-Type", "").startswith("text/html")
