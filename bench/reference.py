"""A minimal reference server doing Desk's webhook job by hand, for the benchmark's baselines.

Modes (``--mode``):

- ``bare``: aiohttp POST handler that parses the JSON and answers (TARGETS P2's bare baseline).
- ``room``: check the secret, parse, then one ``BEGIN IMMEDIATE`` transaction with plain sqlite3
  (dedupe insert, message insert, chat counter update) and one python-socketio emit of
  ``message.created`` to the rooms of the chat's watchers: no per-operator log, no seq.
- ``log``: the same, plus the per-operator job of CONTRACT §7 written by hand: for each operator
  who sees the chat, reserve ``seq`` numbers, recompute that operator's unread counters, write
  ``message.created``, ``chat.updated`` and ``unread.updated`` to the event log in the same
  transaction, and after the commit emit each event to that operator's room with its ``seq``.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (Desk's setting), on one connection used
synchronously on the event loop. The schema, operators, tokens, queues and chats come from the
JSON file given with ``--setup`` (written by bench/ingest.py so both servers see the same desk).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.common import LAG_ENV, lag_probe, write_lag_samples  # noqa: E402

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SCHEMA = """
CREATE TABLE operator(id INTEGER PRIMARY KEY, role TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE token(hash TEXT PRIMARY KEY, operator_id INTEGER NOT NULL);
CREATE TABLE membership(queue_id INTEGER NOT NULL, operator_id INTEGER NOT NULL, PRIMARY KEY(queue_id, operator_id));
CREATE TABLE chat(id INTEGER PRIMARY KEY, external_id TEXT NOT NULL, queue_id INTEGER, operator_id INTEGER,
  status TEXT NOT NULL, unread INTEGER NOT NULL DEFAULT 0, last_message_id INTEGER, last_message_at TEXT,
  created_at TEXT);
CREATE INDEX chat_external ON chat(external_id, status);
CREATE INDEX chat_operator ON chat(operator_id, status);
CREATE INDEX chat_queue ON chat(status, queue_id);
CREATE TABLE receipt(key TEXT PRIMARY KEY);
CREATE TABLE message(id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, external_id TEXT UNIQUE, text TEXT,
  author_name TEXT, created_at TEXT);
CREATE INDEX message_chat ON message(chat_id, id);
CREATE TABLE event(operator_id INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
  created_at TEXT, PRIMARY KEY(operator_id, seq));
"""


def now_iso() -> str:
    """Return the current UTC time as Desk writes it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def open_db(path: str, setup: dict) -> sqlite3.Connection:
    """Create the reference database from the setup file."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    for op in setup["operators"]:
        conn.execute("INSERT INTO operator(id, role) VALUES (?, ?)", (op["id"], op["role"]))
        conn.execute(
            "INSERT INTO token(hash, operator_id) VALUES (?, ?)",
            (hashlib.sha256(op["token"].encode()).hexdigest(), op["id"]),
        )
        for queue_id in op.get("queues", []):
            conn.execute("INSERT INTO membership VALUES (?, ?)", (queue_id, op["id"]))
    for chat in setup["chats"]:
        conn.execute(
            "INSERT INTO chat(id, external_id, queue_id, operator_id, status, unread, last_message_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (
                chat["id"],
                chat["external_id"],
                chat["queue_id"],
                chat["operator_id"],
                chat["status"],
                now_iso(),
                now_iso(),
            ),
        )
    conn.execute("COMMIT")
    return conn


class Reference:
    """The webhook handler and socket server of one mode."""

    def __init__(self, mode: str, conn: sqlite3.Connection | None, setup: dict) -> None:
        self.mode = mode
        self.conn = conn
        self.channel_id = str(setup.get("channel_id", 1))
        self.secret = setup.get("secret", "")
        self.queue_id = setup.get("queue_id")
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins=None)
        self.sio.on("connect", self.on_connect)
        self._tasks: set[asyncio.Task] = set()

    async def on_connect(self, sid: str, environ: dict, auth: dict | None = None) -> None:
        """Authenticate by token and join the operator's rooms (queue rooms for the room mode)."""
        token = (auth or {}).get("token", "")
        row = self.conn.execute(
            "SELECT t.operator_id, o.role FROM token t JOIN operator o ON o.id = t.operator_id WHERE t.hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        ).fetchone()
        if row is None:
            raise socketio.exceptions.ConnectionRefusedError("authentication failed")
        operator_id, role = row
        await self.sio.enter_room(sid, f"operator:{operator_id}")
        if role == "admin":
            await self.sio.enter_room(sid, "admins")
        for (queue_id,) in self.conn.execute("SELECT queue_id FROM membership WHERE operator_id = ?", (operator_id,)):
            await self.sio.enter_room(sid, f"queue:{queue_id}")

    async def bare(self, request: web.Request) -> web.Response:
        """Parse the JSON body and answer."""
        json.loads(await request.read())
        return web.json_response({"ok": True})

    async def webhook(self, request: web.Request) -> web.Response:
        """Check, parse, store in one transaction, answer; emits run after the commit."""
        if request.match_info["channel_id"] != self.channel_id:
            return web.json_response({"error": "not found"}, status=404)
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), self.secret.encode()):
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            update = json.loads(await request.read())
            message = update["message"]
            chat_external = str(message["chat"]["id"])
            update_id = int(update["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad payload"}, status=400)
        emits = self.store(update_id, chat_external, message)
        if emits:
            task = asyncio.get_running_loop().create_task(self.emit(emits))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    def watchers(self, chat: tuple) -> list[int]:
        """Return who sees the chat: admins, its operator, and its queue's members while it is new."""
        _, queue_id, operator_id, status = chat
        ids = {row[0] for row in self.conn.execute("SELECT id FROM operator WHERE role = 'admin'")}
        if operator_id:
            ids.add(operator_id)
        if status == "new" and queue_id:
            ids.update(
                row[0]
                for row in self.conn.execute("SELECT operator_id FROM membership WHERE queue_id = ?", (queue_id,))
            )
        return sorted(ids)

    def unread(self, operator_id: int, role: str) -> dict[str, int]:
        """Return an operator's unread counters from the per-chat counters."""
        if role == "admin":
            row = self.conn.execute(
                "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active')"
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT COUNT(id), COALESCE(SUM(unread), 0) FROM chat WHERE unread > 0 AND status IN ('new', 'active')"
                " AND (operator_id = ? OR (status = 'new' AND queue_id IN"
                " (SELECT queue_id FROM membership WHERE operator_id = ?)))",
                (operator_id, operator_id),
            ).fetchone()
        return {"chats": row[0], "messages": row[1]}

    def store(self, update_id: int, chat_external: str, message: dict) -> list[tuple[str, str | list[str], dict]]:
        """Run the webhook's transaction; return the emits to do after the commit."""
        conn = self.conn
        now = now_iso()
        sender = message.get("from") or {}
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p) or chat_external
        text = message.get("text") or message.get("caption") or ""
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                conn.execute("INSERT INTO receipt(key) VALUES (?)", (str(update_id),))
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                return []
            chat = conn.execute(
                "SELECT id, queue_id, operator_id, status FROM chat WHERE external_id = ?"
                " AND status IN ('new', 'active') ORDER BY id DESC LIMIT 1",
                (chat_external,),
            ).fetchone()
            if chat is None:
                cur = conn.execute(
                    "INSERT INTO chat(external_id, queue_id, status, unread, created_at) VALUES (?, ?, 'new', 0, ?)",
                    (chat_external, self.queue_id, now),
                )
                chat = (cur.lastrowid, self.queue_id, None, "new")
            chat_id = chat[0]
            cur = conn.execute(
                "INSERT INTO message(chat_id, external_id, text, author_name, created_at) VALUES (?, ?, ?, ?, ?)",
                (chat_id, f"{chat_external}:{message.get('message_id')}", text, name, now),
            )
            message_id = cur.lastrowid
            unread = conn.execute(
                "UPDATE chat SET unread = unread + 1, last_message_id = ?, last_message_at = ? WHERE id = ?"
                " RETURNING unread",
                (message_id, now, chat_id),
            ).fetchone()[0]
            msg = {
                "id": message_id,
                "chat_id": chat_id,
                "direction": "in",
                "text": text,
                "author": {"type": "contact", "id": None, "name": name},
                "attachments": [],
                "status": "received",
                "error": None,
                "created_at": now,
                "edited_at": None,
                "client_id": None,
            }
            if self.mode == "room":
                conn.execute("COMMIT")
                rooms = [f"operator:{chat[2]}"] if chat[2] else []
                if chat[3] == "new" and chat[1]:
                    rooms.append(f"queue:{chat[1]}")
                return [("message.created", rooms + ["admins"], msg)]
            chat_obj = {
                "id": chat_id,
                "channel_id": int(self.channel_id),
                "provider": "telegram",
                "contact": {"id": None, "external_id": chat_external, "name": name},
                "external_id": chat_external,
                "queue_id": chat[1],
                "status": chat[3],
                "operator_id": chat[2],
                "unread": unread,
                "last_message": msg,
                "last_message_at": now,
                "created_at": None,
                "closed_at": None,
            }
            watchers = self.watchers(chat)
            roles = dict(
                conn.execute(f"SELECT id, role FROM operator WHERE id IN ({','.join('?' * len(watchers))})", watchers)
            )
            msg_text, chat_text = json.dumps(msg, separators=(",", ":")), json.dumps(chat_obj, separators=(",", ":"))
            rows, emits = [], []
            for operator_id in watchers:
                last = conn.execute(
                    "UPDATE operator SET last_seq = last_seq + 3 WHERE id = ? RETURNING last_seq", (operator_id,)
                ).fetchone()[0]
                counters = self.unread(operator_id, roles[operator_id])
                room = f"operator:{operator_id}"
                for offset, (name_, data, encoded) in enumerate(
                    (
                        ("message.created", msg, msg_text),
                        ("chat.updated", chat_obj, chat_text),
                        ("unread.updated", counters, None),
                    )
                ):
                    seq = last - 2 + offset
                    rows.append((operator_id, seq, name_, encoded or json.dumps(data, separators=(",", ":")), now))
                    emits.append((name_, room, {**data, "seq": seq}))
            conn.executemany("INSERT INTO event(operator_id, seq, name, data, created_at) VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            return emits
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def emit(self, emits: list[tuple[str, str | list[str], dict]]) -> None:
        """Emit each event to its room."""
        for name, room, data in emits:
            await self.sio.emit(name, data, room=room)

    async def healthz(self, _: web.Request) -> web.Response:
        """Answer the readiness check."""
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application()
        if self.mode == "bare":
            app.router.add_post("/webhooks/{channel_id}", self.bare)
        else:
            self.sio.attach(app)
            app.router.add_post("/webhooks/{channel_id}", self.webhook)
        app.router.add_get("/healthz", self.healthz)
        return app


def main() -> None:
    """Serve the reference in the mode given."""
    parser = argparse.ArgumentParser(prog="bench/reference.py")
    parser.add_argument("--mode", choices=("bare", "room", "log"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default="reference.db")
    parser.add_argument("--setup", help="JSON file with operators, chats, channel secret")
    args = parser.parse_args()
    setup = json.loads(Path(args.setup).read_text()) if args.setup else {"operators": [], "chats": []}
    conn = open_db(args.db, setup) if args.mode != "bare" else None
    reference = Reference(args.mode, conn, setup)
    app = reference.app()
    if os.environ.get(LAG_ENV):

        async def probe(_: web.Application) -> AsyncIterator[None]:
            samples: list[tuple[float, float]] = []
            task = asyncio.create_task(lag_probe(samples))
            yield
            task.cancel()
            write_lag_samples(os.environ[LAG_ENV], samples)

        app.cleanup_ctx.append(probe)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
