"""Named reads: who sees a chat, an operator's inbox, unread counters, conversation pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import peewee as pw

from desk.store.db import database
from desk.store.models import Channel, Chat, Contact, Message, MessagePart, Operator, OperatorQueue, Receipt, utcnow

OPEN = ("new", "active")


def queue_ids(operator_id: int) -> list[int]:
    """Return the ids of the queues the operator is a member of."""
    return [row.queue_id for row in OperatorQueue.select(OperatorQueue.queue).where(OperatorQueue.operator == operator_id)]


_SQL_CACHE: dict[str, str] = {}
M = TypeVar("M", bound=pw.Model)


def _param(sql: str) -> str:
    """Return ``sql`` with ``?`` placeholders in the bound database's style."""
    text = _SQL_CACHE.get(sql)
    if text is None:
        text = _SQL_CACHE[sql] = sql.replace("?", database.obj.param)
    return text


def execute(sql: str, params: Sequence[Any] = ()) -> Any:
    """Run a hand-written statement (``?`` placeholders) on the bound database; return the cursor.

    The hot path of a webhook uses these: building the same statements through peewee's query
    builder costs more than running them.
    """
    return database.execute_sql(_param(sql), tuple(params))


def lock_operators(operator_ids: Sequence[int]) -> None:
    """Lock operator rows in id order until the transaction ends (PostgreSQL; SQLite has one writer).

    Transactions that update several operators (their ``seq``) in different orders would
    deadlock across processes; taking the rows in one order first makes them queue instead.
    """
    if not operator_ids or isinstance(database.obj, pw.SqliteDatabase):
        return
    marks = ", ".join("?" * len(operator_ids))
    execute(f"SELECT id FROM operator WHERE id IN ({marks}) ORDER BY id FOR NO KEY UPDATE", operator_ids).fetchall()


def lock_message(message_id: int) -> None:
    """Lock a message row until the transaction ends (PostgreSQL; SQLite has one writer).

    The outbox and the messenger's copies of a reply (Facebook echoes) both record its parts and
    settle its status; taken first, the lock makes them read what the other wrote.
    """
    if isinstance(database.obj, pw.SqliteDatabase):
        return
    # NO KEY UPDATE: inserting a part takes a key-share lock on its message, which must not block.
    execute("SELECT id FROM message WHERE id = ? FOR NO KEY UPDATE", (message_id,)).fetchall()


def message_parts(message_id: int) -> list[str]:
    """Return the messenger's ids of the parts of a reply it accepted, in the order sent."""
    query = MessagePart.select(MessagePart.external_id).where(MessagePart.message == message_id)
    return [part.external_id for part in query.order_by(MessagePart.id)]


def admin_ids() -> set[int]:
    """Return the ids of enabled admins."""
    return {row[0] for row in execute("SELECT id FROM operator WHERE role = 'admin' AND enabled = ?", (True,))}


WATCHERS_SQL = (
    "SELECT id FROM operator WHERE enabled = ? AND (role = 'admin' OR id = ? OR "
    "(? AND id IN (SELECT operator_id FROM operator_queue WHERE queue_id = ?)))"
)


def watchers(chat: Chat) -> set[int]:
    """Return the operators who may see ``chat`` as it is now (CONTRACT §4, "who sees what")."""
    waiting = chat.status == "new" and chat.queue_id is not None
    params = (True, chat.operator_id or -1, waiting, chat.queue_id or -1)
    return {row[0] for row in execute(WATCHERS_SQL, params)}


