"""The agent's chat API (CONTRACT §4): lists, visibility, accept, read, messages, send, actions, close."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import aiohttp
import pytest

from tests.conftest import eventually, fixture_json
from tests.fakes.telegram import fake_bytes

_update_ids = itertools.count(910_000_001)
_message_ids = itertools.count(1)


def text_update(chat_id: int, text: str, *, first_name: str = "Ivan") -> dict:
    """Return a Telegram update carrying a private text message from user ``chat_id``."""
    person = {"id": chat_id, "is_bot": False, "first_name": first_name}
    return {"update_id": next(_update_ids), "message": {
        "message_id": next(_message_ids), "from": person, "chat": {**person, "type": "private"},
        "date": 1782900101, "text": text}}


@pytest.fixture
async def setup(desk, fake_telegram):
    """An admin, a Telegram channel in queue A, a second queue B, and agent X in queue A."""
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    queue_b = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    agent, token = await desk.operator("anna", queue_ids=[channel["queue_id"]])
    return {"admin_token": admin_token, "channel": channel, "queue_a": channel["queue_id"], "queue_b": queue_b["id"],
            "agent": agent, "token": token}


async def customer_writes(desk, setup, chat_id: int, text: str = "hello") -> dict:
    """Post a customer message and return its chat as the admin sees it."""
    await desk.telegram_update(setup["channel"], text_update(chat_id, text))
    found = [c for c in await desk.get("/api/chats?limit=100", setup["admin_token"])
             if c["external_id"] == str(chat_id) and c["status"] != "closed"]
    assert len(found) == 1
    return found[0]


def ids(chats: list[dict]) -> list[int]:
    return [c["id"] for c in chats]


async def error_of(response: aiohttp.ClientResponse, status: int) -> dict:
    """Assert the status and the JSON error shape; return the error."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


# --- lists and visibility -------------------------------------------------------------------------


async def test_list_filters_and_keyset_pages(desk, setup):
    token = setup["token"]
    chats = [await customer_writes(desk, setup, 6200001 + n) for n in range(5)]
    c1, c2, c3, c4, c5 = ids(chats)
    await customer_writes(desk, setup, 6200002, "me again")  # c2 has the newest message now

    listed = await desk.get("/api/chats", token)
    assert ids(listed) == [c2, c5, c4, c3, c1]
    stamps = [(c["last_message_at"], c["id"]) for c in listed]
    assert stamps == sorted(stamps, reverse=True)

    pages, before = [], None
    while True:
        page = await desk.get(f"/api/chats?limit=2{f'&before={before}' if before else ''}", token)
        if not page:
            break
        assert len(page) <= 2
        pages.append(ids(page))
        before = page[-1]["id"]
    assert pages == [[c2, c5], [c4, c3], [c1]]

    await desk.call("POST", f"/api/chats/{c3}/accept", token)
    await desk.call("POST", f"/api/chats/{c4}/accept", token)
    await desk.call("POST", f"/api/chats/{c4}/close", token)
    assert ids(await desk.get("/api/chats?status=new", token)) == [c2, c5, c1]
    assert ids(await desk.get("/api/chats?status=active", token)) == [c3]
    assert ids(await desk.get("/api/chats?status=closed", token)) == [c4]
    assert ids(await desk.get("/api/chats?mine=1", token)) == [c4, c3]
    assert ids(await desk.get("/api/chats?mine=1&status=active", token)) == [c3]
    assert ids(await desk.get("/api/chats?status=new&limit=1&before=" + str(c5), token)) == [c1]

    # Another agent of the queue sees only the waiting chats; the admin sees every chat.
    _, other = await desk.operator("yuri", queue_ids=[setup["queue_a"]])
    assert ids(await desk.get("/api/chats", other)) == [c2, c5, c1]
    assert await desk.get("/api/chats?mine=1", other) == []
    assert ids(await desk.get("/api/chats", setup["admin_token"])) == [c2, c5, c4, c3, c1]

    response = await desk.client.get("/api/chats?status=open", headers=desk.headers(token))
    await error_of(response, 400)


