"""Routing: which online member of a queue gets a waiting chat (manual, round_robin, least_busy).

Waiting chats are assigned oldest first: a chat is never assigned while an older chat of the same
queue waits. Each assignment is a conditional update (the chat must still be waiting), so two
processes routing at once never assign one chat twice; capacity is counted inside the same
transaction, which SQLite's single writer serialises and, on PostgreSQL, row locks: on the queue
(``lock_queues``), and on the operators (``lock_operators_of``), since an agent who is a member of
two queues can be counted by two processes routing those two queues at once.
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


def _lock_waiting(queue_id: int, limit: int) -> list[Chat]:
    """Return the queue's ``limit`` oldest waiting chats, locked until the transaction ends (PostgreSQL)."""
    query = (
        Chat.select().where((Chat.queue == queue_id) & (Chat.status == "new") & Chat.operator.is_null())
        .order_by(Chat.id).limit(limit)
    )
    if not is_sqlite():
        query = query.for_update("FOR NO KEY UPDATE")  # not a key lock: messages still insert into them
    return list(query)


def lock_operators_of(queue_ids: Iterable[int]) -> None:
    """Lock the rows of the admins and of these queues' members in id order until the transaction ends (PostgreSQL).

    Capacity is counted under these locks: of two processes routing two queues an agent is a
    member of, the second counts after the first committed. They are also every operator the
    assignments' events go to, taken at once in the order ``Changes.flush`` takes them: holding
    some and taking the others at the flush would deadlock with another transaction's flush.
    """
    ids = sorted(set(queue_ids))
    if is_sqlite() or not ids:
        return  # one writer at a time already
    marks = ", ".join("?" * len(ids))
    queries.execute(
        "SELECT id FROM operator WHERE role = 'admin' OR id IN "
        f"(SELECT operator_id FROM operator_queue WHERE queue_id IN ({marks})) ORDER BY id FOR NO KEY UPDATE",
        ids,
    ).fetchall()


def freed_queues(queue_id: int | None, operator_id: int | None) -> list[int]:
    """Return the queues to route once a chat of ``queue_id`` no longer takes room of ``operator_id``.

    The room an operator gets back (a chat closed or given away) is room in every queue they are
    a member of: a chat waiting in another of their queues must not wait for some other change.
    """
    ids = set(queries.queue_ids(operator_id)) if operator_id is not None else set()
    if queue_id is not None:
        ids.add(queue_id)
    return sorted(ids)


def route(changes: Changes, queue_id: int | None, *, freed: int | None = None) -> int:
    """Assign the queue's waiting chats, oldest first, while members have room; return how many.

    ``freed``: an operator who just got room back; the queues they are a member of are routed too
    (``freed_queues``). A transaction that changes a chat and then routes locks those queues
    before the chat (``lock_queues``), in the order ``_route`` takes its locks.
    """
    return _route(changes, freed_queues(queue_id, freed))


def route_for_operator(changes: Changes, operator_id: int) -> int:
    """Route the queues of an operator who came online or got room."""
    return _route(changes, queries.queue_ids(operator_id))


def _route(changes: Changes, queue_ids: Iterable[int]) -> int:
    """Assign the waiting chats of these queues (the automatic ones), oldest first in each; return how many.

    Locks in one order: the queues, the chats that may be assigned, then the operators. It is the
    order of every transaction that changes a chat and then records its events, so a customer
    writing into a waiting chat while it is routed waits instead of deadlocking.
    """
    queues = list(
        Queue.select().where(Queue.id.in_(sorted(set(queue_ids))) & Queue.routing.in_(AUTOMATIC)).order_by(Queue.id)
    )
    if not queues:
        return 0
    lock_queues([queue.id for queue in queues])
    plan = []
    for queue in queues:
        # The room seen before the operators are locked bounds how many chats this can assign.
        room = sum(op.max_chats - count for op, count in _candidates(queue.id))
        waiting = _lock_waiting(queue.id, room) if room > 0 else []
        if waiting:
            plan.append((queue, waiting))
    if not plan:
        return 0
    lock_operators_of(queue.id for queue, _ in plan)
    assigned = 0
    # Oldest first across the queues too: an agent of two queues with room for one more chat
    # gets the one that has waited longest. A queue whose chat finds no one stops there: its
    # younger chats must not go before it.
    full: set[int] = set()
    oldest_first = sorted(((queue, chat) for queue, waiting in plan for chat in waiting), key=lambda item: item[1].id)
    for queue, chat in oldest_first:
        if queue.id in full:
            continue
        op = _pick(queue, chat, _candidates(queue.id))  # counted under the operators' locks
        if op is None:
            full.add(queue.id)
            continue
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
