"""The store decision, measured: how Desk's writes should run on the event loop.

The same write transaction as a webhook's core (read the chat; insert the message; bump the
chat's unread counter; reserve the operator's next ``seq``; insert the event-log row) is run by
``--callers`` concurrent asyncio tasks against one SQLite file (WAL, ``synchronous=NORMAL``,
``busy_timeout=5000``: Desk's pragmas, from desk.store.db), through Desk's models, in each mode:

- ``sync-loop``: synchronous peewee, called directly on the event loop (Desk's choice);
- ``executor-1``: synchronous peewee in a single-thread executor (one writer thread);
- ``pwasyncio-*``: ``playhouse.pwasyncio.AsyncSqliteDatabase`` (aiosqlite, greenlet bridge) with a
  pool of 10 connections and plain (deferred) ``BEGIN``, with ``BEGIN IMMEDIATE``, and with a pool
  of one connection; skipped when the installed peewee has no pwasyncio or aiosqlite is missing;
- ``sqlite3-loop``: the same statements as plain sqlite3 on the loop: the floor.

For each mode: transactions per second, errors by kind ("database is locked" included), and the
event-loop lag seen by a probe task meanwhile (a blocked loop delays every other request).

Run: ``python bench/store_modes.py`` (about a minute); ``--seconds 5 --callers 32`` to change the load.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import peewee as pw  # noqa: E402

from bench.common import lag_probe, machine, machine_busy, prioritise, summary_ms  # noqa: E402

CHATS = 200


def seed(path: Path) -> None:
    """Create Desk's schema and the rows the transaction refers to."""
    from desk.store import open_database
    from desk.store.migrate import migrate

    db = open_database(f"sqlite:///{path}")
    migrate(db)
    db.close()
    conn = sqlite3.connect(path)
    now = "2026-01-01 00:00:00"
    with conn:
        conn.execute(
            "INSERT INTO queue(id, name, routing, actions, created_at) VALUES (1, 'General', 'manual', '[]', ?)", (now,)
        )
        conn.execute(
            "INSERT INTO operator(id, login, name, password_hash, role, status, max_chats, enabled, last_seq,"
            " created_at) VALUES (1, 'admin', 'Admin', 'x', 'admin', 'online', 5, 1, 0, ?)",
            (now,),
        )
        conn.execute(
            "INSERT INTO channel(id, provider, name, enabled, queue_id, config, secret, unique_key, registered,"
            " created_at) VALUES (1, 'telegram', 'Bench', 1, 1, '{}', 's', '1', 1, ?)",
            (now,),
        )
        conn.executemany(
            "INSERT INTO contact(id, channel_id, external_id, name) VALUES (?, 1, ?, 'C')",
            ((i, str(i)) for i in range(1, CHATS + 1)),
        )
        conn.executemany(
            "INSERT INTO chat(id, channel_id, contact_id, external_id, queue_id, status, unread,"
            " last_message_at, created_at) VALUES (?, 1, ?, ?, 1, 'new', 0, ?, ?)",
            ((i, i, str(i), now, now) for i in range(1, CHATS + 1)),
        )
    conn.close()


def peewee_tx(db: pw.Database, lock: str | None) -> Callable[[int], None]:
    """Return the transaction written with Desk's models, for ``db`` (already bound to the proxy)."""
    from desk.store import Chat, Event, Message, Operator, utcnow

    def tx(n: int) -> None:
        chat_id = n % CHATS + 1
        with db.atomic(lock) if lock else db.atomic():
            chat = Chat.get_by_id(chat_id)
            now = utcnow()
            message = Message.create(
                chat=chat.id,
                channel_id=1,
                direction="in",
                text=f"message {n}",
                author_type="contact",
                author_name="C",
                status="received",
                external_id=f"m{n}",
                created_at=now,
            )
            Chat.update(unread=Chat.unread + 1, last_message_id=message.id, last_message_at=now).where(
                Chat.id == chat_id
            ).execute()
            seq = next(
                iter(
                    Operator.update(last_seq=Operator.last_seq + 1)
                    .where(Operator.id == 1)
                    .returning(Operator.last_seq)
                    .execute()
                )
            ).last_seq
            Event.insert(
                operator=1, seq=seq, name="message.created", data=json.dumps({"id": message.id}), created_at=now
            ).execute()

    return tx