async def test_chats_of_others_are_hidden(desk, setup, fake_telegram):
    token_x = setup["token"]
    _, token_y = await desk.operator("yuri", queue_ids=[setup["queue_a"]])
    _, token_z = await desk.operator("zoe", queue_ids=[setup["queue_b"]])
    await desk.telegram_update(setup["channel"], fixture_json("telegram", "telegram_update_photo.json"))
    chat = (await desk.get("/api/chats", token_x))[0]

    async def attachment_ready():
        page = await desk.get(f"/api/chats/{chat['id']}/messages", token_x)
        found = page["messages"][0]["attachments"]
        return found if found and found[0]["ready"] and found[0]["url"] else None
    await eventually(attachment_ready)
    attachment = (await attachment_ready())[0]

    # An agent of another queue never sees the waiting chat.
    for path in (f"/api/chats/{chat['id']}", f"/api/chats/{chat['id']}/messages", attachment["url"],
                 f"/api/chats/{chat['id']}/actions"):
        await error_of(await desk.client.get(path, headers=desk.headers(token_z)), 404)
    await error_of(await desk.client.post(f"/api/chats/{chat['id']}/accept", headers=desk.headers(token_z)), 404)
    assert await desk.get("/api/chats", token_z) == []

    accepted = await desk.call("POST", f"/api/chats/{chat['id']}/accept", token_x)
    assert accepted["status"] == "active" and accepted["operator_id"] == setup["agent"]["id"]
    assert ids(await desk.get("/api/chats?mine=1", token_x)) == [chat["id"]]

    # Now it is X's: the other queue member gets 404 on everything, and 409 when accepting.
    for path in (f"/api/chats/{chat['id']}", f"/api/chats/{chat['id']}/messages", attachment["url"]):
        await error_of(await desk.client.get(path, headers=desk.headers(token_y)), 404)
    for action in ("read", "close"):
        await error_of(await desk.client.post(f"/api/chats/{chat['id']}/{action}", headers=desk.headers(token_y)), 404)
    response = await desk.client.post(f"/api/chats/{chat['id']}/messages", json={"text": "mine!"},
                                      headers=desk.headers(token_y))
    await error_of(response, 404)
    await error_of(await desk.client.post(f"/api/chats/{chat['id']}/accept", headers=desk.headers(token_y)), 409)
    assert await desk.get("/api/chats", token_y) == []
    assert (await desk.get(f"/api/chats/{chat['id']}", token_x))["operator_id"] == setup["agent"]["id"]

    # X and the admin see the chat and its file.
    body = await desk.get(attachment["url"], token_x)
    assert body == fake_telegram.files["photos/file_57.jpg"]
    assert (await desk.get(f"/api/chats/{chat['id']}", setup["admin_token"]))["id"] == chat["id"]
    assert await desk.get(attachment["url"], setup["admin_token"]) == body
    await error_of(await desk.client.get("/api/chats/999999", headers=desk.headers(token_x)), 404)


async def test_read_resets_unread(desk, setup):
    token = setup["token"]
    for text in ("one", "two", "three"):
        chat = await customer_writes(desk, setup, 6200010, text)
    assert chat["unread"] == 3
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 3}

    assert await desk.call("POST", f"/api/chats/{chat['id']}/read", token) == {"chats": 0, "messages": 0}
    assert (await desk.get(f"/api/chats/{chat['id']}", token))["unread"] == 0
    assert await desk.get("/api/unread", token) == {"chats": 0, "messages": 0}


