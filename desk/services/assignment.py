"""Chat actions: accept, mark read, transfer, close; operator status. Each records its events."""

from __future__ import annotations

import json

from desk.context import Context
from desk.services import notify, routing
from desk.services.errors import Conflict, Invalid, NotFound
from desk.store import Chat, Operator, Queue, queries, utcnow

STATUSES = ("online", "busy", "offline")

# The built-in chat actions (CONTRACT §4 GetChatActions), by code, with their titles.
BUILTIN_ACTIONS = {"accept": "Accept", "transfer": "Transfer", "close": "Close"}
STATE_ACTIONS = {"new": ("accept", "transfer", "close"), "active": ("transfer", "close"), "closed": ()}


def accept(ctx: Context, op: Operator, chat_id: int) -> Chat:
    """Assign the chat to ``op`` and make it active; 409 if another operator has it."""
    with ctx.write() as changes:
        chat = Chat.get_or_none(Chat.id == chat_id)
        if chat is None or not queries.can_see(op, chat):
            # A queue member who lost the race no longer sees the chat: that is a conflict too.
            if chat is not None and chat.operator_id not in (None, op.id) and chat.queue_id in queries.queue_ids(op.id):
                raise Conflict("another operator accepted this chat", code="taken")
            raise NotFound("no such chat")
        if chat.status == "closed":
            raise Conflict("the chat is closed", code="chat_closed")
        if chat.operator_id not in (None, op.id):
            raise Conflict("another operator has this chat", code="taken")
        before = queries.watchers(chat)
        # A conditional update: of two operators accepting at once, exactly one wins.
        won = (
            Chat.update(operator=op.id, status="active", assigned_at=utcnow())
            .where((Chat.id == chat.id) & (Chat.operator.is_null() | (Chat.operator == op.id)) & (Chat.status != "closed"))
            .execute()
        )
        if not won:
            raise Conflict("another operator accepted this chat", code="taken")
        chat = Chat.get_by_id(chat.id)
        notify.chat_changed(changes, chat, before=before, created_for={op.id} - before)
    return chat


def mark_read(ctx: Context, op: Operator, chat: Chat) -> dict[str, int]:
    """Mark the chat's incoming messages read; return my counters afterwards."""
    if chat.unread:
        with ctx.write() as changes:
            Chat.update(unread=0).where(Chat.id == chat.id).execute()
            chat = Chat.get_by_id(chat.id)
            notify.chat_changed(changes, chat)
    return queries.unread_counts(op)


def close(ctx: Context, op: Operator, chat: Chat) -> Chat:
    """Close the chat; a later customer message opens a new one."""
    if chat.status == "closed":
        return chat
    with ctx.write() as changes:
        # The chat's operator has room again, in each of their queues. Those queues are locked
        # before the chat changes: see lock_queues.
        freed = chat.operator_id if chat.status == "active" else None
        routing.lock_queues(routing.freed_queues(chat.queue_id, freed))
        before = queries.watchers(chat)
        chat.status = "closed"
        chat.closed_at = utcnow()
        chat.unread = 0
        if chat.operator_id is None:
            chat.operator = op.id  # whoever closed a waiting chat answers for it in the history
        chat.save()
        notify.chat_changed(changes, chat, before=before)
        routing.route(changes, chat.queue_id, freed=freed)
    return chat


def transfer(ctx: Context, op: Operator, chat: Chat, *, operator_id: int | None, queue_id: int | None) -> Chat:
    """Give the chat to another operator (active) or put it back in a queue (new)."""
    if (operator_id is None) == (queue_id is None):
        raise Invalid("give exactly one of operator_id or queue_id", fields={"operator_id": "one of", "queue_id": "one of"})
    if chat.status == "closed":
        raise Conflict("the chat is closed", code="chat_closed")
    with ctx.write() as changes:
        # The chat's operator, when it leaves them, has room again in each of their queues.
        freed = chat.operator_id if chat.status == "active" and chat.operator_id != operator_id else None
        routing.lock_queues(routing.freed_queues(queue_id, freed))  # before the chat: see lock_queues
        before = queries.watchers(chat)
        if operator_id is not None:
            target = Operator.get_or_none((Operator.id == operator_id) & (Operator.enabled == True))  # noqa: E712
            if target is None:
                raise Invalid("no such operator", fields={"operator_id": "unknown"})
            chat.operator, chat.status, chat.assigned_at = target.id, "active", utcnow()
        else:
            queue = Queue.get_or_none(Queue.id == queue_id)
            if queue is None:
                raise Invalid("no such queue", fields={"queue_id": "unknown"})
            chat.queue, chat.operator, chat.status = queue.id, None, "new"
        chat.save()
        now = queries.watchers(chat)
        notify.chat_changed(changes, chat, before=before, created_for=now - before)
        routing.route(changes, queue_id, freed=freed)
    return chat


def actions(chat: Chat) -> list[dict[str, str]]:
    """Return ``[{code, title}]``: what the chat's queue and state allow."""
    allowed = set(BUILTIN_ACTIONS)
    if chat.queue_id:
        queue = Queue.get_or_none(Queue.id == chat.queue_id)
        if queue is not None:
            allowed = set(json.loads(queue.actions))
    codes = [code for code in STATE_ACTIONS[chat.status] if code in allowed]
    if chat.status == "active" and not codes:
        codes = ["close"]  # an active chat can always be closed
    return [{"code": code, "title": BUILTIN_ACTIONS[code]} for code in codes]


def set_status(ctx: Context, op: Operator, status: str) -> Operator:
    """Change an operator's status and tell admins and the operator."""
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", fields={"status": "invalid"})
    if op.status == status:
        return op
    with ctx.write() as changes:
        if status == "online":
            routing.lock_queues(queries.queue_ids(op.id))  # before the operator row: see lock_queues
        op.status = status
        Operator.update(status=status).where(Operator.id == op.id).execute()
        notify.operator_changed(changes, op)
        if status == "online":
            routing.route_for_operator(changes, op.id)
    return op
