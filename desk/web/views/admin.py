"""The admin API of CONTRACT §5: providers, channels, queues, operators. Agents may read lists."""

from __future__ import annotations

import json
import secrets

import peewee as pw
from aiohttp import web

from desk import payloads
from desk.keys import context_key
from desk.services import assignment, auth, channels, chat_actions, notify, routing, transcript
from desk.web import security
from desk.services.errors import Conflict, Invalid, NotFound
from desk.store import Channel, Chat, Operator, OperatorQueue, Queue, Setting, Token, atomic, queries
from desk.web.middlewares import require_admin, require_operator
from desk.web.util import path_id, read_json

ROUTINGS = ("manual", "round_robin", "least_busy")


async def list_providers(request: web.Request) -> web.Response:
    """GET /api/providers: one entry per installed provider with its settings fields."""
    require_operator(request)
    registry = request.app[context_key].registry
    return web.json_response([
        {"code": cls.code, "name": cls.name, "fields": [f.as_dict() for f in cls.fields]} for cls in registry.all()
    ])


def _channel(request: web.Request, channel: Channel) -> dict:
    return payloads.channel(channel, request.app[context_key].settings.base_url)


async def list_channels(request: web.Request) -> web.Response:
    """GET /api/channels."""
    require_operator(request)
    return web.json_response([_channel(request, c) for c in Channel.select().order_by(Channel.id)])


async def create_channel(request: web.Request) -> web.Response:
    """POST /api/channels: validate with the messenger, store, register."""
    require_admin(request)
    channel = await channels.create(request.app[context_key], await read_json(request))
    return web.json_response(_channel(request, channel), status=201)


async def update_channel(request: web.Request) -> web.Response:
    """PATCH /api/channels/{id}."""
    require_admin(request)
    channel = channels.get(path_id(request))
    channel = await channels.update(request.app[context_key], channel, await read_json(request))
    return web.json_response(_channel(request, channel))


async def delete_channel(request: web.Request) -> web.Response:
    """DELETE /api/channels/{id}: only without chats (409 otherwise)."""
    require_admin(request)
    await channels.delete(request.app[context_key], channels.get(path_id(request)))
    return web.Response(status=204)


async def register_channel(request: web.Request) -> web.Response:
    """POST /api/channels/{id}/register: register the webhook again."""
    require_admin(request)
    channel = await channels.register(request.app[context_key], channels.get(path_id(request)))
    return web.json_response(_channel(request, channel))


async def channel_health(request: web.Request) -> web.Response:
    """GET /api/channels/{id}/health: the webhook's health as the messenger reports it."""
    require_admin(request)
    channel = channels.get(path_id(request))
    health = await request.app[context_key].provider(channel).health()
    return web.json_response({
        "ok": health.ok, "pending": health.pending, "last_error": health.last_error,
        "last_error_at": payloads.iso(health.last_error_at), "detail": health.detail,
    })


async def channel_config(request: web.Request) -> web.Response:
    """GET /api/channels/{id}/config: the values of the provider's non-secret fields (admins only)."""
    require_admin(request)
    channel = channels.get(path_id(request))
    cls = request.app[context_key].registry.get(channel.provider)
    stored = json.loads(channel.config)
    fields = [f for f in cls.fields if not f.secret] if cls is not None else []
    return web.json_response({f.name: stored.get(f.name, "") for f in fields})


async def list_actions(request: web.Request) -> web.Response:
    """GET /api/actions: ``[{code, title, default}]`` every chat action an admin may enable on a queue."""
    require_admin(request)
    ctx = request.app[context_key]
    defaults = set(chat_actions.default_codes(ctx))
    return web.json_response([{"code": code, "title": title, "default": code in defaults}
                              for code, title in chat_actions.known_codes(ctx).items()])


def _queue_fields(data: dict, *, partial: bool, known: dict[str, str]) -> dict:
    errors, values = {}, {}
    if not partial or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            errors["name"] = "a name of 1 to 200 characters is required"
        else:
            values["name"] = name.strip()
    if "routing" in data:
        if data["routing"] not in ROUTINGS:
            errors["routing"] = "routing is manual, round_robin or least_busy"
        else:
            values["routing"] = data["routing"]
    if "actions" in data:
        actions = data["actions"]
        if not isinstance(actions, list) or not all(isinstance(a, str) and a in known for a in actions):
            errors["actions"] = "actions is a list of known action codes"
        else:
            values["actions"] = json.dumps(actions)
    if errors:
        raise Invalid("the queue is not valid", fields=errors)
    return values


