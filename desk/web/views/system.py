"""Health and the per-operator event log (CONTRACT §1 and §7)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from desk.keys import sio_key
from desk.store import Event, Operator, ping, utcnow
from desk.web.middlewares import json_error, require_operator
from desk.web.util import int_param

EVENTS_PAGE = 1000
# Retention: at least the last 10,000 events of each operator or the last 24 hours, whichever is less.
RETAIN_EVENTS = 10_000
RETAIN_AGE = dt.timedelta(hours=24)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 while the database answers, 503 otherwise; with --redis, whether this process hears it."""
    body: dict = {"status": "ok"}
    # The Redis manager's last health check (desk/realtime/redis.py); a deaf process heals itself
    # within seconds and its agents by replay, so it stays in service.
    redis_health = getattr(request.app[sio_key].manager, "health", None)
    if redis_health is not None:
        body.update(redis_health())
    if ping():
        return web.json_response(body)
    return web.json_response({**body, "status": "unavailable"}, status=503)


async def events(request: web.Request) -> web.Response:
    """GET /api/events?after=SEQ: what I was sent after SEQ, in order; 410 once it was pruned."""
    op = require_operator(request)
    after = int_param(request, "after", default=0, low=0)
    limit = int_param(request, "limit", default=EVENTS_PAGE, low=1, high=EVENTS_PAGE)
    latest = op.last_seq
    if after < latest:
        oldest = Event.select(Event.seq).where(Event.operator == op.id).order_by(Event.seq).limit(1).scalar()
        if oldest is None or oldest > after + 1:
            return json_error(410, "sync_required", "those events are no longer kept: reload the desk's state")
    rows = (
        Event.select(Event.seq, Event.name, Event.data)
        .where((Event.operator == op.id) & (Event.seq > after))
        .order_by(Event.seq)
        .limit(limit)
        .tuples()
    )
    rows = list(rows)
    if rows:
        latest = max(latest, rows[-1][0])
    # The payloads are stored as JSON text: splice them in rather than decode and encode again.
    parts = [f'{{"seq":{seq},"event":"{name}","data":{_with_seq(data, seq)}}}' for seq, name, data in rows]
    body = f'{{"events":[{",".join(parts)}],"seq":{latest}}}'
    return web.Response(text=body, content_type="application/json")


def _with_seq(data: str, seq: int) -> str:
    """Return a stored payload (a JSON object without seq) as it was emitted: with ``seq`` added."""
    body = data.rstrip()[:-1].rstrip()
    separator = "" if body == "{" else ","
    return f'{body}{separator}"seq":{seq}}}'


def prune_events() -> int:
    """Delete events beyond retention; return how many went."""
    cutoff = utcnow() - RETAIN_AGE
    removed = 0
    for op_id, last_seq in Operator.select(Operator.id, Operator.last_seq).tuples():
        removed += Event.delete().where(
            (Event.operator == op_id) & (Event.seq <= last_seq - RETAIN_EVENTS) & (Event.created_at < cutoff)
        ).execute()
    return removed
