"""Move: a conversation the messenger gave a new id (a Telegram group upgraded to a supergroup).

The messenger stops taking the old id, so the desk re-keys what it holds under it: the chats of
the conversation, open and closed, keep their history, agent and queue under the new id, and a
contact that was the conversation itself (a group writing as itself) follows it. The move is
learnt either from the messenger's notice (a webhook) or from a send it refused (the outbox).
"""

from __future__ import annotations

import logging

from desk.events import Changes
from desk.services import notify, routing
from desk.store import Chat, Contact, queries, utcnow

log = logging.getLogger(__name__)


def move(changes: Changes, channel_id: int, old: str, new: str) -> int:
    """Re-key the conversation ``old`` of a channel to ``new``; return how many chats moved.

    Runs in the caller's transaction. Moving what has already moved changes nothing, so the
    messenger's two notices of one upgrade, and a refused send after them, are all safe.
    """
    if not new or new == old:
        return 0
    open_old = queries.open_chat(channel_id, old)
    if open_old is not None and queries.open_chat(channel_id, new) is not None:
        # A message under the new id came before the notice and opened a chat of its own: the
        # conversation goes on there (one open chat per conversation), this one closes. Its
        # replies still pending are sent to the new id.
        log.warning("chat %s moved to %s, where a chat is already open: closing it", open_old.id, new)
        freed = open_old.operator_id if open_old.status == "active" else None
        routing.lock_queues(routing.freed_queues(open_old.queue_id, freed))  # before the chat: see lock_queues
        before = queries.watchers(open_old)
        open_old.status, open_old.closed_at, open_old.unread = "closed", utcnow(), 0
        open_old.save()
        notify.chat_changed(changes, open_old, before=before)
        routing.route(changes, open_old.queue_id, freed=freed)
        open_old = None
    moved = Chat.update(external_id=new).where((Chat.channel == channel_id) & (Chat.external_id == old)).execute()
    if queries.contact_by_external_id(channel_id, new) is None:
        Contact.update(external_id=new).where((Contact.channel == channel_id) & (Contact.external_id == old)).execute()
    if open_old is not None:
        # The agents who see it learn its new external_id.
        notify.chat_changed(changes, Chat.get_by_id(open_old.id), counters=False)
    return moved
