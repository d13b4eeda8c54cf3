"""0003: a message's messenger id is unique per channel and direction.

Customer messages are deduplicated by their messenger id; our replies carry the id the messenger
gave them. The two come from different counters on some messengers (and from any counter on an
outside system), so one unique index over both made a reply's status update fail on a clash.
"""

from __future__ import annotations

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate


def apply(db: pw.Database) -> None:
    """Replace the (channel_id, external_id) unique index by (channel_id, direction, external_id)."""
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.drop_index("message", "message_channel_id_external_id"),
        migrator.add_index("message", ("channel_id", "direction", "external_id"), True),
    )
