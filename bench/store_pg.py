"""Store benchmark on PostgreSQL (TARGETS P8, P9): bench/store.py's reads against a PostgreSQL database.

Builds, in a database of the bench's own (``desk_bench_store``, dropped afterwards), the data of
bench/store.py: schema by ``desk.store.migrate``, then ``--messages`` messages of which
``--chat-messages`` in chat 1 (interleaved with the rest), every ``--attachment-every``-th with an
attachment, ``--chats`` chats of which ``--operator-chats`` are the agent's active chats. The rows
are made by PostgreSQL itself (``INSERT ... SELECT ... FROM generate_series``), then ANALYZEd.

Then, each ``--repeat`` times: the latest page of chat 1 with its attachment metadata, an older
page by keyset cursor at random depths, the unread badges of the agent with 1,000 chats and of an
admin, with Desk's code (``queries.message_page`` + ``payloads.messages`` + ``json.dumps``;
``queries.unread_counts``) beside raw psycopg2 running the same SQL; the same reads through the
real app's HTTP routes (in-process server on 127.0.0.1); and an ``OFFSET`` 90% deep for scale.

Run: ``python bench/store_pg.py`` (1M messages); ``--messages 200000 --chat-messages 20000`` for a
quick look. bench/scale.py runs it as its ``store`` part.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backends import pg_database  # noqa: E402
from bench.common import machine, prioritise, summary_ms  # noqa: E402
from bench.store import serve_and_time, timed  # noqa: E402

PAGE = 50
T0 = "2026-01-01 00:00:00"


def build(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Create the schema with Desk's migrations, then let PostgreSQL generate the rows."""
    import psycopg2

    from desk.store import open_database
    from desk.store.migrate import migrate

    db = open_database(url)
    migrate(db)
    db.close()
    chats, total, big = args.chats, args.messages, args.chat_messages
    every = max(1, total // big)
    started = time.monotonic()
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            "INSERT INTO queue(id, name, routing, actions, created_at) VALUES (1, 'General', 'manual', '[]', %s)",
            (T0,),
        )
        for op_id, login, role in ((1, "admin", "admin"), (2, "agent", "agent"), (3, "other", "agent")):
            cur.execute(
                "INSERT INTO operator(id, login, name, password_hash, role, status, max_chats, enabled, last_seq,"
                " created_at) VALUES (%s, %s, %s, 'x', %s, 'online', 5000, true, 0, %s)",
                (op_id, login, login.title(), role, T0),
            )
        cur.execute("INSERT INTO operator_queue(operator_id, queue_id) VALUES (2, 1), (3, 1)")
        cur.execute(
            "INSERT INTO channel(id, provider, name, enabled, queue_id, config, secret, unique_key, registered,"
            " created_at) VALUES (1, 'telegram', 'Bench', true, 1, '{}', 's', '1', true, %s)",
            (T0,),
        )
        cur.execute(
            "INSERT INTO contact(id, channel_id, external_id, name)"
            " SELECT i, 1, (1000 + i)::text, 'Customer ' || i FROM generate_series(1, %s) i",
            (chats,),
        )
        # Chat 1 is the long conversation (the agent's); chats 2..operator_chats are the agent's
        # other active chats; the rest are new in the queue, another agent's, or closed.
        cur.execute(
            """
            INSERT INTO chat(id, channel_id, contact_id, external_id, queue_id, status, operator_id, unread,
                             last_message_at, created_at)
            SELECT i, 1, i, (1000 + i)::text, 1,
                   CASE WHEN i <= %(mine)s THEN 'active' WHEN i %% 10 = 0 THEN 'new'
                        WHEN i %% 10 = 1 THEN 'active' ELSE 'closed' END,
                   CASE WHEN i <= %(mine)s THEN 2 WHEN i %% 10 = 0 THEN NULL ELSE 3 END,
                   CASE WHEN i <= %(mine)s THEN (i * 7919) %% 6 WHEN i %% 10 = 0 THEN 1 + (i * 7919) %% 3
                        WHEN i %% 10 = 1 THEN (i * 7919) %% 6 ELSE 0 END,
                   %(t0)s::timestamp + i * interval '1 second', %(t0)s::timestamp
            FROM generate_series(1, %(chats)s) i
            """,
            {"mine": args.operator_chats, "chats": chats, "t0": T0},
        )
        cur.execute(
            """
            INSERT INTO message(id, chat_id, channel_id, direction, text, author_type, author_id, author_name,
                                status, external_id, created_at)
            SELECT mid, chat, 1,
                   CASE WHEN mid %% 3 = 0 THEN 'out' ELSE 'in' END,
                   'message ' || mid || ' ' || repeat('x', mid %% 80),
                   CASE WHEN mid %% 3 = 0 THEN 'operator' ELSE 'contact' END,
                   CASE WHEN mid %% 3 = 0 THEN 2 ELSE chat END,
                   CASE WHEN mid %% 3 = 0 THEN 'Agent' ELSE 'Customer ' || chat END,
                   CASE WHEN mid %% 3 = 0 THEN 'sent' ELSE 'received' END,
                   chat || ':' || mid,
                   %(t0)s::timestamp + mid * interval '1 second'
            FROM (SELECT mid, CASE WHEN mid %% %(every)s = 0 AND mid / %(every)s <= %(big)s THEN 1
                                   ELSE 2 + mid %% (%(chats)s - 1) END AS chat
                  FROM generate_series(1, %(total)s) mid) m
            """,
            {"every": every, "big": big, "chats": chats, "total": total, "t0": T0},
        )
        cur.execute(
            """
            INSERT INTO attachment(message_id, kind, file_name, mime, size, path, ready, meta)
            SELECT mid, CASE WHEN mid %% 2 = 1 THEN 'image' ELSE 'file' END, 'file-' || mid || '.jpg', 'image/jpeg',
                   1000 + mid %% 5000, 'media/' || mid || '.jpg', true, '{}'
            FROM generate_series(%(step)s, %(total)s, %(step)s) mid
            """,
            {"step": args.attachment_every, "total": total},
        )
        for table in ("queue", "operator", "channel", "contact", "chat", "message"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM \"{table}\"))")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT id FROM message WHERE chat_id = 1 ORDER BY id")
        big_ids = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT pg_database_size(current_database())")
        size = cur.fetchone()[0]
    conn.close()
    return {"build_s": time.monotonic() - started, "big_ids": big_ids, "size_mb": size / 1024 / 1024}


