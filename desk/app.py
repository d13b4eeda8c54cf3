"""The composition root: ``create_app(settings)`` is the only place that wires the app together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from desk import actions, keys
from desk.context import Context
from desk.events import Bus
from desk.realtime.listener import Listener
from desk.realtime.redis import DeskRedisManager
from desk.realtime.server import close_transports, create_server, manager_ctx
from desk.services import auth, chat_actions, fetch, jobs, outbound
from desk.settings import Settings
from desk.store import Queue, database, open_database
from desk.store.migrate import migrate, schema_lock
from desk.web.middlewares import auth_middleware, csrf_middleware, errors_middleware, rerun_middleware
from desk.web.routes import RERUN_ON_CONFLICT, setup_routes
from desk.web.security import headers_middleware
from desk.web.views.pages import error_pages_middleware
from desk.web.views.system import prune_events
from providers import Registry, discover

log = logging.getLogger(__name__)

# Seconds between prunes of the replay log.
PRUNE_EVERY = 600
# Outbound HTTP to messengers: fail a call rather than hang a worker.
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


def create_app(settings: Settings, *, registry: Registry | None = None) -> web.Application:
    """Build the aiohttp application for ``settings``."""
    registry = registry or discover()
    ctx = Context(settings, registry, Bus())
    ctx.throttle = auth.LoginThrottle()
    ctx.actions = actions.discover()
    # Order: security headers outermost so every answer gets them, error pages included; then
    # the HTML error pages, then errors so every failure below becomes a JSON error; the re-run
    # after a conflict inside it (a last failure is a JSON error) and outside auth (each run reads
    # the operator afresh); auth before CSRF, which needs to know whether the request came with
    # the session cookie.
    app = web.Application(middlewares=[headers_middleware, error_pages_middleware, errors_middleware,
                                       rerun_middleware(RERUN_ON_CONFLICT), auth_middleware, csrf_middleware],
                          client_max_size=settings.upload_limit + 1024 * 1024)
    app[keys.settings_key] = settings
    app[keys.context_key] = ctx
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(settings.templates_dir)), autoescape=True)
    sio = create_server(ctx, cors_origins=None)
    sio.attach(app)
    app[keys.sio_key] = sio
    # On shutdown, before aiohttp waits for open connections to finish: drop the websockets.
    app.on_shutdown.append(lambda _: close_transports(sio))
    listener = Listener(sio)
    ctx.bus.subscribe(listener)
    ctx.disconnect_operator = listener.disconnect_operator
    ctx.disconnect_token = listener.disconnect_token
    setup_routes(app)
    app.router.add_static("/static/", settings.static_dir, name="static")

    # Set-up order: the database first (everything reads it), then the HTTP client the
    # providers use, then Redis (with --redis), then the workers that need them; teardown runs
    # in reverse, so the last emits still reach Redis.
    app.cleanup_ctx.append(_database(ctx))
    app.cleanup_ctx.append(_http(ctx, app))
    app.cleanup_ctx.append(manager_ctx(sio))
    app.cleanup_ctx.append(_limiter(ctx, sio.manager))
    app.cleanup_ctx.append(_workers(ctx, listener))
    return app


def _database(ctx: Context):
    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = open_database(ctx.settings.database_url)
        # Under the schema lock, so that processes starting together create one default queue.
        with schema_lock(db):
            migrate(db)
            if not Queue.select().exists():
                with contextlib.suppress(Exception):
                    Queue.create(name="General", routing="manual", actions=json.dumps(chat_actions.default_codes(ctx)))
        ctx.secret_key = ctx.settings.secret_key or auth.setting("secret_key", lambda: secrets.token_urlsafe(48))
        ctx.embed_secret = ctx.settings.embed_secret or auth.setting("embed_secret", lambda: secrets.token_urlsafe(48))
        ctx.settings.media_dir.mkdir(parents=True, exist_ok=True)
        yield
        db.close()
    return database_ctx


def _http(ctx: Context, app: web.Application):
    async def http_ctx(_: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        ctx.http = session
        app[keys.http_key] = session
        yield
        await session.close()
    return http_ctx


def _limiter(ctx: Context, manager: object):
    async def limiter_ctx(_: web.Application) -> AsyncIterator[None]:
        # With several processes (--redis) each sends for every bot: a bot's rate limits are kept
        # in Redis, for all of them together.
        if isinstance(manager, DeskRedisManager):
            ctx.limiter = jobs.RedisRateLimiter(manager.client(socket_timeout=jobs.REDIS_TIMEOUT))
        else:
            ctx.limiter = jobs.RateLimiter()
        yield
        await ctx.limiter.aclose()
    return limiter_ctx


def _workers(ctx: Context, listener: Listener):
    async def workers_ctx(_: web.Application) -> AsyncIterator[None]:
        worker = jobs.Worker(ctx, {
            jobs.SEND: outbound.send_job,
            jobs.FETCH_ATTACHMENT: fetch.attachment_job,
            jobs.FETCH_PROFILE: fetch.profile_job,
            jobs.ACTION: chat_actions.action_job,
        })
        ctx.worker = worker
        tasks = []
        if ctx.settings.run_workers:
            tasks.append(asyncio.create_task(worker.run(), name="desk-jobs"))
            tasks.append(asyncio.create_task(_prune_loop(), name="desk-prune"))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.stop()
        await listener.drain()
    return workers_ctx


async def _prune_loop() -> None:
    while True:
        await asyncio.sleep(PRUNE_EVERY)
        try:
            prune_events()
        except Exception:
            log.exception("pruning the event log failed")


__all__ = ["create_app", "database"]
