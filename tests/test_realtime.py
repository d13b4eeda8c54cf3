"""The live channel (CONTRACT §7): who may connect, who gets which event, seq numbering, replay."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import socketio

from desk.web.views import system
from tests.conftest import eventually, fixture_json

_update_ids = itertools.count(900_000_001)


def text_update(chat_id: int, text: str, *, message_id: int, first_name: str = "Ivan", edited: bool = False) -> dict:
    """Return a Telegram update carrying a private text message (or its edit) from user ``chat_id``."""
    person = {"id": chat_id, "is_bot": False, "first_name": first_name}
    message = {"message_id": message_id, "from": person, "chat": {**person, "type": "private"},
               "date": 1782900101, "text": text}
    if edited:
        message["edit_date"] = 1782900200
    return {"update_id": next(_update_ids), "edited_message" if edited else "message": message}


def about(events: list, chat_id: int) -> list:
    """Return the (name, payload) events that concern one chat, in the order received."""
    return [(name, data) for name, data in events
            if (name.startswith("chat.") and data["id"] == chat_id)
            or (name.startswith("message.") and data["chat_id"] == chat_id)]


def names(events: list) -> list[str]:
    return [name for name, _ in events]


def by_seq(events: list) -> list:
    return sorted(events, key=lambda item: item[1]["seq"])


def assert_contiguous(events: list, first: int = 1) -> None:
    """Assert the events' seqs are first, first+1, ... with no gap and no repeat."""
    seqs = sorted(data["seq"] for _, data in events)
    assert seqs == list(range(first, first + len(seqs))), seqs


def without_seq(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "seq"}


@pytest.fixture
async def connect(desk):
    """Open Socket.IO clients for the test and close whatever is still open at the end."""
    opened: list[socketio.AsyncClient] = []

    async def open_socket(token: str) -> tuple[socketio.AsyncClient, list]:
        sio, events = await desk.socket(token)
        opened.append(sio)
        return sio, events

    yield open_socket
    for sio in opened:
        if sio.connected:
            await sio.disconnect()


@pytest.fixture
async def setup(desk, fake_telegram):
    """An admin, a Telegram channel in queue A (the default queue) and an empty queue B."""
    admin, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    queue_b = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    return {"admin": admin, "admin_token": admin_token, "channel": channel,
            "queue_a": channel["queue_id"], "queue_b": queue_b["id"]}


async def new_chat(desk, setup, chat_id: int, text: str = "hello") -> dict:
    """Have a customer write, and return the chat as the admin sees it."""
    await desk.telegram_update(setup["channel"], text_update(chat_id, text, message_id=1))
    chats = [c for c in await desk.get("/api/chats", setup["admin_token"]) if c["external_id"] == str(chat_id)]
    assert len(chats) == 1
    return chats[0]


# --- connecting ---------------------------------------------------------------------------------


async def test_connection_needs_a_valid_token(desk, connect):
    _, token = await desk.operator("anna")
    for auth in (None, {}, {"token": "not-a-token"}, {"token": token + "x"}):
        sio = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(desk.url, auth=auth, transports=["websocket"], wait_timeout=5)
        assert not sio.connected
    sio, _ = await connect(token)
    assert sio.connected


