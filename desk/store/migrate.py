"""Apply the numbered migrations in ``desk/store/migrations`` that the database has not seen."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterator

import peewee as pw

from desk.store import migrations

# The advisory lock key that serialises migrations across processes (any constant unique to Desk).
SCHEMA_LOCK = 0x6465736B  # "desk"


def _applied(db: pw.Database) -> set[int]:
    db.execute_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    return {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}


def pending(db: pw.Database) -> list[tuple[int, str]]:
    """Return (number, module name) of each migration not yet applied, in order."""
    done = _applied(db)
    found = []
    for info in pkgutil.iter_modules(migrations.__path__):
        number, _, _ = info.name.partition("_")
        if number.isdigit() and int(number) not in done:
            found.append((int(number), info.name))
    return sorted(found)


@contextlib.contextmanager
def schema_lock(db: pw.Database) -> Iterator[None]:
    """Hold the schema lock: on PostgreSQL, processes that start together migrate one at a time.

    A session-level advisory lock, so it may be taken again inside (migrate takes it too).
    """
    if not isinstance(db, pw.PostgresqlDatabase):
        yield
        return
    db.execute_sql("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def migrate(db: pw.Database) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the numbers applied."""
    applied = []
    with schema_lock(db):
        for number, name in pending(db):
            module = importlib.import_module(f"{migrations.__name__}.{name}")
            with db.atomic():
                module.apply(db)
                db.execute_sql("INSERT INTO schema_migrations (version) VALUES (%s)" % int(number))
            applied.append(number)
    return applied
