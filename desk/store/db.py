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


# PostgreSQL SQLSTATEs of a transaction aborted because of a concurrent one: deadlock detected,
# serialization failure, and a unique violation (another process inserted the same key first).
CONFLICT_CODES = frozenset({"40P01", "40001", "23505"})


def is_conflict(exc: BaseException) -> bool:
    """Whether the database aborted a transaction because of a concurrent one (running it again may succeed)."""
    # peewee raises its own exception while handling the driver's, which carries the SQLSTATE.
    for candidate in (exc, exc.__cause__, exc.__context__, *exc.args[:1]):
        if getattr(candidate, "pgcode", None) in CONFLICT_CODES:
            return True
    return False


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