async def list_queues(request: web.Request) -> web.Response:
    """GET /api/queues."""
    require_operator(request)
    return web.json_response([payloads.queue(q) for q in Queue.select().order_by(Queue.id)])


async def create_queue(request: web.Request) -> web.Response:
    """POST /api/queues: a new queue gets every built-in action."""
    require_admin(request)
    ctx = request.app[context_key]
    values = _queue_fields(await read_json(request), partial=False, known=chat_actions.known_codes(ctx))
    values.setdefault("actions", json.dumps(chat_actions.default_codes(ctx)))
    try:
        with atomic():
            queue = Queue.create(**values)
    except pw.IntegrityError as exc:
        raise Conflict("a queue with this name exists", fields={"name": "taken"}) from exc
    return web.json_response(payloads.queue(queue), status=201)


def _queue(request: web.Request) -> Queue:
    queue = Queue.get_or_none(Queue.id == path_id(request))
    if queue is None:
        raise NotFound("no such queue")
    return queue


async def update_queue(request: web.Request) -> web.Response:
    """PATCH /api/queues/{id}."""
    require_admin(request)
    queue = _queue(request)
    values = _queue_fields(await read_json(request), partial=True,
                           known=chat_actions.known_codes(request.app[context_key]))
    try:
        with atomic():
            Queue.update(**values).where(Queue.id == queue.id).execute() if values else None
    except pw.IntegrityError as exc:
        raise Conflict("a queue with this name exists", fields={"name": "taken"}) from exc
    return web.json_response(payloads.queue(Queue.get_by_id(queue.id)))


async def delete_queue(request: web.Request) -> web.Response:
    """DELETE /api/queues/{id}: only a queue no open chat waits in."""
    require_admin(request)
    queue = _queue(request)
    if Chat.select().where((Chat.queue == queue.id) & (Chat.status == "new")).exists():
        raise Conflict("chats wait in this queue: transfer them first", code="has_chats")
    queue.delete_instance()
    return web.Response(status=204)


async def list_operators(request: web.Request) -> web.Response:
    """GET /api/operators."""
    require_operator(request)
    memberships: dict[int, list[int]] = {}
    for row in OperatorQueue.select().order_by(OperatorQueue.queue):
        memberships.setdefault(row.operator_id, []).append(row.queue_id)
    return web.json_response([payloads.operator(op, memberships.get(op.id, [])) for op in Operator.select().order_by(Operator.id)])


async def create_operator(request: web.Request) -> web.Response:
    """POST /api/operators {login, name, password, role?, max_chats?, queue_ids?}."""
    require_admin(request)
    data = await read_json(request)
    errors = auth.validate_operator_fields(data, partial=False)
    if errors:
        raise Invalid("the operator is not valid", fields=errors)
    op = await auth.create_operator(data["login"], data["name"], data["password"], role=data.get("role", "agent"),
                                    max_chats=data.get("max_chats", 5), queue_ids=data.get("queue_ids"))
    return web.json_response(payloads.operator(op), status=201)


def _operator(request: web.Request) -> Operator:
    op = Operator.get_or_none(Operator.id == path_id(request))
    if op is None:
        raise NotFound("no such operator")
    return op


async def update_operator(request: web.Request) -> web.Response:
    """PATCH /api/operators/{id}: name, role, max_chats, queue_ids, password, enabled, status."""
    require_admin(request)
    ctx = request.app[context_key]
    op = _operator(request)
    data = await read_json(request)
    errors = auth.validate_operator_fields(data, partial=True)
    if "login" in data:
        errors["login"] = "the login cannot change"
    if "status" in data and data["status"] not in assignment.STATUSES:
        errors["status"] = "status is online, busy or offline"
    if errors:
        raise Invalid("the operator is not valid", fields=errors)
    password_hash = await auth.hash_password(data["password"]) if "password" in data else None
    with ctx.write() as changes:
        if {"status", "max_chats", "queue_ids"} & set(data):  # may route: queues before the operator row
            routing.lock_queues(queries.queue_ids(op.id) + [q for q in data.get("queue_ids") or [] if isinstance(q, int)])
        op = Operator.get_by_id(op.id)
        view_before = notify.open_chat_ids(op) if {"role", "queue_ids"} & set(data) else None
        for key in ("name", "role", "max_chats", "enabled"):
            if key in data:
                setattr(op, key, data[key].strip() if isinstance(data[key], str) else data[key])
        if password_hash:
            op.password_hash = password_hash
        status_changed = "status" in data and data["status"] != op.status
        if status_changed:
            op.status = data["status"]
        op.save()
        if "queue_ids" in data:
            OperatorQueue.delete().where(OperatorQueue.operator == op.id).execute()
            for queue_id in sorted(set(data["queue_ids"])):
                OperatorQueue.create(operator=op.id, queue=queue_id)
        if data.get("enabled") is False or password_hash:
            Token.delete().where(Token.operator == op.id).execute()
        if status_changed or "name" in data or "role" in data or "queue_ids" in data or "enabled" in data:
            notify.operator_changed(changes, op)
        if view_before is not None and op.enabled:
            notify.view_changed(changes, op, view_before)
        if op.enabled and op.status == "online" and ({"status", "max_chats", "queue_ids"} & set(data)):
            routing.route_for_operator(changes, op.id)
    if data.get("enabled") is False or password_hash:
        await ctx.disconnect_operator(op.id)
    return web.json_response(payloads.operator(op))


