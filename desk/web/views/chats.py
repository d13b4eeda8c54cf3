"""The chat API of CONTRACT §4: list, read, accept, mark read, messages, send, transfer, close."""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

import aiofiles.os
from aiohttp import web

from desk import payloads
from desk.context import rerun_on_conflict
from desk.files import FileTooLarge, resolve, store_stream
from desk.keys import context_key, ran_outside_rkey
from desk.services import assignment, chat_actions, outbound
from desk.services.errors import Invalid, NotFound, TooLarge
from desk.store import Attachment, Channel, Chat, Contact, Message, queries
from desk.web.middlewares import require_operator
from desk.web.util import int_param, path_id, read_json, visible_chat

STATUSES = ("new", "active", "closed")


def chat_list(chats: list[Chat]) -> list[dict]:
    """Return chat objects for a page of chats, loading related rows in few queries."""
    if not chats:
        return []
    contacts = {c.id: c for c in Contact.select().where(Contact.id.in_({c.contact_id for c in chats}))}
    providers = dict(Channel.select(Channel.id, Channel.provider).where(Channel.id.in_({c.channel_id for c in chats})).tuples())
    last_ids = [c.last_message_id for c in chats if c.last_message_id]
    lasts = {m.id: m for m in Message.select().where(Message.id.in_(last_ids))} if last_ids else {}
    return [
        payloads.chat(c, contact_obj=contacts[c.contact_id], provider=providers[c.channel_id], last=lasts.get(c.last_message_id))
        for c in chats
    ]


async def list_chats(request: web.Request) -> web.Response:
    """GET /api/chats: the chats I see, newest activity first, by keyset pages."""
    op = require_operator(request)
    limit = int_param(request, "limit", default=50, low=1, high=100)
    before = int_param(request, "before")
    status = request.query.get("status")
    query = queries.visible_chats(op)
    if status:
        if status not in STATUSES:
            raise Invalid("status is new, active or closed", fields={"status": "invalid"})
        query = query.where(Chat.status == status)
    if request.query.get("mine") in ("1", "true"):
        query = query.where(Chat.operator == op.id)
    if before is not None:
        anchor = Chat.get_or_none(Chat.id == before)
        if anchor is None:
            raise Invalid("before names no chat", fields={"before": "unknown chat"})
        query = query.where(
            (Chat.last_message_at < anchor.last_message_at)
            | ((Chat.last_message_at == anchor.last_message_at) & (Chat.id < anchor.id))
        )
    chats = list(query.order_by(Chat.last_message_at.desc(), Chat.id.desc()).limit(limit))
    return web.json_response(chat_list(chats))


async def get_chat(request: web.Request) -> web.Response:
    """GET /api/chats/{id}."""
    op = require_operator(request)
    return web.json_response(payloads.chat(visible_chat(request, op)))


