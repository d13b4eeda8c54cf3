"""Send: an agent's reply is stored as ``pending`` with an outbox job; the job calls the provider.

The outbound rules live here, once for every provider: plain text only, one send at a time per
chat, the messenger's rate limits and ``retry_after`` kept, and a failure stored on the message.
"""

from __future__ import annotations

import logging

import peewee as pw

from desk import events
from desk.context import Context
from desk.services import conversations, jobs, notify
from desk.services.errors import Conflict, Invalid
from desk.store import Attachment, Channel, Chat, Job, Message, MessagePart, Operator, atomic, queries, utcnow
from providers.base import OutgoingAttachment, OutgoingMessage, SendError

log = logging.getLogger(__name__)

MAX_TEXT = 20_000
MAX_CLIENT_ID = 100
# A send that keeps failing for transient reasons ends failed after this many attempts.
MAX_SEND_ATTEMPTS = 8


def reply(
    ctx: Context, op: Operator, chat: Chat, text: str, *, client_id: str | None = None,
    upload: dict | None = None,
) -> tuple[Message, bool]:
    """Store an agent reply with its outbox job; return (message, created).

    ``upload`` is a file already streamed to disk: {path, file_name, mime, size, kind}. The same
    ``client_id`` again in the chat returns the message already created, and sends nothing more.
    """
    text = text or ""
    if not text.strip() and upload is None:
        raise Invalid("a reply needs text or a file", fields={"text": "required"})
    if len(text) > MAX_TEXT:
        raise Invalid(f"the text is longer than {MAX_TEXT} characters", fields={"text": "too long"})
    if client_id is not None and (not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID):
        raise Invalid("client_id must be a string of at most 100 characters", fields={"client_id": "invalid"})
    if client_id:
        existing = Message.get_or_none((Message.chat == chat.id) & (Message.client_id == client_id))
        if existing is not None:
            return existing, False
    try:
        with ctx.write() as changes:
            chat = Chat.get_by_id(chat.id)
            if chat.status == "closed":
                raise Conflict("the chat is closed", code="chat_closed")
            before = queries.watchers(chat)
            if chat.operator_id is None or chat.status == "new":
                if chat.operator_id not in (None, op.id):
                    raise Conflict("another operator has this chat", code="taken")
                chat.operator = op.id  # replying to a waiting chat takes it
                chat.status = "active"
            elif chat.operator_id != op.id and op.role != "admin":
                raise Conflict("another operator has this chat", code="taken")
            now = utcnow()
            message = Message.create(
                chat=chat.id, channel_id=chat.channel_id, direction="out", text=text, author_type="operator",
                author_id=op.id, author_name=op.name, status="pending", client_id=client_id or None, created_at=now,
            )
            if upload is not None:
                Attachment.create(
                    message=message.id, kind=upload["kind"], file_name=upload["file_name"], mime=upload["mime"],
                    size=upload["size"], path=upload["path"], ready=True,
                )
            chat.last_message_id = message.id
            chat.last_message_at = now
            chat.save()
            jobs.enqueue(ctx, changes, jobs.SEND, message.id, chat_id=chat.id)
            watchers = queries.watchers(chat)
            notify.message_event(changes, events.MESSAGE_CREATED, message, watchers)
            notify.chat_changed(changes, chat, before=before, counters=before != watchers)
    except pw.IntegrityError:
        # The same client_id raced in through another request or process.
        existing = Message.get_or_none((Message.chat == chat.id) & (Message.client_id == client_id))
        if existing is None:
            raise
        return existing, False
    return message, True


def retry(ctx: Context, op: Operator, message: Message) -> Message:
    """Queue a failed reply again (the desk's "retry")."""
    if message.direction != "out" or message.status != "failed":
        raise Conflict("only a failed reply can be retried", code="not_failed")
    with ctx.write() as changes:
        message.status, message.error = "pending", None
        message.save()
        jobs.enqueue(ctx, changes, jobs.SEND, message.id, chat_id=message.chat_id)
        notify.message_event(changes, events.MESSAGE_UPDATED, message, queries.watchers(Chat.get_by_id(message.chat_id)))
    return message


