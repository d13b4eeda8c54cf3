"""Event names, the per-transaction event recorder, and the bus that hands committed events on.

A change records its events with ``Changes.add`` inside its transaction. ``Changes.flush`` runs
last in that transaction: it gives each operator the next ``seq`` numbers and writes the event
log rows, so an event exists in the replay log exactly when its change was committed. After the
commit the records go to the bus, whose subscriber (``desk.realtime.listener``) emits them.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from desk.store import Event, queries, utcnow

CHAT_CREATED = "chat.created"
CHAT_UPDATED = "chat.updated"
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
UNREAD_UPDATED = "unread.updated"
OPERATOR_UPDATED = "operator.updated"

NAMES = (CHAT_CREATED, CHAT_UPDATED, MESSAGE_CREATED, MESSAGE_UPDATED, UNREAD_UPDATED, OPERATOR_UPDATED)


@dataclasses.dataclass(frozen=True)
class Record:
    """Record: one event for one operator: operator_id, seq, name, data (the payload without seq), text.

    ``text`` is ``data`` as JSON, as written to the event log. A change's payloads are shared by
    the operators who see it: encoded once here, the emit reuses the text instead of encoding
    the payload again for each operator (bench/RESULTS.md, "Where a webhook's time goes").
    """

    operator_id: int
    seq: int
    name: str
    data: dict[str, Any]
    text: str = dataclasses.field(repr=False, compare=False)

    def payload(self) -> dict[str, Any]:
        """Return the payload as emitted: the object plus ``seq``."""
        return {**self.data, "seq": self.seq}

    def payload_json(self) -> str:
        """Return ``payload()`` as JSON, the same text ``json.dumps(payload(), separators=(",", ":"))`` gives."""
        if "seq" in self.data:  # seq would take the place of the data's own; never the case today
            return json.dumps(self.payload(), separators=(",", ":"))
        if self.text == "{}":
            return f'{{"seq":{self.seq}}}'
        return f'{self.text[:-1]},"seq":{self.seq}}}'


class Changes:
    """The events of one transaction, in the order they were recorded."""

    def __init__(self) -> None:
        self._items: list[tuple[int, str, dict[str, Any]]] = []
        self.after_commit: list[Callable[[], None]] = []

    def add(self, operator_ids: Iterable[int], name: str, data: dict[str, Any]) -> None:
        """Record ``name`` with ``data`` for each operator in ``operator_ids``."""
        for operator_id in operator_ids:
            self._items.append((operator_id, name, data))

    def add_each(self, operator_ids: Iterable[int], name: str, data_for: Callable[[int], dict[str, Any]]) -> None:
        """Record ``name`` for each operator with data computed for that operator."""
        for operator_id in operator_ids:
            self._items.append((operator_id, name, data_for(operator_id)))

    def flush(self) -> list[Record]:
        """Number the events per operator and write them to the log; call inside the transaction."""
        if not self._items:
            return []
        counts: dict[int, int] = defaultdict(int)
        for operator_id, _, _ in self._items:
            counts[operator_id] += 1
        by_count: dict[int, list[int]] = defaultdict(list)
        for operator_id, count in counts.items():
            by_count[count].append(operator_id)
        next_seq: dict[int, int] = {}
        if len(counts) > 1:
            queries.lock_operators(sorted(counts))
        for count, ids in by_count.items():
            # One UPDATE reserves the numbers of every operator given as many events, and its row
            # locks serialise concurrent writers.
            marks = ", ".join("?" * len(ids))
            rows = queries.execute(
                f"UPDATE operator SET last_seq = last_seq + ? WHERE id IN ({marks}) RETURNING id, last_seq",
                [count, *ids],
            )
            for operator_id, last in rows:
                next_seq[operator_id] = last - count + 1
        records = []
        encoded: dict[int, str] = {}
        now = Event.created_at.db_value(utcnow())
        rows = []
        for operator_id, name, data in self._items:
            if operator_id not in next_seq:
                continue  # the operator was deleted in this transaction
            seq = next_seq[operator_id]
            next_seq[operator_id] = seq + 1
            text = encoded.get(id(data))
            if text is None:
                text = encoded[id(data)] = json.dumps(data, separators=(",", ":"))
            records.append(Record(operator_id, seq, name, data, text))
            rows.append((operator_id, seq, name, text, now))
        # Cached multi-row INSERTs: peewee's insert_many builds its SQL anew each time, which cost
        # more than the insert itself on the webhook path (bench/RESULTS.md).
        for start in range(0, len(rows), 500):
            queries.insert_rows(Event, ("operator", "seq", "name", "data", "created_at"), rows[start : start + 500])
        self._items.clear()
        return records


class Bus:
    """Hands committed records to subscribers (the socket listener) in this process."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[list[Record]], None]] = []

    def subscribe(self, callback: Callable[[list[Record]], None]) -> None:
        """Call ``callback`` with each batch of committed records."""
        self._subscribers.append(callback)

    def publish(self, records: list[Record]) -> None:
        """Pass committed records on; never raises into the caller's request."""
        if not records:
            return
        for callback in self._subscribers:
            callback(records)