def raw_page(cur: Any, chat_id: int, before: int | None) -> str:
    """The baseline: the same page and attachments with psycopg2, as JSON."""
    if before is None:
        cur.execute("SELECT * FROM message WHERE chat_id = %s ORDER BY id DESC LIMIT %s", (chat_id, PAGE + 1))
    else:
        cur.execute(
            "SELECT * FROM message WHERE chat_id = %s AND id < %s ORDER BY id DESC LIMIT %s",
            (chat_id, before, PAGE + 1),
        )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    has_more = len(rows) > PAGE
    rows = rows[:PAGE][::-1]
    ids = tuple(r["id"] for r in rows)
    files: dict[int, list[dict]] = {i: [] for i in ids}
    cur.execute(
        "SELECT id, message_id, kind, file_name, mime, size, ready FROM attachment WHERE message_id IN %s ORDER BY id",
        (ids,),
    )
    for a in cur.fetchall():
        files[a[1]].append({"id": a[0], "kind": a[2], "file_name": a[3], "mime": a[4], "size": a[5], "ready": a[6]})
    return json.dumps(
        {"messages": [{**r, "attachments": files[r["id"]]} for r in rows], "has_more": has_more}, default=str
    )


RAW_UNREAD_AGENT = (
    "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active') AND "
    "(operator_id = %s OR (status = 'new' AND queue_id IN (SELECT queue_id FROM operator_queue WHERE operator_id = %s)))"
)
RAW_UNREAD_ADMIN = "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active')"


