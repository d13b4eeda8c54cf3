"""Store benchmark (TARGETS P8, P9): opening a long conversation, and unread badges.

Builds a Desk database (schema by desk.store.migrate) holding ``--messages`` messages, of which
``--chat-messages`` are in one chat (interleaved with the rest, as they would arrive), every
``--attachment-every``-th message with an attachment, and an agent with ``--operator-chats``
active chats among ``--chats`` chats in all. Then, each repeated ``--repeat`` times:

- P8 latest page: ``desk.store.queries.message_page`` (latest 50) + ``desk.payloads.messages``
  (attachment metadata in one query) + ``json.dumps`` of the answer;
- P8 older page: the same with a keyset cursor (``before``) at random depths of the chat;
- P9 badge: ``desk.store.queries.unread_counts`` for the agent with 1,000 chats (and for an admin);
- the same reads as plain sqlite3 statements on a second connection: the baseline;
- the same through HTTP: ``GET /api/chats/{id}/messages`` and ``GET /api/unread`` of the real app
  (served in this process on 127.0.0.1; the time includes the client);
- OFFSET 90% of the chat, plain sqlite3, for scale (Desk never uses OFFSET).

Run: ``python bench/store.py`` (1M messages, about a minute to build);
``python bench/store.py --messages 200000 --chat-messages 20000`` for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, HttpConnection, free_port, machine, prioritise, summary_ms  # noqa: E402

PAGE = 50


def build(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Create the schema with Desk's migrations, then bulk-insert the data with plain sqlite3."""
    from desk.store import open_database
    from desk.store.migrate import migrate

    db = open_database(f"sqlite:///{path}")
    migrate(db)
    db.close()
    rng = random.Random(args.seed)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    now = dt.datetime(2026, 1, 1)

    def ts(seconds: int) -> str:
        return (now + dt.timedelta(seconds=seconds)).isoformat(sep=" ")

    started = time.monotonic()
    with conn:
        conn.execute(
            "INSERT INTO queue(id, name, routing, actions, created_at) VALUES (1, 'General', 'manual', '[]', ?)",
            (ts(0),),
        )
        ops = [(1, "admin", "admin"), (2, "agent", "agent"), (3, "other", "agent")]
        for op_id, login, role in ops:
            conn.execute(
                "INSERT INTO operator(id, login, name, password_hash, role, status, max_chats, enabled, last_seq,"
                " created_at) VALUES (?, ?, ?, 'x', ?, 'online', 5000, 1, 0, ?)",
                (op_id, login, login.title(), role, ts(0)),
            )
        conn.execute("INSERT INTO operator_queue(operator_id, queue_id) VALUES (2, 1), (3, 1)")
        conn.execute(
            "INSERT INTO channel(id, provider, name, enabled, queue_id, config, secret, unique_key, registered,"
            " created_at) VALUES (1, 'telegram', 'Bench', 1, 1, '{}', 's', '1', 1, ?)",
            (ts(0),),
        )
        chats = args.chats
        conn.executemany(
            "INSERT INTO contact(id, channel_id, external_id, name) VALUES (?, 1, ?, ?)",
            ((i, str(1000 + i), f"Customer {i}") for i in range(1, chats + 1)),
        )
        # Chat 1 is the long conversation (the agent's); chats 2..operator_chats+1 are the agent's
        # other active chats; the rest are closed, new in the queue, or another agent's.
        rows = []
        for i in range(1, chats + 1):
            if i <= args.operator_chats:
                status, operator, unread = "active", 2, rng.randrange(0, 6)
            elif i % 10 == 0:
                status, operator, unread = "new", None, rng.randrange(1, 4)
            elif i % 10 == 1:
                status, operator, unread = "active", 3, rng.randrange(0, 6)
            else:
                status, operator, unread = "closed", 3, 0
            rows.append((i, str(1000 + i), status, operator, unread, ts(i), ts(0)))
        conn.executemany(
            "INSERT INTO chat(id, channel_id, contact_id, external_id, queue_id, status, operator_id, unread,"
            " last_message_at, created_at) VALUES (?, 1, ?, ?, 1, ?, ?, ?, ?, ?)",
            ((r[0], r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows),
        )

        total, big = args.messages, args.chat_messages
        every = max(1, total // big)
        others = list(range(2, chats + 1))

        def messages():  # noqa: ANN202
            for mid in range(1, total + 1):
                chat = 1 if mid % every == 0 and mid // every <= big else others[mid % len(others)]
                out = mid % 3 == 0
                yield (
                    mid,
                    chat,
                    "out" if out else "in",
                    f"message {mid} " + "x" * (mid % 80),
                    "operator" if out else "contact",
                    2 if out else chat,
                    "Agent" if out else f"Customer {chat}",
                    "sent" if out else "received",
                    f"{chat}:{mid}",
                    ts(mid),
                )

        conn.executemany(
            "INSERT INTO message(id, chat_id, channel_id, direction, text, author_type, author_id, author_name,"
            " status, external_id, created_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            messages(),
        )
        attachments = (
            (
                mid,
                "image" if mid % 2 else "file",
                f"file-{mid}.jpg",
                "image/jpeg",
                1000 + mid % 5000,
                f"media/{mid}.jpg",
            )
            for mid in range(args.attachment_every, total + 1, args.attachment_every)
        )
        conn.executemany(
            "INSERT INTO attachment(message_id, kind, file_name, mime, size, path, ready, meta)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, '{}')",
            attachments,
        )
    conn.execute("PRAGMA optimize")
    big_ids = [r[0] for r in conn.execute("SELECT id FROM message WHERE chat_id = 1 ORDER BY id")]
    conn.close()
    return {"build_s": time.monotonic() - started, "big_ids": big_ids}


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Return the durations of ``repeat`` calls of ``fn`` after a few warm-up calls."""
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def raw_page(conn: sqlite3.Connection, chat_id: int, before: int | None) -> str:
    """The baseline: the same page and attachments with plain sqlite3, as JSON."""
    if before is None:
        rows = conn.execute(
            "SELECT * FROM message WHERE chat_id = ? ORDER BY id DESC LIMIT ?", (chat_id, PAGE + 1)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM message WHERE chat_id = ? AND id < ? ORDER BY id DESC LIMIT ?", (chat_id, before, PAGE + 1)
        ).fetchall()
    has_more = len(rows) > PAGE
    rows = rows[:PAGE][::-1]
    ids = [r["id"] for r in rows]
    files: dict[int, list[dict]] = {i: [] for i in ids}
    marks = ",".join("?" * len(ids))
    for a in conn.execute(f"SELECT * FROM attachment WHERE message_id IN ({marks}) ORDER BY id", ids):
        files[a["message_id"]].append(
            {
                "id": a["id"],
                "kind": a["kind"],
                "file_name": a["file_name"],
                "mime": a["mime"],
                "size": a["size"],
                "ready": bool(a["ready"]),
            }
        )
    return json.dumps({"messages": [{**dict(r), "attachments": files[r["id"]]} for r in rows], "has_more": has_more})


RAW_UNREAD_AGENT = (
    "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active') AND "
    "(operator_id = ? OR (status = 'new' AND queue_id IN (SELECT queue_id FROM operator_queue WHERE operator_id = ?)))"
)
RAW_UNREAD_ADMIN = (
    "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active')"
)


async def http_times(path: Path, big_ids: list[int], repeat: int, rng: random.Random) -> dict[str, list[float]]:
    """Time the real routes, served by create_app on a loopback port in this process."""
    import hashlib

    token = secrets.token_urlsafe(32)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO token(operator_id, token_hash, kind, created_at) VALUES (2, ?, 'api', '2026-01-01 00:00:00')",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
    conn.close()
    return await serve_and_time(f"sqlite:///{path}", path.parent / "media", token, big_ids, repeat, rng)


async def serve_and_time(database_url: str, media_dir: Path, token: str, big_ids: list[int], repeat: int,
                         rng: random.Random) -> dict[str, list[float]]:
    """Serve create_app on ``database_url`` on a loopback port in this process and time its read routes.

    Returns the durations of ``latest`` (the newest page of chat 1), ``older`` (a page before a
    random message of it) and ``unread`` (the badges), each after five unmeasured requests.
    """
    from aiohttp import web

    from desk.app import create_app
    from desk.settings import Settings

    port = free_port()
    settings = Settings(host=HOST, port=port, database_url=database_url, media_dir=media_dir, run_workers=False)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    client = HttpConnection(HOST, port)
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, list[float]] = {"latest": [], "older": [], "unread": []}
    try:
        for name, make in (
            ("latest", lambda: "/api/chats/1/messages?limit=50"),
            ("older", lambda: f"/api/chats/1/messages?limit=50&before={rng.choice(big_ids[PAGE:])}"),
            ("unread", lambda: "/api/unread"),
        ):
            for index in range(repeat + 5):
                url = make()
                start = time.perf_counter()
                status, body = await client.request("GET", url, headers=headers)
                elapsed = time.perf_counter() - start
                if status != 200:
                    raise RuntimeError(f"GET {url}: {status} {body[:200]!r}")
                if index >= 5:
                    out[name].append(elapsed)
    finally:
        client.close()
        await runner.cleanup()
    return out


def main() -> int:
    """Build the data, time each read, print the table."""
    parser = argparse.ArgumentParser(prog="bench/store.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--chat-messages", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--operator-chats", type=int, default=1_000)
    parser.add_argument("--attachment-every", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="keep the database at this path (default: a temporary directory)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    prioritise()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "desk.db"
        if path.exists():
            raise SystemExit(f"{path} exists")
        built = build(path, args)
        big_ids = built["big_ids"]
        size = path.stat().st_size / 1024 / 1024
        print(
            f"built {args.messages:,} messages ({len(big_ids):,} in chat 1), {args.chats:,} chats, agent with "
            f"{args.operator_chats:,} chats: {built['build_s']:.0f} s, {size:.0f} MiB",
            flush=True,
        )

        from desk import payloads
        from desk.store import Operator, open_database, queries

        db = open_database(f"sqlite:///{path}")
        agent, admin = Operator.get_by_id(2), Operator.get_by_id(1)

        def desk_page(before: int | None) -> None:
            items, has_more = queries.message_page(1, before=before, after=None, limit=PAGE)
            json.dumps({"messages": payloads.messages(items), "has_more": has_more})

        raw = sqlite3.connect(path)
        raw.row_factory = sqlite3.Row
        depth = big_ids[len(big_ids) // 10]
        offset = int(len(big_ids) * 0.9)
        results = {
            "P8 latest 50 + attachments (Desk code)": timed(lambda: desk_page(None), args.repeat),
            "P8 latest 50 + attachments (plain sqlite3)": timed(lambda: raw_page(raw, 1, None), args.repeat),
            "P8 older page by keyset, random depth (Desk code)": timed(
                lambda: desk_page(rng.choice(big_ids[PAGE:])), args.repeat
            ),
            "P8 older page by keyset, random depth (plain sqlite3)": timed(
                lambda: raw_page(raw, 1, rng.choice(big_ids[PAGE:])), args.repeat
            ),
            "P8 older page by keyset, 90% deep (Desk code)": timed(lambda: desk_page(depth), args.repeat),
            f"OFFSET {offset:,} (plain sqlite3, for scale; Desk never does this)": timed(
                lambda: raw.execute(
                    "SELECT * FROM message WHERE chat_id = 1 ORDER BY id DESC LIMIT 50 OFFSET ?", (offset,)
                ).fetchall(),
                max(20, args.repeat // 10),
            ),
            f"P9 unread badge, agent with {args.operator_chats:,} chats (Desk code)": timed(
                lambda: queries.unread_counts(agent), args.repeat
            ),
            f"P9 unread badge, agent with {args.operator_chats:,} chats (plain sqlite3)": timed(
                lambda: raw.execute(RAW_UNREAD_AGENT, (2, 2)).fetchone(), args.repeat
            ),
            "P9 unread badge, admin (Desk code)": timed(lambda: queries.unread_counts(admin), args.repeat),
            "P9 unread badge, admin (plain sqlite3)": timed(
                lambda: raw.execute(RAW_UNREAD_ADMIN).fetchone(), args.repeat
            ),
        }
        raw.close()
        db.close()
        http = asyncio.run(http_times(path, big_ids, args.repeat, rng))
        results["P8 latest 50 via GET /api/chats/1/messages (HTTP round trip)"] = http["latest"]
        results["P8 older page via GET ...?before= (HTTP round trip)"] = http["older"]
        results["P9 GET /api/unread, agent (HTTP round trip)"] = http["unread"]

    lines = ["| read | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, values in results.items():
        s = summary_ms(values)
        lines.append(f"| {name} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |")
    text = "\n".join(lines)
    print()
    print(text)
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"store-{stamp}.md").write_text(text + "\n")
    print(f"\nwritten: bench/out/store-{stamp}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