async def accept(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/accept."""
    op = require_operator(request)
    chat = assignment.accept(request.app[context_key], op, path_id(request))
    return web.json_response(payloads.chat(chat))


async def mark_read(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/read: returns my counters."""
    op = require_operator(request)
    return web.json_response(assignment.mark_read(request.app[context_key], op, visible_chat(request, op)))


async def close(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/close."""
    op = require_operator(request)
    chat = assignment.close(request.app[context_key], op, visible_chat(request, op))
    return web.json_response(payloads.chat(chat))


async def transfer(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/transfer with {operator_id} or {queue_id}."""
    op = require_operator(request)
    chat = visible_chat(request, op)
    data = await read_json(request)
    ids = {}
    for key in ("operator_id", "queue_id"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise Invalid(f"{key} must be an id", fields={key: "not an id"})
        ids[key] = value
    chat = assignment.transfer(request.app[context_key], op, chat, **ids)
    return web.json_response(payloads.chat(chat))


async def actions(request: web.Request) -> web.Response:
    """GET /api/chats/{id}/actions."""
    op = require_operator(request)
    return web.json_response(chat_actions.available(request.app[context_key], visible_chat(request, op)))


async def run_action(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/actions/{code}: run one of the chat's actions; answers {chat, note}."""
    op = require_operator(request)
    chat = visible_chat(request, op)
    # ``body_exists``, not ``can_read_body``: a run again after a conflict reads the kept body.
    params = await read_json(request) if request.body_exists else {}
    code = request.match_info["code"]
    if code not in assignment.BUILTIN_ACTIONS:
        request[ran_outside_rkey] = True  # a plug-in's run may call out: never run it twice
    result = await chat_actions.run(request.app[context_key], op, chat, code, params)
    return web.json_response(result)


async def list_messages(request: web.Request) -> web.Response:
    """GET /api/chats/{id}/messages: keyset pages, oldest first."""
    op = require_operator(request)
    chat = visible_chat(request, op)
    limit = int_param(request, "limit", default=50, low=1, high=200)
    before = int_param(request, "before")
    after = int_param(request, "after")
    items, has_more = queries.message_page(chat.id, before=before, after=after, limit=limit)
    return web.json_response({"messages": payloads.messages(items), "has_more": has_more})


def _kind_of(mime: str) -> str:
    major = mime.split("/", 1)[0]
    return {"image": "image", "video": "video", "audio": "audio"}.get(major, "file")


async def _read_upload(request: web.Request) -> tuple[dict, dict | None]:
    """Stream a multipart reply's file to disk under the upload cap; return (fields, upload)."""
    ctx = request.app[context_key]
    reader = await request.multipart()
    fields: dict[str, str] = {}
    upload = None
    try:
        async for part in reader:
            if part.name == "file" and part.filename is not None:
                if upload is not None:
                    raise Invalid("one file per reply", fields={"file": "one file per reply"})
                mime = part.headers.get("Content-Type") or mimetypes.guess_type(part.filename)[0] or "application/octet-stream"

                async def chunks(part=part):
                    while chunk := await part.read_chunk(64 * 1024):
                        yield chunk

                try:
                    path, size = await store_stream(ctx.settings.media_dir, chunks(), limit=ctx.settings.upload_limit,
                                                    file_name=part.filename, mime=mime)
                except FileTooLarge as exc:
                    raise TooLarge(str(exc)) from exc
                upload = {"path": path, "file_name": part.filename, "mime": mime, "size": size, "kind": _kind_of(mime)}
            elif part.name in ("text", "client_id"):
                fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")[: outbound.MAX_TEXT + 1]
    except BaseException:
        if upload is not None:
            await _discard(request, upload["path"])
        raise
    return fields, upload


async def _discard(request: web.Request, relative: str) -> None:
    """Remove an uploaded file that no message keeps."""
    try:
        await aiofiles.os.remove(resolve(request.app[context_key].settings.media_dir, relative))
    except OSError:
        pass


async def send(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/messages: JSON {text, client_id?} or multipart with text and file."""
    op = require_operator(request)
    chat = visible_chat(request, op)
    if request.content_type.startswith("multipart/"):
        data, upload = await _read_upload(request)
    else:
        data, upload = await read_json(request), None
        if "text" in data and not isinstance(data["text"], str):
            raise Invalid("text must be a string", fields={"text": "not text"})

    async def store() -> tuple[Message, bool]:
        return outbound.reply(request.app[context_key], op, chat, data.get("text") or "",
                              client_id=data.get("client_id"), upload=upload)

    try:
        # Not the whole request again (the multipart body is read once): the reply's transaction.
        message, created = await rerun_on_conflict(store)
    except BaseException:
        if upload is not None:
            await _discard(request, upload["path"])
        raise
    if upload is not None and not created:
        await _discard(request, upload["path"])  # the same client_id again: the first file is the one kept
    return web.json_response(payloads.message(message), status=201 if created else 200)


async def retry(request: web.Request) -> web.Response:
    """POST /api/chats/{id}/messages/{message_id}/retry: queue a failed reply again."""
    op = require_operator(request)
    chat = visible_chat(request, op)
    message = Message.get_or_none((Message.id == path_id(request, "message_id")) & (Message.chat == chat.id))
    if message is None:
        raise NotFound("no such message")
    return web.json_response(payloads.message(outbound.retry(request.app[context_key], op, message)))


async def unread(request: web.Request) -> web.Response:
    """GET /api/unread: my counters."""
    op = require_operator(request)
    return web.json_response(queries.unread_counts(op))


# Served inline only for kinds a browser shows safely; everything else downloads.
INLINE_MIME = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm", "audio/ogg",
               "audio/mpeg", "audio/mp4", "audio/webm", "application/pdf")


def _file_response(path, mime: str | None, file_name: str | None) -> web.FileResponse:
    response = web.FileResponse(path)
    mime = (mime or "").split(";")[0].strip().lower()
    if mime in INLINE_MIME:
        response.content_type = mime
        disposition = "inline"
    else:
        response.content_type = "application/octet-stream"
        disposition = "attachment"
    if file_name:
        disposition += f"; filename*=UTF-8''{quote(file_name, safe='')}"
    response.headers["Content-Disposition"] = disposition
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


async def attachment(request: web.Request) -> web.StreamResponse:
    """GET /api/attachments/{id}: the file, for operators who may see its chat."""
    op = require_operator(request)
    item = Attachment.get_or_none(Attachment.id == path_id(request))
    if item is None or item.message_id is None or not item.path:
        raise NotFound("no such attachment")
    message = Message.get_by_id(item.message_id)
    if not queries.can_see(op, Chat.get_by_id(message.chat_id)):
        raise NotFound("no such attachment")
    try:
        path = resolve(request.app[context_key].settings.media_dir, item.path)
    except FileNotFoundError as exc:
        raise NotFound("the file is gone") from exc
    return _file_response(path, item.mime, item.file_name)


async def avatar(request: web.Request) -> web.StreamResponse:
    """GET /api/contacts/{id}/avatar: a customer's picture, for operators who see one of their chats."""
    op = require_operator(request)
    contact = Contact.get_or_none(Contact.id == path_id(request))
    if contact is None or not contact.avatar_path:
        raise NotFound("no such picture")
    if not any(queries.can_see(op, c) for c in Chat.select().where(Chat.contact == contact.id)):
        raise NotFound("no such picture")
    return _file_response(resolve(request.app[context_key].settings.media_dir, contact.avatar_path), "image/jpeg", None)
