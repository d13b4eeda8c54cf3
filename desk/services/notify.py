"""Record the events of a chat change for the operators entitled to them (CONTRACT §7)."""

from __future__ import annotations

from collections.abc import Iterable

from desk import events, payloads
from desk.events import Changes
from desk.store import Chat, Contact, Message, Operator, queries


def chat_payload(chat: Chat, contact: Contact | None = None, last: Message | None = None, *,
                 provider: str | None = None, last_data: dict | None = None) -> dict:
    """Return the chat object for events."""
    return payloads.chat(chat, contact_obj=contact, last=last, provider=provider, last_data=last_data)


def unread(changes: Changes, operator_ids: Iterable[int]) -> None:
    """Record each operator's recomputed counters as ``unread.updated``."""
    counts = queries.unread_counts_many(sorted(set(operator_ids)))
    for operator_id in sorted(counts):
        changes.add((operator_id,), events.UNREAD_UPDATED, counts[operator_id])


def chat_changed(
    changes: Changes,
    chat: Chat,
    *,
    before: set[int] | None = None,
    created_for: set[int] | None = None,
    counters: bool = True,
    payload: dict | None = None,
) -> set[int]:
    """Record ``chat.updated`` (``chat.created`` for ``created_for``) for whoever sees the chat now.

    ``before`` is who saw it before the change: those who lose it get one last ``chat.updated``.
    Returns the operators who see it now.
    """
    now = queries.watchers(chat)
    data = payload or chat_payload(chat)
    created_for = created_for or set()
    changes.add(sorted(created_for & now), events.CHAT_CREATED, data)
    updated = (now | (before or set())) - created_for
    changes.add(sorted(updated), events.CHAT_UPDATED, data)
    if counters:
        unread(changes, now | (before or set()))
    return now


def message_event(changes: Changes, name: str, message: Message, operator_ids: Iterable[int],
                  data: dict | None = None) -> dict:
    """Record ``message.created`` or ``message.updated`` for the operators given."""
    data = data or payloads.message(message)
    changes.add(sorted(set(operator_ids)), name, data)
    return data


def operator_changed(changes: Changes, op: Operator) -> None:
    """Record ``operator.updated`` for admins and the operator."""
    changes.add(sorted(queries.admin_ids() | {op.id}), events.OPERATOR_UPDATED, payloads.operator(op))


def open_chat_ids(op: Operator) -> set[int]:
    """Return the ids of the open chats ``op`` sees now."""
    query = queries.visible_chats(op).select(Chat.id).where(Chat.status.in_(queries.OPEN))
    return {row.id for row in query}


def view_changed(changes: Changes, op: Operator, before: set[int]) -> None:
    """Tell an operator whose role or queues changed: chats that came into view, the last word on those that left."""
    after = open_chat_ids(op)
    for chat in Chat.select().where(Chat.id.in_(sorted(after ^ before))).order_by(Chat.id):
        name = events.CHAT_CREATED if chat.id in after else events.CHAT_UPDATED
        changes.add((op.id,), name, chat_payload(chat))
    if after != before:
        unread(changes, (op.id,))