def _set_status(ctx: Context, message_id: int, status: str, *, error: str | None = None,
                external_id: str | None = None) -> None:
    """Settle a pending reply; one settled meanwhile is left as it is.

    The messenger's copy of the reply (a Facebook echo) may have confirmed it while its send was
    in flight, and a delivery report moved it on since: neither is undone by the send's outcome.
    """
    with ctx.write() as changes:
        queries.lock_message(message_id)
        message = Message.get_by_id(message_id)
        if message.status != "pending":
            return
        message.status = status
        message.error = error
        if external_id:  # some sends come back without an id (Graph with a user_ref)
            message.external_id = external_id
        message.save()
        notify.message_event(changes, events.MESSAGE_UPDATED, message, queries.watchers(Chat.get_by_id(message.chat_id)))


async def send_job(ctx: Context, job: Job) -> jobs.Retry | None:
    """Send one queued reply through its channel's provider."""
    message = Message.get_or_none(Message.id == job.ref_id)
    if message is None or message.status != "pending":
        return None  # already sent (a crash after the send was recorded) or gone
    chat = Chat.get_by_id(message.chat_id)
    channel = Channel.get_by_id(chat.channel_id)
    if not channel.enabled:
        _set_status(ctx, message.id, "failed", error="the channel is disabled")
        return None
    provider = ctx.provider(channel)
    attachment = None
    stored = Attachment.select().where((Attachment.message == message.id) & Attachment.path.is_null(False)).first()
    if stored is not None:
        attachment = OutgoingAttachment(
            path=str(ctx.settings.media_dir / stored.path), file_name=stored.file_name or "file",
            mime=stored.mime or "application/octet-stream", kind=stored.kind,
        )
    limits = provider.limits
    later = await worker_limiter(ctx).wait_turn(channel.id, chat.external_id, limits.per_chat_interval,
                                                limits.per_second)
    if later:
        return jobs.Retry(later, counts=False)
    if Message.select(Message.status).where(Message.id == message.id).scalar() != "pending":
        return None  # the messenger's copy of it came while the send waited for its turn: it was sent after all
    parts_sent = queries.message_parts(message.id)
    next_part = len(parts_sent)

    async def keep_part(part_id: str) -> None:
        # Committed before the next part goes: a retry, even after a crash, starts after it. The
        # messenger's copy of this very part may have been counted already (an echo faster than
        # the answer, or of an earlier attempt whose answer was lost): counted twice, it would
        # make a retry skip a part never sent.
        nonlocal next_part
        with atomic():
            queries.lock_message(message.id)
            if len(queries.message_parts(message.id)) <= next_part:
                MessagePart.create(message=message.id, external_id=part_id)
        next_part += 1

    outgoing = OutgoingMessage(chat.external_id, message.text, message.id, attachment, parts_sent, keep_part)
    try:
        result = await provider.send(outgoing)
    except SendError as exc:
        if exc.moved_to and exc.moved_to != chat.external_id:
            # The messenger moved the conversation (a Telegram group became a supergroup): follow
            # it, and send again there. It uses up an attempt, so a messenger that keeps moving
            # it cannot hold the reply forever.
            with ctx.write() as changes:
                conversations.move(changes, channel.id, chat.external_id, exc.moved_to)
            return jobs.Retry(0, error=exc.reason)
        if exc.retry_after and not exc.permanent:
            # The messenger said when to come back (a 429): waiting is honouring it, not a failed attempt.
            await worker_limiter(ctx).block(channel.id, chat.external_id, exc.retry_after)
            return jobs.Retry(exc.retry_after, error=exc.reason, counts=False)
        if exc.permanent or job.attempts + 1 >= MAX_SEND_ATTEMPTS:
            _set_status(ctx, message.id, "failed", error=exc.reason)
            return None
        return jobs.Retry(jobs.backoff(job.attempts + 1), error=exc.reason)
    _set_status(ctx, message.id, "sent", external_id=result.external_id)
    return None


def worker_limiter(ctx: Context) -> jobs.RateLimiter:
    """Return the rate limiter the app set up (over Redis with ``--redis``), else one of this process."""
    if ctx.limiter is None:
        ctx.limiter = jobs.RateLimiter()
    return ctx.limiter