async def test_unread_counts_what_each_operator_sees(desk, setup):
    token_x, admin_token = setup["token"], setup["admin_token"]
    _, token_z = await desk.operator("zoe", queue_ids=[setup["queue_b"]])
    c1 = await customer_writes(desk, setup, 6200020, "a")
    await customer_writes(desk, setup, 6200020, "b")
    c2 = await customer_writes(desk, setup, 6200021, "c")
    assert await desk.get("/api/unread", token_x) == {"chats": 2, "messages": 3}
    assert await desk.get("/api/unread", admin_token) == {"chats": 2, "messages": 3}
    assert await desk.get("/api/unread", token_z) == {"chats": 0, "messages": 0}

    await desk.call("POST", f"/api/chats/{c1['id']}/accept", token_x)
    assert await desk.call("POST", f"/api/chats/{c1['id']}/read", token_x) == {"chats": 1, "messages": 1}
    await customer_writes(desk, setup, 6200020, "d")
    assert await desk.get("/api/unread", token_x) == {"chats": 2, "messages": 2}

    await desk.call("POST", f"/api/chats/{c2['id']}/transfer", admin_token, {"queue_id": setup["queue_b"]})
    assert await desk.get("/api/unread", token_x) == {"chats": 1, "messages": 1}
    assert await desk.get("/api/unread", token_z) == {"chats": 1, "messages": 1}
    await desk.call("POST", f"/api/chats/{c2['id']}/close", token_z)
    assert await desk.get("/api/unread", token_z) == {"chats": 0, "messages": 0}
    assert await desk.get("/api/unread", admin_token) == {"chats": 1, "messages": 1}


# --- messages -------------------------------------------------------------------------------------


async def test_message_pages(desk, setup):
    token = setup["token"]
    total = 120
    for number in range(total):
        await desk.telegram_update(setup["channel"], text_update(6200030, f"m{number}"))
    chat = (await desk.get("/api/chats", token))[0]
    url = f"/api/chats/{chat['id']}/messages"

    def texts(page: dict) -> list[str]:
        return [m["text"] for m in page["messages"]]

    # Backwards from the newest.
    newest = await desk.get(url, token)
    assert texts(newest) == [f"m{n}" for n in range(70, 120)] and newest["has_more"] is True
    older = await desk.get(f"{url}?before={newest['messages'][0]['id']}", token)
    assert texts(older) == [f"m{n}" for n in range(20, 70)] and older["has_more"] is True
    oldest = await desk.get(f"{url}?before={older['messages'][0]['id']}", token)
    assert texts(oldest) == [f"m{n}" for n in range(20)] and oldest["has_more"] is False
    everything = oldest["messages"] + older["messages"] + newest["messages"]
    assert [m["id"] for m in everything] == sorted({m["id"] for m in everything})

    # Forwards from an id, as catch-up does.
    collected, after = [], everything[0]["id"] - 1
    while True:
        page = await desk.get(f"{url}?after={after}&limit=45", token)
        assert len(page["messages"]) <= 45
        collected += page["messages"]
        if not page["has_more"]:
            break
        after = page["messages"][-1]["id"]
    assert collected == everything

    small = await desk.get(f"{url}?after={everything[9]['id']}&limit=3", token)
    assert texts(small) == ["m10", "m11", "m12"] and small["has_more"] is True
    last = await desk.get(f"{url}?after={everything[-2]['id']}", token)
    assert texts(last) == ["m119"] and last["has_more"] is False
    window = await desk.get(f"{url}?before={everything[5]['id']}&limit=5", token)
    assert texts(window) == [f"m{n}" for n in range(5)] and window["has_more"] is False
    await error_of(await desk.client.get(f"{url}?limit=0", headers=desk.headers(token)), 400)
    await error_of(await desk.client.get(f"{url}?before=x", headers=desk.headers(token)), 400)


