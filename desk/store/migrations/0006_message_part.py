"""0006: the parts of a reply the messenger took as several messages.

A reply past the messenger's limit goes as several messages. Each part's id is stored as soon as
the messenger accepts it: a send retried after a 429, a network error or a restart skips the parts
already delivered (the customer saw duplicates before), and every part's id leads back to the reply.
"""

from __future__ import annotations

import peewee as pw


class Message(pw.Model):
    """The message table as the foreign key needs it (only its id); never created here."""

    class Meta:
        table_name = "message"


class MessagePart(pw.Model):
    # the reply it is a part of
    message = pw.ForeignKeyField(Message, backref="parts", on_delete="CASCADE")
    external_id = pw.CharField(max_length=300)

    class Meta:
        table_name = "message_part"
        indexes = ((("external_id",), False),)


def apply(db: pw.Database) -> None:
    """Create ``message_part``."""
    with db.bind_ctx([Message, MessagePart]):
        db.create_tables([MessagePart])
