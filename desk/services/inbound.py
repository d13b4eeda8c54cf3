"""Receive: a parsed webhook request -> contacts, chats, messages, attachments stored -> events.

Runs inside one transaction (``Context.write``), so an answered webhook is stored with its events.
Profile look-ups and attachment downloads are queued as jobs and run after the answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging


from desk import events, payloads
from desk.context import Context
from desk.events import Changes
from desk.services import conversations, jobs, notify, routing
from desk.store import Attachment, Channel, Chat, Contact, Message, MessagePart, queries, utcnow
from providers.base import IncomingMessage, ParsedRequest, StatusUpdate

log = logging.getLogger(__name__)

# Re-ask the messenger for a profile at most this often per contact.
PROFILE_REFRESH = dt.timedelta(days=1)
STATUS_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}
# The author of a message the account sent outside the desk (a reply typed in Meta's Page inbox):
# CONTRACT §3 has no author type for the messenger account, and it is no operator's.
ACCOUNT_AUTHOR = "system"


def receive(ctx: Context, changes: Changes, channel: Channel, parsed: ParsedRequest) -> int:
    """Store what one webhook request carries; return how many messages were stored or changed."""
    if parsed.dedupe_key is not None and not queries.add_receipt(channel.id, parsed.dedupe_key):
        return 0
    stored = 0
    targets: dict[str | None, Channel | None] = {None: channel, channel.unique_key: channel}
    for item in parsed.items:
        target = _target(ctx, channel, item.account_key, targets)
        if target is None:
            continue
        if isinstance(item, IncomingMessage) and item.outgoing:
            stored += _outgoing(ctx, changes, target, item)
        elif isinstance(item, IncomingMessage):
            stored += _message(ctx, changes, target, item)
        elif isinstance(item, StatusUpdate):
            stored += _status(changes, target, item)
    return stored


def _target(ctx: Context, channel: Channel, account_key: str | None, cache: dict) -> Channel | None:
    """Return the channel an item is for: the receiving one, or another account of the same app."""
    if account_key in cache:
        return cache[account_key]
    other = Channel.get_or_none(
        (Channel.provider == channel.provider) & (Channel.unique_key == account_key) & (Channel.enabled == True)  # noqa: E712
    )
    if other is not None and not ctx.provider(channel).shares_webhook_with(json.loads(other.config)):
        other = None
    cache[account_key] = other
    return other


def _aware_to_naive(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _contact(channel: Channel, item: IncomingMessage) -> tuple[Contact, bool]:
    incoming = item.contact
    contact = queries.contact_by_external_id(channel.id, incoming.external_id)
    if contact is None:
        contact = queries.create(
            Contact, channel=channel.id, external_id=incoming.external_id, name=incoming.name or "",
            username=incoming.username,
        )
        return contact, True
    changed = False
    if incoming.name and incoming.name != contact.name:
        contact.name, changed = incoming.name, True
    if incoming.username and incoming.username != contact.username:
        contact.username, changed = incoming.username, True
    if changed:
        contact.save()
    return contact, False


def _message(ctx: Context, changes: Changes, channel: Channel, item: IncomingMessage) -> int:
    existing = queries.message_by_external_id(channel.id, item.external_id)
    if existing is not None:
        if not item.is_edit or existing.text == item.text:
            return 0  # a repeated delivery, or an edit that changed nothing we show
        existing.text = item.text
        existing.edited_at = _aware_to_naive(item.sent_at) or utcnow()
        existing.save()
        chat = Chat.get_by_id(existing.chat_id)
        watchers = queries.watchers(chat)
        notify.message_event(changes, events.MESSAGE_UPDATED, existing, watchers)
        if chat.last_message_id == existing.id:
            notify.chat_changed(changes, chat, counters=False)
        return 1

    contact, new_contact = _contact(channel, item)
    chat = queries.open_chat(channel.id, item.chat_external_id)
    created = chat is None
    now = utcnow()
    if chat is None:
        chat = queries.create(
            Chat, channel=channel.id, contact=contact.id, external_id=item.chat_external_id,
            title=item.chat_title, queue=channel.queue_id, status="new", last_message_at=now, created_at=now,
        )
    message = queries.create(
        Message, chat=chat.id, channel_id=channel.id, direction="in", text=item.text, author_type="contact",
        author_id=contact.id, author_name=contact.name or contact.username or contact.external_id,
        status="received", external_id=item.external_id, created_at=now,
        edited_at=now if item.is_edit else None,
    )
    attachments = _attachments(ctx, changes, message, item)
    chat.unread += 1
    chat.last_message_id = message.id
    chat.last_message_at = now
    queries.execute("UPDATE chat SET unread = unread + 1, last_message_id = ?, last_message_at = ? WHERE id = ?",
                    (message.id, Chat.last_message_at.db_value(now), chat.id))
    if new_contact or contact.profile_checked_at is None or contact.profile_checked_at < now - PROFILE_REFRESH:
        if not jobs.pending(jobs.FETCH_PROFILE, contact.id):
            jobs.enqueue(ctx, changes, jobs.FETCH_PROFILE, contact.id, chat_id=chat.id)

    watchers = _announce(changes, channel, chat, contact, message, attachments, created)
    notify.unread(changes, watchers)
    if created:
        routing.route(changes, chat.queue_id)
    return 1


def _announce(changes: Changes, channel: Channel, chat: Chat, contact: Contact, message: Message,
              attachments: list[Attachment], created: bool) -> set[int]:
    """Record a new message of ``chat`` for whoever sees the chat: ``chat.created`` first for a new
    chat, else ``chat.updated`` after the message. One payload each, shared by every operator.
    Returns the operators who see it."""
    watchers = queries.watchers(chat)
    message_data = payloads.message(message, attachments)
    data = notify.chat_payload(chat, contact, provider=channel.provider, last_data=message_data)
    if created:
        changes.add(sorted(watchers), events.CHAT_CREATED, data)
    notify.message_event(changes, events.MESSAGE_CREATED, message, watchers, message_data)
    if not created:
        changes.add(sorted(watchers), events.CHAT_UPDATED, data)
    return watchers


def _attachments(ctx: Context, changes: Changes, message: Message, item: IncomingMessage) -> list[Attachment]:
    """Store the message's attachments; those with something to download get a job (after the answer)."""
    attachments = []
    for incoming in item.attachments:
        attachment = Attachment.create(
            message=message.id, kind=incoming.kind, file_name=incoming.file_name, mime=incoming.mime,
            size=incoming.size, ref=incoming.ref, ready=incoming.ref is None, meta=json.dumps(incoming.meta),
        )
        attachments.append(attachment)
        if incoming.ref is not None:
            jobs.enqueue(ctx, changes, jobs.FETCH_ATTACHMENT, attachment.id)
    return attachments


