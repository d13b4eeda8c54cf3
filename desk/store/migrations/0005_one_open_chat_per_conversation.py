"""0005: at most one open chat per conversation of a channel.

Two first messages of a returning customer, arriving at once on two processes, could each open
a chat. With this partial unique index the second insert fails, the webhook's write is retried
(``Context.write_retrying``) and then finds the chat the first one opened.
"""

from __future__ import annotations

import peewee as pw


def apply(db: pw.Database) -> None:
    """Create a partial unique index on (channel_id, external_id) of open chats."""
    db.execute_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS chat_one_open_per_conversation "
        "ON chat (channel_id, external_id) WHERE status IN ('new', 'active')"
    )