async def test_send_with_client_id_is_sent_once(desk, setup, fake_telegram):
    token = setup["token"]
    chat = await customer_writes(desk, setup, 6200040)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    url = f"/api/chats/{chat['id']}/messages"

    first = await desk.call("POST", url, token, {"text": "Checking now", "client_id": "tab1-17"}, status=201)
    assert first["status"] == "pending" and first["direction"] == "out" and first["client_id"] == "tab1-17"
    assert first["author"]["type"] == "operator" and first["author"]["id"] == setup["agent"]["id"]
    again = await desk.call("POST", url, token, {"text": "Checking now", "client_id": "tab1-17"}, status=200)
    assert again["id"] == first["id"]

    # A later reply of the same chat goes out after any earlier one: once it is sent, a
    # duplicate of the first would have been sent too.
    later = await desk.call("POST", url, token, {"text": "Found it", "client_id": "tab1-18"}, status=201)

    async def sent(message_id: int) -> bool:
        page = await desk.get(url, token)
        return any(m["id"] == message_id and m["status"] == "sent" for m in page["messages"])
    await eventually(lambda: sent(later["id"]))
    assert await sent(first["id"])
    texts = [m["text"] for m in fake_telegram.sent_messages]
    assert texts == ["Checking now", "Found it"]
    assert all(m["chat_id"] in (6200040, "6200040") for m in fake_telegram.sent_messages)
    page = await desk.get(url, token)
    assert [m["text"] for m in page["messages"] if m["direction"] == "out"] == ["Checking now", "Found it"]


async def test_send_to_a_closed_chat_is_a_conflict(desk, setup, fake_telegram):
    token = setup["token"]
    chat = await customer_writes(desk, setup, 6200050)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    await desk.call("POST", f"/api/chats/{chat['id']}/close", token)
    response = await desk.client.post(f"/api/chats/{chat['id']}/messages", json={"text": "late"},
                                      headers=desk.headers(token))
    await error_of(response, 409)
    page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
    assert [m["direction"] for m in page["messages"]] == ["in"]
    assert fake_telegram.sent_messages == []


async def test_send_a_file(desk, setup, fake_telegram):
    token = setup["token"]
    chat = await customer_writes(desk, setup, 6200060)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    url = f"/api/chats/{chat['id']}/messages"
    document = b"%PDF-1.4\n" + bytes(range(256)) * 20
    photo = fake_bytes(3000)

    async def send(data: bytes, file_name: str, mime: str, text: str) -> dict:
        form = aiohttp.FormData(quote_fields=False)  # raw UTF-8 names, as browsers send them
        form.add_field("text", text)
        form.add_field("file", data, filename=file_name, content_type=mime)
        response = await desk.client.post(url, data=form, headers=desk.headers(token))
        assert response.status == 201, await response.text()
        return await response.json()

    sent_doc = await send(document, "invoice 7.pdf", "application/pdf", "Your invoice")
    assert sent_doc["text"] == "Your invoice" and sent_doc["status"] == "pending"
    [item] = sent_doc["attachments"]
    assert item["file_name"] == "invoice 7.pdf" and item["mime"] == "application/pdf"
    assert item["size"] == len(document) and item["kind"] == "file"
    assert await desk.get(item["url"], token) == document
    sent_photo = await send(photo, "box.jpg", "image/jpeg", "")
    assert sent_photo["attachments"][0]["kind"] == "image"

    await eventually(lambda: len(fake_telegram.uploads) == 2)
    doc_upload, photo_upload = fake_telegram.uploads
    assert doc_upload["method"] == "sendDocument" and doc_upload["data"] == document
    assert doc_upload["filename"] == "invoice 7.pdf"
    assert fake_telegram.calls_of("sendDocument")[0]["caption"] == "Your invoice"
    assert photo_upload["method"] == "sendPhoto" and photo_upload["data"] == photo