def sqlite3_tx(conn: sqlite3.Connection) -> Callable[[int], None]:
    """Return the same transaction as plain sqlite3 statements."""

    def tx(n: int) -> None:
        chat_id = n % CHATS + 1
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("SELECT * FROM chat WHERE id = ?", (chat_id,)).fetchone()
            message_id = conn.execute(
                "INSERT INTO message(chat_id, channel_id, direction, text, author_type, author_name, status, external_id,"
                " created_at) VALUES (?, 1, 'in', ?, 'contact', 'C', 'received', ?, ?) RETURNING id",
                (chat_id, f"message {n}", f"m{n}", now),
            ).fetchone()[0]
            conn.execute(
                "UPDATE chat SET unread = unread + 1, last_message_id = ?, last_message_at = ? WHERE id = ?",
                (message_id, now, chat_id),
            )
            seq = conn.execute(
                "UPDATE operator SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq"
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO event(operator_id, seq, name, data, created_at) VALUES (1, ?, 'message.created', ?, ?)",
                (seq, json.dumps({"id": message_id}), now),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    return tx


async def drive(run_one: Callable[[int], Any], callers: int, seconds: float, limit: int) -> dict[str, Any]:
    """Run ``run_one(n)`` (a coroutine) from ``callers`` tasks for ``seconds``; count successes and errors."""
    lags: list[tuple[float, float]] = []
    probe = asyncio.create_task(lag_probe(lags, 0.002))
    errors: Counter[str] = Counter()
    durations: list[float] = []
    counter = iter(range(limit))
    start = time.monotonic()
    deadline = start + seconds

    async def caller() -> None:
        for n in counter:
            if time.monotonic() >= deadline:
                return
            began = time.monotonic()
            try:
                await run_one(n)
                durations.append(time.monotonic() - began)
            except Exception as exc:  # counted and reported: the point of the comparison
                text = str(exc) or type(exc).__name__
                errors["database is locked" if "locked" in text else f"{type(exc).__name__}: {text[:60]}"] += 1
            await asyncio.sleep(0)

    busy0, cpu0 = machine_busy(), _cpu()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.monotonic() - start
    cpu = _cpu() - cpu0
    busy = (machine_busy() - busy0) / elapsed
    probe.cancel()
    lag = summary_ms([v for _, v in lags])
    return {
        "tx_per_s": len(durations) / elapsed,
        "tx_per_cpu_s": len(durations) / cpu if cpu else float("nan"),
        "cpu": cpu / elapsed,
        "ok": len(durations),
        "errors": dict(errors),
        "latency": summary_ms(durations),
        "lag": lag,
        "machine_busy": busy,
    }


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_sync_loop(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Desk's choice: synchronous peewee on the loop, BEGIN IMMEDIATE."""
    from desk.store import open_database

    db = open_database(f"sqlite:///{path}")
    tx = peewee_tx(db, "IMMEDIATE")

    async def one(n: int) -> None:
        tx(n)

    try:
        return asyncio.run(drive(one, args.callers, args.seconds, args.limit))
    finally:
        db.close()


def run_executor(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Synchronous peewee in one writer thread."""
    from desk.store import open_database

    db = open_database(f"sqlite:///{path}")
    tx = peewee_tx(db, "IMMEDIATE")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")

    async def one(n: int) -> None:
        await asyncio.get_running_loop().run_in_executor(pool, tx, n)

    try:
        return asyncio.run(drive(one, args.callers, args.seconds, args.limit))
    finally:
        pool.shutdown()
        db.close()


def run_pwasyncio(path: Path, args: argparse.Namespace, pool_size: int, lock: str | None) -> dict[str, Any]:
    """playhouse.pwasyncio's AsyncSqliteDatabase with a pool of ``pool_size`` connections."""
    from playhouse.pwasyncio import AsyncSqliteDatabase

    from desk.store import database
    from desk.store.db import SQLITE_PRAGMAS

    async def main() -> dict[str, Any]:
        db = AsyncSqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, pool_size=pool_size, timeout=5)
        database.initialize(db)
        tx = peewee_tx(db, lock)

        async def one(n: int) -> None:
            await db.run(tx, n)

        try:
            return await drive(one, args.callers, args.seconds, args.limit)
        finally:
            await db.close_pool()

    return asyncio.run(main())


def run_sqlite3(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Plain sqlite3 on the loop: the floor."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    conn.execute("PRAGMA busy_timeout=5000")
    tx = sqlite3_tx(conn)

    async def one(n: int) -> None:
        tx(n)

    try:
        return asyncio.run(drive(one, args.callers, args.seconds, args.limit))
    finally:
        conn.close()


def pwasyncio_missing() -> str | None:
    """Say why pwasyncio cannot run here, or None."""
    try:
        import playhouse.pwasyncio  # noqa: F401
    except ImportError as exc:
        return f"playhouse.pwasyncio not in peewee {pw.__version__}: {exc}"
    try:
        import aiosqlite  # noqa: F401
    except ImportError:
        return "aiosqlite is not installed (pip install aiosqlite)"
    return None


def main() -> int:
    """Run every mode on a fresh database each and print the table."""
    parser = argparse.ArgumentParser(prog="bench/store_modes.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--callers", type=int, default=16, help="concurrent asyncio tasks writing")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each mode's run")
    parser.add_argument("--limit", type=int, default=200_000, help="most transactions per mode")
    args = parser.parse_args()
    prioritise()
    print(f"machine: {machine()}; peewee {pw.__version__}; SQLite {sqlite3.sqlite_version}", flush=True)
    missing = pwasyncio_missing()
    modes: list[tuple[str, Callable[[Path], dict[str, Any]]]] = [
        ("sync-loop (Desk: peewee on the loop, BEGIN IMMEDIATE)", lambda p: run_sync_loop(p, args)),
        ("executor-1 (peewee in one writer thread)", lambda p: run_executor(p, args)),
    ]
    if missing is None:
        modes += [
            ("pwasyncio, pool 10, BEGIN (deferred)", lambda p: run_pwasyncio(p, args, 10, None)),
            ("pwasyncio, pool 10, BEGIN IMMEDIATE", lambda p: run_pwasyncio(p, args, 10, "IMMEDIATE")),
            ("pwasyncio, pool 1", lambda p: run_pwasyncio(p, args, 1, None)),
        ]
    modes.append(("sqlite3 on the loop (floor, same statements)", lambda p: run_sqlite3(p, args)))
    rows = []
    for name, run in modes:
        with tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp:
            path = Path(tmp) / "desk.db"
            seed(path)
            result = run(path)
        errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "0"
        line = (
            f"| {name} | {result['tx_per_s']:,.0f} | {result['tx_per_cpu_s']:,.0f} | {result['cpu']:.0%} "
            f"| {result['latency']['p50']:.2f} / {result['latency']['p99']:.1f} | {errors} "
            f"| {result['lag']['p99']:.1f} / {result['lag']['max']:.1f} ({result['lag']['n']}) | {result['machine_busy']:.0%} |"
        )
        print(line, flush=True)
        rows.append(line)
    if missing:
        rows.append(f"| pwasyncio | not run: {missing} | | | | | | |")
    text = "\n".join(
        [
            f"{args.callers} concurrent callers, {args.seconds:.0f} s per mode, one transaction = read chat + insert message"
            " + update chat counter + reserve seq + insert event row",
            "",
            "| mode | tx/s | tx per CPU-second | process CPU | tx latency p50 / p99 ms | errors "
            "| loop lag p99 / max ms (samples) | machine busy (2 CPUs = 200%) |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
            *rows,
        ]
    )
    print()
    print(text)
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"store-modes-{stamp}.md").write_text(text + "\n")
    print(f"\nwritten: bench/out/store-modes-{stamp}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
