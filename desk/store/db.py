"""The database: a DatabaseProxy that ``create_app`` binds, and the transaction helper.

Decision (measured, see README "Architecture"): peewee runs synchronously on the event loop.
Every write is one short transaction on one connection, so the process is its own single
writer; SQLite runs in WAL mode with ``synchronous=NORMAL`` (a committed transaction survives a
killed process; only an OS crash can lose the last commits) and ``BEGIN IMMEDIATE`` so that a
second process never deadlocks upgrading a read lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    # Wait for another process's write instead of failing with "database is locked".
    "busy_timeout": 5000,
    "cache_size": -16000,
}


def open_database(url: str) -> peewee.Database:
    """Open the database at a peewee ``db_url`` and bind the proxy to it."""
    scheme = urlsplit(url).scheme
    if scheme.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    elif scheme.startswith("postgres"):
        db = connect(url)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…")
    database.initialize(db)
    db.connect(reuse_if_open=True)
    return db


def is_sqlite() -> bool:
    """Whether the bound database is SQLite."""
    return isinstance(database.obj, peewee.SqliteDatabase)


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """Run the block in one transaction (``BEGIN IMMEDIATE`` on SQLite)."""
    if is_sqlite():
        with database.obj.atomic("IMMEDIATE"):
            yield
    else:
        with database.atomic():
            yield


def ping() -> bool:
    """Whether the database answers."""
    try:
        database.execute_sql("SELECT 1")
        return True
    except peewee.PeeweeException:
        with contextlib.suppress(Exception):
            database.close()
            database.connect(reuse_if_open=True)
        return False