async def http_times(url: str, big_ids: list[int], repeat: int, rng: random.Random) -> dict[str, list[float]]:
    """Time the real routes, served by create_app on a loopback port in this process."""
    import psycopg2

    token = secrets.token_urlsafe(32)
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO token(operator_id, token_hash, kind, created_at) VALUES (2, %s, 'api', %s)",
            (hashlib.sha256(token.encode()).hexdigest(), T0),
        )
    conn.close()
    with tempfile.TemporaryDirectory(prefix="bench-store-pg-") as tmp:
        return await serve_and_time(url, Path(tmp) / "media", token, big_ids, repeat, rng)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the database, time each read; return ``{"built": ..., "results": {read: durations}}``."""
    import psycopg2

    rng = random.Random(args.seed)
    with pg_database("store") as url:
        built = build(url, args)
        big_ids = built["big_ids"]
        print(
            f"  built on PostgreSQL: {args.messages:,} messages ({len(big_ids):,} in chat 1), {args.chats:,} chats,"
            f" agent with {args.operator_chats:,} chats: {built['build_s']:.0f} s, {built['size_mb']:.0f} MiB",
            flush=True,
        )
        from desk import payloads
        from desk.store import Operator, open_database, queries

        db = open_database(url)
        agent, admin = Operator.get_by_id(2), Operator.get_by_id(1)

        def desk_page(before: int | None) -> None:
            items, has_more = queries.message_page(1, before=before, after=None, limit=PAGE)
            json.dumps({"messages": payloads.messages(items), "has_more": has_more})

        raw = psycopg2.connect(url)
        raw.autocommit = True
        cur = raw.cursor()
        depth = big_ids[len(big_ids) // 10]
        offset = int(len(big_ids) * 0.9)
        repeat = args.repeat
        results = {
            "P8 latest 50 + attachments (Desk code)": timed(lambda: desk_page(None), repeat),
            "P8 latest 50 + attachments (raw psycopg2, same SQL)": timed(lambda: raw_page(cur, 1, None), repeat),
            "P8 older page by keyset, random depth (Desk code)": timed(
                lambda: desk_page(rng.choice(big_ids[PAGE:])), repeat
            ),
            "P8 older page by keyset, random depth (raw psycopg2)": timed(
                lambda: raw_page(cur, 1, rng.choice(big_ids[PAGE:])), repeat
            ),
            "P8 older page by keyset, 90% deep (Desk code)": timed(lambda: desk_page(depth), repeat),
            f"OFFSET {offset:,} (raw psycopg2, for scale; Desk never does this)": timed(
                lambda: (
                    cur.execute(
                        "SELECT * FROM message WHERE chat_id = 1 ORDER BY id DESC LIMIT 50 OFFSET %s", (offset,)
                    ),
                    cur.fetchall(),
                ),
                max(20, repeat // 10),
            ),
            f"P9 unread badge, agent with {args.operator_chats:,} chats (Desk code)": timed(
                lambda: queries.unread_counts(agent), repeat
            ),
            f"P9 unread badge, agent with {args.operator_chats:,} chats (raw psycopg2)": timed(
                lambda: (cur.execute(RAW_UNREAD_AGENT, (2, 2)), cur.fetchone()), repeat
            ),
            "P9 unread badge, admin (Desk code)": timed(lambda: queries.unread_counts(admin), repeat),
            "P9 unread badge, admin (raw psycopg2)": timed(lambda: (cur.execute(RAW_UNREAD_ADMIN), cur.fetchone()), repeat),
        }
        cur.close()
        raw.close()
        db.close()
        http = asyncio.run(http_times(url, big_ids, repeat, rng))
        results["P8 latest 50 via GET /api/chats/1/messages (HTTP round trip)"] = http["latest"]
        results["P8 older page via GET ...?before= (HTTP round trip)"] = http["older"]
        results["P9 GET /api/unread, agent (HTTP round trip)"] = http["unread"]
    return {"built": {k: v for k, v in built.items() if k != "big_ids"}, "results": results}


def table(results: dict[str, list[float]]) -> str:
    """Return the reads as a Markdown table."""
    lines = ["| read (PostgreSQL) | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, values in results.items():
        s = summary_ms(values)
        lines.append(f"| {name} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Add the data-size flags (``prefix`` for scale.py, which has flags of its own)."""
    parser.add_argument(f"--{prefix}messages", dest="messages", type=int, default=1_000_000)
    parser.add_argument(f"--{prefix}chat-messages", dest="chat_messages", type=int, default=100_000)
    parser.add_argument(f"--{prefix}chats", dest="chats", type=int, default=10_000)
    parser.add_argument(f"--{prefix}operator-chats", dest="operator_chats", type=int, default=1_000)
    parser.add_argument(f"--{prefix}attachment-every", dest="attachment_every", type=int, default=7)
    parser.add_argument(f"--{prefix}repeat", dest="repeat", type=int, default=300)


def main() -> int:
    """Build, time, print."""
    parser = argparse.ArgumentParser(prog="bench/store_pg.py", description=__doc__.split("\n", 1)[0])
    add_arguments(parser)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    prioritise()
    print(f"machine: {machine()}", flush=True)
    done = run(args)
    text = table(done["results"])
    print()
    print(text)
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"store-pg-{stamp}.md").write_text(text + "\n")
    print(f"\nwritten: bench/out/store-pg-{stamp}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
