"""0002: when a chat was last assigned, so that round-robin routing knows whose turn it is."""

from __future__ import annotations

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate


def apply(db: pw.Database) -> None:
    """Add ``chat.assigned_at``."""
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("chat", "assigned_at", pw.DateTimeField(null=True)),
        migrator.add_index("chat", ("queue_id", "assigned_at"), False),
    )
