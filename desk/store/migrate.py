"""Apply the numbered migrations in ``desk/store/migrations`` that the database has not seen."""

from __future__ import annotations

import importlib
import pkgutil

import peewee as pw

from desk.store import migrations


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


def migrate(db: pw.Database) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the numbers applied."""
    applied = []
    for number, name in pending(db):
        module = importlib.import_module(f"{migrations.__name__}.{name}")
        with db.atomic():
            module.apply(db)
            db.execute_sql("INSERT INTO schema_migrations (version) VALUES (%s)" % int(number))
        applied.append(number)
    return applied