async def test_refused_or_repeated_upload_keeps_no_file(desk, setup, fake_telegram, settings):
    token = setup["token"]
    chat = await customer_writes(desk, setup, 6200065)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    url = f"/api/chats/{chat['id']}/messages"

    def stored() -> list:
        return [p for p in settings.media_dir.rglob("*") if p.is_file()]

    async def send(client_id: str) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("client_id", client_id)
        form.add_field("file", b"%PDF-1.4 report", filename="report.pdf", content_type="application/pdf")
        return await desk.client.post(url, data=form, headers=desk.headers(token))

    assert (await send("up-1")).status == 201
    assert len(stored()) == 1
    again = await send("up-1")
    assert again.status == 200
    assert len(stored()) == 1
    await desk.call("POST", f"/api/chats/{chat['id']}/close", token)
    await error_of(await send("up-2"), 409)
    assert len(stored()) == 1


class TestSmallUploadLimit:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, upload_limit=1024)

    async def test_upload_over_the_limit_is_refused(self, desk, setup, fake_telegram, settings):
        token = setup["token"]
        chat = await customer_writes(desk, setup, 6200070)
        await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
        form = aiohttp.FormData()
        form.add_field("text", "too big")
        form.add_field("file", b"x" * 4096, filename="big.bin", content_type="application/octet-stream")
        response = await desk.client.post(f"/api/chats/{chat['id']}/messages", data=form, headers=desk.headers(token))
        await error_of(response, 413)

        page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
        assert [m["direction"] for m in page["messages"]] == ["in"]
        assert not [p for p in settings.media_dir.rglob("*") if p.is_file()]
        # Within the limit the same route works.
        form = aiohttp.FormData()
        form.add_field("file", b"y" * 1000, filename="small.bin", content_type="application/octet-stream")
        response = await desk.client.post(f"/api/chats/{chat['id']}/messages", data=form, headers=desk.headers(token))
        assert response.status == 201
        await eventually(lambda: fake_telegram.uploads)
        assert [u["data"] for u in fake_telegram.uploads] == [b"y" * 1000]


# --- actions and close ------------------------------------------------------------------------------


async def test_actions_follow_the_chat_state(desk, setup):
    token, admin_token = setup["token"], setup["admin_token"]
    chat = await customer_writes(desk, setup, 6200080)
    url = f"/api/chats/{chat['id']}/actions"

    new = await desk.get(url, token)
    assert all(isinstance(a["code"], str) and isinstance(a["title"], str) and a["title"] for a in new)
    assert {a["code"] for a in new} == {"accept", "transfer", "close"}

    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    active = {a["code"] for a in await desk.get(url, token)}
    assert active and "accept" not in active and {"transfer", "close"} <= active

    # A queue that allows only accepting still leaves an active chat something to do.
    await desk.call("PATCH", f"/api/queues/{setup['queue_a']}", admin_token, {"actions": ["accept"]})
    assert await desk.get(url, token) != []

    await desk.call("POST", f"/api/chats/{chat['id']}/close", token)
    assert await desk.get(url, token) == []


async def test_close(desk, setup):
    token = setup["token"]
    chat = await customer_writes(desk, setup, 6200090)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    before = dt.datetime.now(dt.UTC)
    closed = await desk.call("POST", f"/api/chats/{chat['id']}/close", token)
    assert closed["status"] == "closed" and closed["id"] == chat["id"]
    closed_at = dt.datetime.fromisoformat(closed["closed_at"])
    assert abs(closed_at - before) < dt.timedelta(minutes=1)
    assert await desk.get(f"/api/chats/{chat['id']}", token) == closed
    assert ids(await desk.get("/api/chats?status=closed", token)) == [chat["id"]]
    assert await desk.get("/api/unread", token) == {"chats": 0, "messages": 0}

    # The customer writes again: a new chat opens, the closed one stays closed.
    reopened = await customer_writes(desk, setup, 6200090, "one more thing")
    assert reopened["id"] != chat["id"] and reopened["status"] == "new" and reopened["closed_at"] is None
    assert (await desk.get(f"/api/chats/{chat['id']}", token))["status"] == "closed"
    page = await desk.get(f"/api/chats/{reopened['id']}/messages", token)
    assert [m["text"] for m in page["messages"]] == ["one more thing"]