def unread_counts_many(operator_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Return each operator's ``{chats, messages}`` with two queries, whatever their number."""
    if not operator_ids:
        return {}
    marks = ", ".join("?" * len(operator_ids))
    roles: dict[int, str] = {}
    member_of: dict[int, set[int]] = {}
    rows = execute(
        f"SELECT o.id, o.role, oq.queue_id FROM operator o LEFT JOIN operator_queue oq ON oq.operator_id = o.id "
        f"WHERE o.id IN ({marks})", operator_ids,
    )
    for op_id, role, queue_id in rows:
        roles[op_id] = role
        if queue_id is not None:
            member_of.setdefault(op_id, set()).add(queue_id)
    groups = list(execute(
        "SELECT operator_id, queue_id, status, COUNT(*), SUM(unread) FROM chat "
        "WHERE unread > 0 AND status IN ('new', 'active') GROUP BY operator_id, queue_id, status"
    ))
    result = {}
    for op_id, role in roles.items():
        queues = member_of.get(op_id, set())
        chats = messages = 0
        for owner, queue_id, status, count, total in groups:
            if role == "admin" or owner == op_id or (status == "new" and queue_id in queues):
                chats += count
                messages += int(total)
        result[op_id] = {"chats": chats, "messages": messages}
    return result


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


# How the columns of a ``SELECT *`` become a model's fields, by model and column names.
_ROW_PLANS: dict[tuple[type[pw.Model], tuple[str, ...]], tuple[list[str], list[Any]]] = {}


def first_row(model: type[M], sql: str, params: Sequence[Any]) -> M | None:
    """Return the first row of a hand-written ``SELECT *`` as a ``model`` instance, as ``model.raw`` would, or None.

    peewee works out anew for every query which column is which field (``model.raw`` and
    ``select()`` alike); a webhook reads four rows this way, and that cost as much as reading
    them. The mapping is peewee's own, worked out once per model and column list.
    """
    cursor = execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    key = (model, tuple(column[0] for column in cursor.description))
    plan = _ROW_PLANS.get(key)
    if plan is None:
        wrapper = pw.ModelObjectCursorWrapper(cursor, model, [], model)
        wrapper.initialize()
        plan = _ROW_PLANS[key] = (wrapper.unique_columns, wrapper.converters)
    names, converters = plan
    values = {name: value if convert is None else convert(value) for name, convert, value in zip(names, converters, row)}
    instance = model(__no_default__=1, **values)
    instance._dirty.clear()
    return instance


def open_chat(channel_id: int, external_id: str) -> Chat | None:
    """Return the conversation's open chat in the channel, if any."""
    return first_row(Chat, "SELECT * FROM chat WHERE channel_id = ? AND external_id = ? AND status IN ('new', 'active') "
                           "ORDER BY id DESC LIMIT 1", (channel_id, external_id))


def message_by_external_id(channel_id: int, external_id: str) -> Message | None:
    """Return the channel's customer message with the messenger's id, if stored."""
    return first_row(Message, "SELECT * FROM message WHERE channel_id = ? AND direction = 'in' AND external_id = ?",
                     (channel_id, external_id))


def contact_by_external_id(channel_id: int, external_id: str) -> Contact | None:
    """Return the channel's contact with the messenger's id, if known."""
    return first_row(Contact, "SELECT * FROM contact WHERE channel_id = ? AND external_id = ?", (channel_id, external_id))


def add_receipt(channel_id: int, key: str) -> bool:
    """Record a webhook delivery key; False when it was recorded before (a duplicate delivery)."""
    rows = execute(
        "INSERT INTO receipt (channel_id, key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        (channel_id, key, Receipt.created_at.db_value(utcnow())),
    )
    return rows.fetchone() is not None


_INSERT_CACHE: dict[tuple[str, tuple[str, ...]], tuple[str, list[pw.Field]]] = {}


def create(model: type[M], **values: Any) -> M:
    """Insert a row with a cached statement and return the instance (``Model.create`` without the query builder)."""
    values = {**model._meta.get_default_dict(), **values}
    names = tuple(values)
    key = (model._meta.table_name, names)
    cached = _INSERT_CACHE.get(key)
    if cached is None:
        fields = [model._meta.fields[name] for name in names]
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        marks = ", ".join("?" * len(fields))
        cached = _INSERT_CACHE[key] = (f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks}) RETURNING id', fields)
    sql, fields = cached
    params = [field.db_value(values[field.name]) for field in fields]
    new_id = execute(sql, params).fetchone()[0]
    return model(id=new_id, **values)


_MANY_CACHE: dict[tuple[str, tuple[str, ...], int], str] = {}


def insert_rows(model: type[pw.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows of already converted values with one cached multi-row INSERT (no query building)."""
    if not rows:
        return
    key = (model._meta.table_name, tuple(names), len(rows))
    sql = _MANY_CACHE.get(key)
    if sql is None:
        columns = ", ".join(f'"{model._meta.fields[name].column_name}"' for name in names)
        row = "(" + ", ".join("?" * len(names)) + ")"
        sql = _MANY_CACHE[key] = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ' + ", ".join([row] * len(rows))
    execute(sql, [value for values in rows for value in values])


def channel_by_id(channel_id: int) -> Channel | None:
    """Return the channel with this id, if any (every webhook looks its channel up)."""
    return first_row(Channel, "SELECT * FROM channel WHERE id = ?", (channel_id,))


def active_count(operator_id: int) -> int:
    """Return how many active chats the operator has (for routing by capacity)."""
    return Chat.select().where((Chat.operator == operator_id) & (Chat.status == "active")).count()
