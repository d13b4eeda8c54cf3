"""The schema is created and migrated on start; a database from an older release keeps its data."""

from __future__ import annotations

import importlib

import peewee as pw
import playhouse.db_url

from desk.app import create_app
from desk.services import auth
from desk.store import migrations
from desk.store.migrate import migrate, pending
from tests.conftest import database_url, fixture_json


def apply_up_to(db: pw.Database, last: int) -> None:
    """Bring an empty database to the schema of migration ``last``, as an older release left it."""
    db.execute_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    for number, name in pending(db):
        if number > last:
            break
        with db.atomic():
            importlib.import_module(f"{migrations.__name__}.{name}").apply(db)
            db.execute_sql("INSERT INTO schema_migrations (version) VALUES (%d)" % number)


def test_every_migration_applies_once_in_order(tmp_path):
    db = playhouse.db_url.connect(database_url(tmp_path))
    try:
        applied = migrate(db)
        assert applied == sorted(applied) and applied[0] == 1 and len(applied) >= 5
        assert migrate(db) == []  # nothing left: starting again changes nothing
    finally:
        db.close()


async def test_a_database_of_the_first_release_keeps_its_data(tmp_path, aiohttp_client, settings):
    # A database left by a release that had only the initial schema, with a customer's message in it.
    db = playhouse.db_url.connect(settings.database_url)
    apply_up_to(db, 1)
    db.execute_sql("INSERT INTO queue (name, routing, actions, created_at) VALUES ('Old', 'manual', '[]', '2026-01-01')")
    db.execute_sql("INSERT INTO channel (provider, name, enabled, queue_id, config, secret, unique_key, registered, created_at) "
                   "VALUES ('telegram', 'Old bot', %s, 1, '{\"token\": \"1:x\"}', 'sec', '1', %s, '2026-01-01')"
                   % (("1", "1") if "sqlite" in settings.database_url else ("TRUE", "TRUE")))
    db.execute_sql("INSERT INTO contact (channel_id, external_id, name) VALUES (1, '42', 'Old Customer')")
    db.execute_sql("INSERT INTO chat (channel_id, contact_id, external_id, queue_id, status, unread, last_message_at, created_at) "
                   "VALUES (1, 1, '42', 1, 'new', 1, '2026-01-01', '2026-01-01')")
    db.execute_sql("INSERT INTO message (chat_id, channel_id, direction, text, author_type, author_name, status, external_id, created_at) "
                   "VALUES (1, 1, 'in', 'hello from the old release', 'contact', 'Old Customer', 'received', '42:1', '2026-01-01')")
    db.close()

    client = await aiohttp_client(create_app(settings))
    await auth.create_operator("boss", "Boss", "correct horse battery", role="admin")
    token = (await (await client.post("/api/session", json={"login": "boss", "password": "correct horse battery"})).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    chats = await (await client.get("/api/chats", headers=headers)).json()
    assert [c["contact"]["name"] for c in chats] == ["Old Customer"]
    page = await (await client.get(f"/api/chats/{chats[0]['id']}/messages", headers=headers)).json()
    assert [m["text"] for m in page["messages"]] == ["hello from the old release"]

    # The migrated store keeps working: a new message from the same customer joins the old chat.
    update = fixture_json("telegram", "telegram_update_text.json")
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = 42
    response = await client.post("/webhooks/1", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "sec"})
    assert response.status == 200
    page = await (await client.get(f"/api/chats/{chats[0]['id']}/messages", headers=headers)).json()
    assert len(page["messages"]) == 2
