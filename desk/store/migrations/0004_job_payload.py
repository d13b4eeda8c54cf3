"""0004: jobs can carry a JSON payload (an action's delivery, such as a transcript to post)."""

from __future__ import annotations

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate


def apply(db: pw.Database) -> None:
    """Add ``job.payload``."""
    migrate(SchemaMigrator.from_database(db).add_column("job", "payload", pw.TextField(null=True)))
