"""Routing: which online member of a queue gets a waiting chat (manual, round_robin, least_busy).

Waiting chats are assigned oldest first: a chat is never assigned while an older chat of the same
queue waits. Each assignment is a conditional update (the chat must still be waiting), so two
processes routing at once never assign one chat twice; capacity is counted inside the same
transaction, which SQLite's single writer and, on PostgreSQL, a row lock on the queue serialise
(``lock_queues``).
"""

from __future__ import annotations

from collections.abc import Iterable

import peewee as pw

from desk.events import Changes
from desk.services import notify
from desk.store import Chat, Operator, OperatorQueue, Queue, is_sqlite, queries, utcnow

AUTOMATIC = ("round_robin", "least_busy")


def _candidates(queue_id: int) -> list[tuple[Operator, int]]:
    """Return online, enabled members with room, with their active chat counts."""
    members = list(
        Operator.select().join(OperatorQueue, on=(OperatorQueue.operator == Operator.id))
        .where((OperatorQueue.queue == queue_id) & (Operator.enabled == True) & (Operator.status == "online"))  # noqa: E712
        .order_by(Operator.id)
    )
    if not members:
        return []
    counts = dict(
        Chat.select(Chat.operator, pw.fn.COUNT(Chat.id))
        .where((Chat.operator.in_([m.id for m in members])) & (Chat.status == "active"))
        .group_by(Chat.operator).tuples()
    )
    return [(m, counts.get(m.id, 0)) for m in members if counts.get(m.id, 0) < m.max_chats]


def _returning_operator(chat: Chat, candidates: list[tuple[Operator, int]]) -> Operator | None:
    """Return the customer's last operator when they are a candidate."""
    last = (
        Chat.select(Chat.operator).where((Chat.contact == chat.contact_id) & (Chat.id != chat.id) & Chat.operator.is_null(False))
        .order_by(Chat.id.desc()).first()
    )
    if last is None:
        return None
    return next((op for op, _ in candidates if op.id == last.operator_id), None)


def _pick(queue: Queue, chat: Chat, candidates: list[tuple[Operator, int]]) -> Operator | None:
    if not candidates:
        return None
    back = _returning_operator(chat, candidates)
    if back is not None:
        return back
    if queue.routing == "least_busy":
        return min(candidates, key=lambda item: (item[1], item[0].id))[0]
    # round_robin: the member after the one who was assigned last in this queue.
    last = (
        Chat.select(Chat.operator).where((Chat.queue == queue.id) & Chat.assigned_at.is_null(False))
        .order_by(Chat.assigned_at.desc(), Chat.id.desc()).first()
    )
    ids = [op.id for op, _ in candidates]
    if last is not None:
        after = [op for op, _ in candidates if op.id > last.operator_id]
        if after:
            return after[0]
    return candidates[0][0] if ids else None


def lock_queues(queue_ids: Iterable[int]) -> None:
    """Serialise routing of these queues across processes until the transaction ends (PostgreSQL).

    Take it before changing an operator row in a transaction that routes: a routing transaction
    holds its queue and then updates operator rows (their ``seq``), so the other order deadlocks.
    ``NO KEY UPDATE`` rather than ``UPDATE``: inserting a chat takes a key-share lock on its
    queue, which must not block (two webhooks would deadlock on their new chats).
    """
    if is_sqlite():
        return  # one writer at a time already
    ids = sorted(set(queue_ids))
    if ids:
        list(Queue.select(Queue.id).where(Queue.id.in_(ids)).order_by(Queue.id).for_update("FOR NO KEY UPDATE"))


def route(changes: Changes, queue_id: int | None) -> int:
    """Assign the queue's waiting chats, oldest first, while members have room; return how many."""
    if queue_id is None:
        return 0
    queue = Queue.get_or_none(Queue.id == queue_id)
    if queue is None or queue.routing not in AUTOMATIC:
        return 0
    lock_queues([queue_id])
    assigned = 0
    waiting = Chat.select().where((Chat.queue == queue_id) & (Chat.status == "new") & Chat.operator.is_null()).order_by(Chat.id)
    for chat in waiting:
        op = _pick(queue, chat, _candidates(queue_id))
        if op is None:
            break
        before = queries.watchers(chat)
        won = (
            Chat.update(operator=op.id, status="active", assigned_at=utcnow())
            .where((Chat.id == chat.id) & (Chat.status == "new") & Chat.operator.is_null())
            .execute()
        )
        if not won:
            continue
        chat = Chat.get_by_id(chat.id)
        notify.chat_changed(changes, chat, before=before, created_for={op.id} - before)
        assigned += 1
    return assigned


def route_for_operator(changes: Changes, operator_id: int) -> int:
    """Route the queues of an operator who came online or got room."""
    queue_ids = sorted(queries.queue_ids(operator_id))
    lock_queues(queue_ids)
    return sum(route(changes, queue_id) for queue_id in queue_ids)