async def test_revoked_token_drops_its_socket_and_cannot_reconnect(desk, connect):
    _, token = await desk.operator("anna")
    second = await desk.client.post("/api/session", json={"login": "anna", "password": "correct horse battery"})
    other_token = (await second.json())["token"]
    revoked, _ = await connect(token)
    kept, _ = await connect(other_token)

    await desk.call("DELETE", "/api/session", token, status=204)

    await eventually(lambda: not revoked.connected)
    again = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(desk.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    # Only the sockets of the revoked token go: the operator's other session stays live.
    assert kept.connected
    await desk.get("/api/operators/me", other_token)


async def test_disabled_operator_is_disconnected(desk, setup, connect):
    anna, token = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    sio, _ = await connect(token)
    _, events_admin = await connect(setup["admin_token"])

    await desk.call("PATCH", f"/api/operators/{anna['id']}", setup["admin_token"], {"enabled": False})

    await eventually(lambda: not sio.connected)
    again = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(desk.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    await eventually(lambda: events_admin)
    assert [(n, d["id"], d["enabled"]) for n, d in events_admin] == [("operator.updated", anna["id"], False)]


# --- who gets what --------------------------------------------------------------------------------


async def test_new_chat_reaches_its_queue_and_admins_only(desk, setup, connect):
    _, token_a = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    _, token_b = await desk.operator("boris", queue_ids=[setup["queue_b"]])
    _, events_a = await connect(token_a)
    _, events_b = await connect(token_b)
    _, events_admin = await connect(setup["admin_token"])

    chat = await new_chat(desk, setup, 6100001, "Where is my parcel?")

    expected = ["chat.created", "message.created", "unread.updated"]
    await eventually(lambda: len(events_a) >= 3 and len(events_admin) >= 3)
    for events in (events_a, events_admin):
        assert names(by_seq(events))[:2] == expected[:2] and sorted(names(events)) == sorted(expected)
        assert_contiguous(events)
        (_, created), (_, message) = by_seq(events)[:2]
        unread = next(data for name, data in events if name == "unread.updated")
        # The payload is the object itself plus seq, the same object the API answers.
        assert without_seq(created) == await desk.get(f"/api/chats/{chat['id']}", token_a)
        assert created["status"] == "new" and created["queue_id"] == setup["queue_a"] and created["unread"] == 1
        page = await desk.get(f"/api/chats/{chat['id']}/messages", token_a)
        assert without_seq(message) == page["messages"][-1]
        assert message["text"] == "Where is my parcel?" and message["direction"] == "in"
        assert without_seq(unread) == {"chats": 1, "messages": 1}

    # The agent of queue B is told nothing: not live, and nothing is in the log for them.
    assert await desk.get("/api/events?after=0", token_b) == {"events": [], "seq": 0}
    assert events_b == []
    assert await desk.get("/api/chats", token_b) == []


async def test_accepted_chat_leaves_the_other_agents_view(desk, setup, connect):
    anna, token_x = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    _, token_y = await desk.operator("yuri", queue_ids=[setup["queue_a"]])
    _, events_x = await connect(token_x)
    _, events_y = await connect(token_y)

    chat = await new_chat(desk, setup, 6100002)
    await eventually(lambda: "unread.updated" in names(events_y) and "unread.updated" in names(events_x))
    assert names(about(by_seq(events_y), chat["id"])) == ["chat.created", "message.created"]

    accepted = await desk.call("POST", f"/api/chats/{chat['id']}/accept", token_x)
    assert accepted["status"] == "active" and accepted["operator_id"] == anna["id"]
    await eventually(lambda: len(about(events_y, chat["id"])) == 3)
    last = about(by_seq(events_y), chat["id"])[-1]
    assert last[0] == "chat.updated"
    assert last[1]["status"] == "active" and last[1]["operator_id"] == anna["id"]
    # Their counters no longer include it.
    await eventually(lambda: any(n == "unread.updated" and without_seq(d) == {"chats": 0, "messages": 0} for n, d in events_y))
    seen_y = max(data["seq"] for _, data in events_y)

    # The customer writes again: the new owner hears of it, the other agent hears nothing at all.
    await desk.telegram_update(setup["channel"], text_update(6100002, "anyone?", message_id=2))
    await eventually(lambda: any(n == "message.created" and d["text"] == "anyone?" for n, d in events_x))
    assert await desk.get(f"/api/events?after={seen_y}", token_y) == {"events": [], "seq": seen_y}
    assert len(about(events_y, chat["id"])) == 3
    assert_contiguous(events_y)
    assert_contiguous(events_x)


async def test_transfer_to_operator_and_to_queue(desk, setup, connect):
    _, token_x = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    boris, token_z = await desk.operator("boris", queue_ids=[setup["queue_b"]])
    _, events_x = await connect(token_x)
    _, events_z = await connect(token_z)
    chat = await new_chat(desk, setup, 6100003)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token_x)
    await eventually(lambda: about(events_x, chat["id"])[-1:] and about(events_x, chat["id"])[-1][0] == "chat.updated")

    # To an operator: it becomes theirs; the old owner gets a last chat.updated.
    moved = await desk.call("POST", f"/api/chats/{chat['id']}/transfer", token_x, {"operator_id": boris["id"]})
    assert moved["operator_id"] == boris["id"] and moved["status"] == "active" and moved["queue_id"] == setup["queue_a"]
    await eventually(lambda: about(events_z, chat["id"]))
    assert names(about(events_z, chat["id"])) == ["chat.created"]
    assert about(events_z, chat["id"])[0][1]["operator_id"] == boris["id"]
    await eventually(lambda: about(events_x, chat["id"])[-1][1]["operator_id"] == boris["id"])
    assert about(by_seq(events_x), chat["id"])[-1][0] == "chat.updated"
    assert await desk.get(f"/api/chats/{chat['id']}", token_x, status=404)

    # To a queue: it waits there as new; its members get it, the operator who gave it away drops it.
    events_x.clear()
    moved = await desk.call("POST", f"/api/chats/{chat['id']}/transfer", token_z, {"queue_id": setup["queue_a"]})
    assert moved["status"] == "new" and moved["operator_id"] is None and moved["queue_id"] == setup["queue_a"]
    await eventually(lambda: about(events_x, chat["id"]))
    assert names(about(events_x, chat["id"])) == ["chat.created"]
    await eventually(lambda: about(events_z, chat["id"])[-1][1]["status"] == "new")
    assert names(about(by_seq(events_z), chat["id"])) == ["chat.created", "chat.updated"]
    seen_z = max(data["seq"] for _, data in events_z)

    await desk.telegram_update(setup["channel"], text_update(6100003, "still there?", message_id=2))
    await eventually(lambda: any(n == "message.created" for n, _ in about(events_x, chat["id"])))
    replay = await desk.get(f"/api/events?after={seen_z}", token_z)
    assert [e for e in replay["events"] if e["data"].get("id") == chat["id"] or e["data"].get("chat_id") == chat["id"]] == []
    assert len(about(events_z, chat["id"])) == 2
    assert_contiguous(events_z)


async def test_operator_status_is_told_to_admins_and_to_that_operator(desk, setup, connect):
    anna, token_x = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    _, token_y = await desk.operator("yuri", queue_ids=[setup["queue_a"]])
    sio_x, events_x = await connect(token_x)
    _, events_y = await connect(token_y)
    _, events_admin = await connect(setup["admin_token"])

    # Connecting changes no status and tells nobody anything.
    assert all(op["status"] == "offline" for op in await desk.get("/api/operators", setup["admin_token"]))
    assert await desk.get("/api/events?after=0", token_x) == {"events": [], "seq": 0}

    me = await desk.call("PUT", "/api/operators/me/status", token_x, {"status": "online"})
    assert me["status"] == "online"
    for events in (events_x, events_admin):
        await eventually(lambda events=events: events)
        assert events == [("operator.updated", {**me, "seq": events[0][1]["seq"]})]
    assert events_x[0][1]["seq"] == 1
    assert await desk.get("/api/events?after=0", token_y) == {"events": [], "seq": 0}
    assert events_y == []

    # An admin's change of the status is told the same way.
    changed = await desk.call("PATCH", f"/api/operators/{anna['id']}", setup["admin_token"], {"status": "busy"})
    for events in (events_x, events_admin):
        await eventually(lambda events=events: len(events) == 2)
        assert events[1] == ("operator.updated", {**changed, "seq": events[0][1]["seq"] + 1})
    assert await desk.get("/api/events?after=0", token_y) == {"events": [], "seq": 0}

    # Disconnecting changes nothing either.
    await sio_x.disconnect()
    assert (await desk.get("/api/operators/me", token_x))["status"] == "busy"


# --- replay -----------------------------------------------------------------------------------------


async def test_replay_after_a_disconnect_returns_exactly_the_missed_events(desk, setup, connect, fake_telegram):
    _, token = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    _, live = await connect(token)
    dropped, missed = await connect(token)

    chat = await new_chat(desk, setup, 6100004, "first")
    await eventually(lambda: len(missed) == 3 and len(live) == 3)
    seen = max(data["seq"] for _, data in missed)
    await dropped.disconnect()

    # Changes of every kind while one client is away: accept, messages, an edit, a send's status.
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    await desk.telegram_update(setup["channel"], text_update(6100004, "second", message_id=2))
    await desk.telegram_update(setup["channel"], text_update(6100004, "second, edited", message_id=2, edited=True))
    reply = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": "on it"}, status=201)
    await eventually(lambda: any(n == "message.updated" and d["id"] == reply["id"] and d["status"] == "sent" for n, d in live))
    assert any(n == "message.updated" and d["text"] == "second, edited" and d["edited_at"] for n, d in live)
    assert fake_telegram.sent_messages[0]["text"] == "on it"

    replay = await desk.get(f"/api/events?after={seen}", token)
    await eventually(lambda: max(d["seq"] for _, d in live) >= replay["seq"])
    expected = [{"seq": data["seq"], "event": name, "data": data} for name, data in by_seq(live) if data["seq"] > seen]
    assert replay["events"] == expected
    assert replay["seq"] == max(data["seq"] for _, data in live)
    assert {"message.created", "message.updated", "chat.updated", "unread.updated"} <= {e["event"] for e in expected}
    # Together, what the dropped client saw and the replay are every event once, in order.
    assert [d["seq"] for _, d in missed] + [e["seq"] for e in replay["events"]] == list(range(1, replay["seq"] + 1))
    assert_contiguous(live)

    # Nothing newer: an empty page that still names the latest seq.
    assert await desk.get(f"/api/events?after={replay['seq']}", token) == {"events": [], "seq": replay["seq"]}


async def test_replay_past_retention_answers_sync_required(desk, setup, monkeypatch):
    _, token = await desk.operator("anna", queue_ids=[setup["queue_a"]])
    for number in range(3):
        await desk.telegram_update(setup["channel"], text_update(6100010 + number, "hi", message_id=1))
    latest = (await desk.get("/api/events?after=0", token))["seq"]
    assert latest >= 6

    # With the real retention nothing this recent goes.
    system.prune_events()
    assert len((await desk.get("/api/events?after=0", token))["events"]) == latest

    monkeypatch.setattr(system, "RETAIN_EVENTS", 2)
    monkeypatch.setattr(system, "RETAIN_AGE", dt.timedelta(0))
    system.prune_events()

    for after in (0, latest - 3):
        response = await desk.client.get(f"/api/events?after={after}", headers=desk.headers(token))
        assert response.status == 410
        body = await response.json()
        assert body["error"]["code"] == "sync_required" and body["error"]["message"]
    kept = await desk.get(f"/api/events?after={latest - 2}", token)
    assert [e["seq"] for e in kept["events"]] == [latest - 1, latest] and kept["seq"] == latest


async def test_joining_and_leaving_a_queue_updates_the_agents_view_live(desk, fake_telegram):
    _, admin_token = await desk.operator("chief", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    await desk.telegram_update(channel, fixture_json("telegram", "telegram_update_text.json"))
    [chat] = await desk.get("/api/chats", admin_token)
    agent, token = await desk.operator("late")
    sio, events = await desk.socket(token)
    try:
        await desk.call("PATCH", f"/api/operators/{agent['id']}", admin_token, {"queue_ids": [chat["queue_id"]]})
        await eventually(lambda: any(n == "unread.updated" for n, _ in events))
        created = [d for n, d in events if n == "chat.created"]
        assert [d["id"] for d in created] == [chat["id"]]
        assert [d for n, d in events if n == "unread.updated"][-1]["chats"] == 1

        await desk.call("PATCH", f"/api/operators/{agent['id']}", admin_token, {"queue_ids": []})
        await eventually(lambda: sum(n == "unread.updated" for n, _ in events) == 2)
        [last] = [d for n, d in events if n == "chat.updated"]
        assert last["id"] == chat["id"]
        assert [d for n, d in events if n == "unread.updated"][-1] == {"chats": 0, "messages": 0, "seq": last["seq"] + 1}
        assert await desk.get("/api/chats", token) == []
    finally:
        await sio.disconnect()