def _status(changes: Changes, channel: Channel, item: StatusUpdate) -> int:
    if item.kind in ("delivered", "read"):
        return _receipt(changes, channel, item)
    if item.kind == "moved":
        return conversations.move(changes, channel.id, item.chat_external_id, item.moved_to or "")
    if item.kind in ("blocked", "unblocked"):
        chat = queries.open_chat(channel.id, item.chat_external_id)
        if chat is None:
            return 0
        text = "The customer blocked the bot" if item.kind == "blocked" else "The customer unblocked the bot"
        message = Message.create(
            chat=chat.id, channel_id=channel.id, direction="in", text=text, author_type="system",
            author_name="Desk", status="received",
        )
        notify.message_event(changes, events.MESSAGE_CREATED, message, queries.watchers(chat))
        return 1
    # "echo": the messenger's copy of a message the account sent. Our own replies are already
    # stored; a copy of a reply typed outside the desk is not a customer message either.
    return 0


def _receipt(changes: Changes, channel: Channel, item: StatusUpdate) -> int:
    """Move our outgoing messages to delivered / read, never backwards."""
    chats = Chat.select(Chat.id).where((Chat.channel == channel.id) & (Chat.external_id == item.chat_external_id))
    query = Message.select().where((Message.chat.in_(chats)) & (Message.direction == "out") & Message.status.in_(("sent", "delivered")))
    condition = None
    if item.external_ids:
        # The reply's own id is its last part's: a report on any part of it counts for the reply.
        parts = MessagePart.select(MessagePart.message).where(MessagePart.external_id.in_(item.external_ids))
        condition = Message.external_id.in_(item.external_ids) | Message.id.in_(parts)
    watermark = _aware_to_naive(item.watermark)
    if watermark is not None:
        by_time = Message.created_at <= watermark
        condition = by_time if condition is None else (condition | by_time)
    if condition is None:
        return 0
    changed = 0
    for message in query.where(condition).order_by(Message.id):
        if STATUS_RANK.get(item.kind, 0) <= STATUS_RANK.get(message.status, 0):
            continue
        message.status = item.kind
        message.save()
        chat = Chat.get_by_id(message.chat_id)
        notify.message_event(changes, events.MESSAGE_UPDATED, message, queries.watchers(chat))
        changed += 1
    return changed


