"""Model -> JSON-safe dict, one function per entity: shared by the JSON API and socket events."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from desk.store import Attachment, Channel, Chat, Contact, Message, Operator, OperatorQueue, Queue


def iso(value: dt.datetime | None) -> str | None:
    """Format a stored (naive UTC) time as ISO 8601 with Z."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def operator(op: Operator, queue_ids: list[int] | None = None) -> dict[str, Any]:
    """Return the operator object of CONTRACT §3."""
    if queue_ids is None:
        queue_ids = [m.queue_id for m in OperatorQueue.select(OperatorQueue.queue).where(OperatorQueue.operator == op.id).order_by(OperatorQueue.queue)]
    return {
        "id": op.id,
        "login": op.login,
        "name": op.name,
        "role": op.role,
        "status": op.status,
        "max_chats": op.max_chats,
        "queue_ids": queue_ids,
        "enabled": op.enabled,
    }


def queue(q: Queue) -> dict[str, Any]:
    """Return the queue object of CONTRACT §5."""
    return {"id": q.id, "name": q.name, "routing": q.routing, "actions": json.loads(q.actions)}


def channel(ch: Channel, base_url: str) -> dict[str, Any]:
    """Return the channel object of CONTRACT §3 (never its secrets)."""
    return {
        "id": ch.id,
        "provider": ch.provider,
        "name": ch.name,
        "enabled": ch.enabled,
        "queue_id": ch.queue_id,
        "webhook_url": f"{base_url}/webhooks/{ch.id}",
        "registered": ch.registered,
        "registration_error": ch.registration_error,
    }


def contact(c: Contact) -> dict[str, Any]:
    """Return the contact object of CONTRACT §3."""
    return {
        "id": c.id,
        "channel_id": c.channel_id,
        "external_id": c.external_id,
        "name": c.name,
        "username": c.username,
        "avatar_url": f"/api/contacts/{c.id}/avatar" if c.avatar_path else None,
    }


def attachment(a: Attachment) -> dict[str, Any]:
    """Return the attachment object of CONTRACT §3."""
    data = {
        "id": a.id,
        "kind": a.kind,
        "file_name": a.file_name,
        "mime": a.mime,
        "size": a.size,
        "url": f"/api/attachments/{a.id}" if a.path else None,
        "ready": a.ready,
        "error": a.error,
    }
    meta = json.loads(a.meta or "{}")
    if meta:
        data["meta"] = meta
    return data


def message(m: Message, attachments: list[Attachment] | None = None) -> dict[str, Any]:
    """Return the message object of CONTRACT §3."""
    if attachments is None:
        attachments = list(Attachment.select().where(Attachment.message == m.id).order_by(Attachment.id))
    return {
        "id": m.id,
        "chat_id": m.chat_id,
        "direction": m.direction,
        "text": m.text,
        "author": {"type": m.author_type, "id": m.author_id, "name": m.author_name},
        "attachments": [attachment(a) for a in attachments],
        "status": m.status,
        "error": m.error,
        "created_at": iso(m.created_at),
        "edited_at": iso(m.edited_at),
        "client_id": m.client_id,
    }


def messages(items: list[Message]) -> list[dict[str, Any]]:
    """Return message objects for a page, loading their attachments in one query."""
    by_message: dict[int, list[Attachment]] = {m.id: [] for m in items}
    if items:
        for a in Attachment.select().where(Attachment.message.in_(list(by_message))).order_by(Attachment.id):
            by_message[a.message_id].append(a)
    return [message(m, by_message[m.id]) for m in items]


def chat(c: Chat, *, contact_obj: Contact | None = None, provider: str | None = None,
         last: Message | None = None, last_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the chat object of CONTRACT §3; pass related rows already loaded to save queries."""
    contact_obj = contact_obj or Contact.get_by_id(c.contact_id)
    if provider is None:
        provider = Channel.select(Channel.provider).where(Channel.id == c.channel_id).scalar()
    if last_data is None and last is None and c.last_message_id:
        last = Message.get_or_none(Message.id == c.last_message_id)
    if last_data is None and last is not None:
        last_data = message(last)
    return {
        "id": c.id,
        "channel_id": c.channel_id,
        "provider": provider,
        "contact": contact(contact_obj),
        "external_id": c.external_id,
        "title": c.title,
        "queue_id": c.queue_id,
        "status": c.status,
        "operator_id": c.operator_id,
        "unread": c.unread,
        "last_message": last_data,
        "last_message_at": iso(c.last_message_at),
        "created_at": iso(c.created_at),
        "closed_at": iso(c.closed_at),
    }