async def delete_operator(request: web.Request) -> web.Response:
    """DELETE /api/operators/{id}: an operator who handled chats is disabled instead (409)."""
    me = require_admin(request)
    op = _operator(request)
    if op.id == me.id:
        raise Conflict("you cannot delete yourself", code="self")
    if Chat.select().where(Chat.operator == op.id).exists():
        raise Conflict("the operator has chats: disable them instead", code="has_chats")
    with atomic():  # one transaction, so that a run again after a conflict starts from nothing deleted
        op.delete_instance(recursive=True)
    await request.app[context_key].disconnect_operator(op.id)
    return web.Response(status=204)


def _put_setting(key: str, value: str) -> None:
    """Insert or replace one stored setting."""
    Setting.insert(key=key, value=value).on_conflict(conflict_target=[Setting.key], update={Setting.value: value}).execute()


def _settings_payload(request: web.Request) -> dict:
    ctx = request.app[context_key]
    row = Setting.get_or_none(Setting.key == security.EMBED_ORIGINS_SETTING)
    stored = json.loads(row.value) if row is not None else []
    return {
        "embed_origins": stored,
        "embed_origins_from_env": list(ctx.settings.embed_origins),
        "embed_secret": auth.embed_secret(ctx.settings.embed_secret),
        "embed_secret_from_env": bool(ctx.settings.embed_secret),
        "transcript_url": transcript.transcript_url(),
        "transcript_secret": transcript.transcript_secret(),
    }


async def get_settings(request: web.Request) -> web.Response:
    """GET /api/settings: embedding and transcript settings, secrets included (admins only)."""
    require_admin(request)
    return web.json_response(_settings_payload(request))


async def update_settings(request: web.Request) -> web.Response:
    """PATCH /api/settings: ``embed_origins`` (list of origins), ``transcript_url`` (http(s) URL or null)."""
    require_admin(request)
    data = await read_json(request)
    errors: dict[str, str] = {}
    if "embed_origins" in data:
        origins = data["embed_origins"]
        if not isinstance(origins, list) or not all(security.is_origin(str(o).rstrip("/")) for o in origins):
            errors["embed_origins"] = "a list of origins such as https://intranet.example.com"
    if "transcript_url" in data:
        url = data["transcript_url"]
        if url not in (None, "") and not (isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) < 2000):
            errors["transcript_url"] = "an http(s) URL, or empty"
    if errors:
        raise Invalid("the settings are not valid", fields=errors)
    with atomic():
        if "embed_origins" in data:
            value = json.dumps(list(dict.fromkeys(str(o).rstrip("/") for o in data["embed_origins"])))
            _put_setting(security.EMBED_ORIGINS_SETTING, value)
        if "transcript_url" in data:
            _put_setting(transcript.URL_SETTING, data["transcript_url"] or "")
    return web.json_response(_settings_payload(request))


async def rotate_embed_secret(request: web.Request) -> web.Response:
    """POST /api/settings/embed-secret: a new embed secret; tokens signed with the old one stop working."""
    require_admin(request)
    ctx = request.app[context_key]
    if ctx.settings.embed_secret:
        raise Conflict("the embed secret is set by DESK_EMBED_SECRET: change it there", code="from_env")
    ctx.embed_secret = secrets.token_urlsafe(48)
    _put_setting("embed_secret", ctx.embed_secret)
    return web.json_response(_settings_payload(request))