def _outgoing(ctx: Context, changes: Changes, channel: Channel, item: IncomingMessage) -> int:
    """Store the account's own message sent outside the desk (a Facebook echo) as an outgoing one.

    The copy of the desk's own reply is not stored again: the desk id the provider read from it
    names the reply even while the send's answer is not stored yet (and confirms that part of it,
    ``_confirm``); the messenger's id matches it, or any of its parts, once stored, and matches a
    copy imported before. A copy is no customer message: the chat's status, operator and unread
    counter stay as they are, a closed chat is not reopened and no chat is routed; it goes to the
    conversation's latest chat, or a new closed one.
    """
    reply_id = _own_reply(channel, item) if item.desk_id is not None else None
    if reply_id is not None:
        return _confirm(ctx, changes, reply_id, item)
    parts = MessagePart.select(MessagePart.message).where(MessagePart.external_id == item.external_id)
    known = Message.select(Message.id).where(
        (Message.channel_id == channel.id) & (Message.direction == "out")
        & ((Message.external_id == item.external_id) | Message.id.in_(parts))
    )
    if known.exists():
        return 0
    now = utcnow()
    chat = queries.open_chat(channel.id, item.chat_external_id) or (
        Chat.select()
        .where((Chat.channel == channel.id) & (Chat.external_id == item.chat_external_id))
        .order_by(Chat.id.desc())
        .first()
    )
    created = chat is None
    if chat is None:
        contact, _ = _contact(channel, item)
        chat = queries.create(
            Chat, channel=channel.id, contact=contact.id, external_id=item.chat_external_id, title=item.chat_title,
            queue=channel.queue_id, status="closed", last_message_at=now, created_at=now, closed_at=now,
        )
    else:
        contact = Contact.get_by_id(chat.contact_id)
    message = queries.create(
        Message, chat=chat.id, channel_id=channel.id, direction="out", text=item.text, author_type=ACCOUNT_AUTHOR,
        author_name=channel.name, status="sent", external_id=item.external_id, created_at=now,
    )
    attachments = _attachments(ctx, changes, message, item)
    chat.last_message_id = message.id
    chat.last_message_at = now
    queries.execute("UPDATE chat SET last_message_id = ?, last_message_at = ? WHERE id = ?",
                    (message.id, Chat.last_message_at.db_value(now), chat.id))

    _announce(changes, channel, chat, contact, message, attachments, created)
    return 1


def _own_reply(channel: Channel, item: IncomingMessage) -> int | None:
    """Return ``item.desk_id`` when it is a reply of the desk's in this conversation (not another desk's id)."""
    chats = Chat.select(Chat.id).where((Chat.channel == channel.id) & (Chat.external_id == item.chat_external_id))
    own = Message.select(Message.id).where(
        (Message.id == item.desk_id) & (Message.direction == "out") & Message.chat.in_(chats)
    ).exists()
    return item.desk_id if own else None


def _confirm(ctx: Context, changes: Changes, reply_id: int, item: IncomingMessage) -> int:
    """Count the messenger's copy of a part of the desk's reply as sent; with the last part, the reply.

    The copy proves that the messenger took that message even when the send's answer was lost (a
    timeout, a connection dropped after Meta accepted it): the outbox would otherwise send it
    again, and the customer get it twice. The copy names its part (``desk_part`` of
    ``desk_parts``), and is recorded only as the next part not yet recorded. A copy of a part
    recorded already (the send's answer came first, or a retry sent the part again because this
    copy came late) is not: counted twice, it would make the outbox skip a part never sent and cut
    the reply silently; the customer got that part twice, which nobody could know in time. With
    every part recorded the reply is ``sent``, with the copy's id as the answer would have set it,
    and its outbox job is dropped: a send of it still in flight changes nothing when it ends.
    A ``failed`` reply counts too: its last attempt's answer was lost, yet the customer has it.
    """
    if item.desk_part is None or item.desk_parts is None:
        return 0  # a copy that does not say which part it is (an older send): recognised, no proof
    queries.lock_message(reply_id)
    message = Message.get_by_id(reply_id)
    if message.status not in ("pending", "failed"):
        return 0
    parts = queries.message_parts(reply_id)
    if item.desk_part == len(parts):
        MessagePart.create(message=reply_id, external_id=item.external_id)
        parts.append(item.external_id)
    if len(parts) < item.desk_parts:
        return 0  # the outbox goes on from the part after the last recorded
    message.status, message.error = "sent", None
    if parts[-1]:
        message.external_id = parts[-1]
    message.save()
    jobs.drop(jobs.SEND, reply_id)
    changes.after_commit.append(ctx.wake.set)  # the chat's next reply need not wait for it any more
    notify.message_event(changes, events.MESSAGE_UPDATED, message, queries.watchers(Chat.get_by_id(message.chat_id)))
    return 1
