"""Named reads: who sees a chat, an operator's inbox, unread counters, conversation pages."""

from __future__ import annotations

import peewee as pw

from desk.store.models import Chat, Message, Operator, OperatorQueue

OPEN = ("new", "active")


def queue_ids(operator_id: int) -> list[int]:
    """Return the ids of the queues the operator is a member of."""
    return [row.queue_id for row in OperatorQueue.select(OperatorQueue.queue).where(OperatorQueue.operator == operator_id)]


def admin_ids() -> set[int]:
    """Return the ids of enabled admins."""
    return {row.id for row in Operator.select(Operator.id).where((Operator.role == "admin") & (Operator.enabled == True))}  # noqa: E712


def watchers(chat: Chat) -> set[int]:
    """Return the operators who may see ``chat`` as it is now (CONTRACT §4, "who sees what")."""
    ids = admin_ids()
    if chat.operator_id:
        ids.add(chat.operator_id)
    if chat.status == "new" and chat.queue_id:
        members = (
            OperatorQueue.select(OperatorQueue.operator)
            .join(Operator)
            .where((OperatorQueue.queue == chat.queue_id) & (Operator.enabled == True))  # noqa: E712
        )
        ids.update(row.operator_id for row in members)
    return ids


def can_see(op: Operator, chat: Chat) -> bool:
    """Whether ``op`` may see (and act on) ``chat``."""
    if not op.enabled:
        return False
    if op.role == "admin" or chat.operator_id == op.id:
        return True
    return chat.status == "new" and chat.queue_id is not None and chat.queue_id in queue_ids(op.id)


def visible_chats(op: Operator) -> pw.ModelSelect:
    """Return a query of the chats ``op`` may see."""
    query = Chat.select()
    if op.role == "admin":
        return query
    mine = Chat.operator == op.id
    queues = queue_ids(op.id)
    if queues:
        return query.where(mine | ((Chat.status == "new") & Chat.queue.in_(queues)))
    return query.where(mine)


def unread_counts(op: Operator) -> dict[str, int]:
    """Return ``{chats, messages}``: open chats I see with unread incoming messages, and how many.

    Reads the per-chat counters kept in the message transaction; never counts messages.
    """
    condition = (Chat.unread > 0) & Chat.status.in_(OPEN)
    if op.role != "admin":
        queues = queue_ids(op.id)
        mine = Chat.operator == op.id
        condition &= (mine | ((Chat.status == "new") & Chat.queue.in_(queues))) if queues else mine
    row = Chat.select(pw.fn.COUNT(Chat.id), pw.fn.COALESCE(pw.fn.SUM(Chat.unread), 0)).where(condition).tuples().get()
    return {"chats": int(row[0]), "messages": int(row[1])}


def message_page(chat_id: int, *, before: int | None, after: int | None, limit: int) -> tuple[list[Message], bool]:
    """Return a keyset page of a chat's messages, oldest first, and whether more remain that way."""
    query = Message.select().where(Message.chat == chat_id)
    if after is not None:
        rows = list(query.where(Message.id > after).order_by(Message.id).limit(limit + 1))
        return rows[:limit], len(rows) > limit
    if before is not None:
        query = query.where(Message.id < before)
    rows = list(query.order_by(Message.id.desc()).limit(limit + 1))
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


def open_chat(channel_id: int, external_id: str) -> Chat | None:
    """Return the conversation's open chat in the channel, if any."""
    return (
        Chat.select()
        .where((Chat.channel == channel_id) & (Chat.external_id == external_id) & Chat.status.in_(OPEN))
        .order_by(Chat.id.desc())
        .first()
    )


def active_count(operator_id: int) -> int:
    """Return how many active chats the operator has (for routing by capacity)."""
    return Chat.select().where((Chat.operator == operator_id) & (Chat.status == "active")).count()
