"""Facebook Messenger webhooks end to end (CONTRACT §6, §3): signed captured payloads in over HTTP,
checked through the agent's API and socket, with the fake Graph API and CDN behind them."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import io
import json
import re
import time

import pytest

from desk.services import jobs, outbound
from desk.store import Job
from tests.conftest import eventually, fixture_bytes, fixture_json
from tests.fakes.facebook import DEFAULT_PAGE_ID

APP_SECRET = "fb-app-secret"
CUSTOMER = "7093412865523781"
OTHER_PAGE = "112233445566778"
OTHER_PAGE_TOKEN = "EAAG-other-page-token"
SIGNATURE = "X-Hub-Signature-256"
AVATAR = b"\xff\xd8\xff\xe0avatar of Lucia" + bytes(range(256)) + b"\xff\xd9"
# The Meta CDN hosts that captured payloads point at; tests serve them from the fake.
CDN_ORIGINS = (b"https://cdn.fbsbx.com", b"https://scontent.xx.fbcdn.net")


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """Return X-Hub-Signature-256 for the exact bytes, as Meta computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def served(fake, name: str) -> tuple[bytes, dict[str, bytes]]:
    """Return a captured payload with its CDN URLs moved onto the fake, and the bytes served at each URL path."""
    body = fixture_bytes("facebook", name)
    for origin in CDN_ORIGINS:
        body = body.replace(origin, fake.base_url.encode())
    files = {}
    for url in re.findall(rb'"url": ?"([^"]+)"', body):
        url = url.decode()
        if not url.startswith(fake.base_url):
            continue
        path = url[len(fake.base_url):].split("?", 1)[0]
        data = f"file at {path}".encode() * 50
        fake.cdn[path] = (data, "image/jpeg" if path.endswith(".jpg") else "application/octet-stream")
        files[path] = data
    return body, files


def event_body(*events: dict, page_id: str = DEFAULT_PAGE_ID) -> bytes:
    """Wrap messaging events in one entry of a page webhook, as Meta sends them."""
    entry = {"id": page_id, "time": int(time.time() * 1000), "messaging": list(events)}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def first_event(name: str) -> dict:
    """Return the first messaging event of a captured payload."""
    return fixture_json("facebook", name)["entry"][0]["messaging"][0]


@pytest.fixture
def facebook(fake_facebook):
    """The fake Graph API, with the customer's profile picture on the fake CDN."""
    path = f"/platform/profilepic/{CUSTOMER}.jpg"
    fake_facebook.cdn[path] = (AVATAR, "image/jpeg")
    fake_facebook.profiles[CUSTOMER]["profile_pic"] = f"{fake_facebook.base_url}{path}?psid={CUSTOMER}&hash=AT8x"
    return fake_facebook


async def setup_page(desk, fake, **kwargs) -> tuple[dict, str]:
    """Connect the default page as an admin; return (channel, admin token)."""
    _, token = await desk.operator("boss", role="admin")
    channel = await desk.facebook_channel(token, fake, **kwargs)
    assert channel["registered"] is True
    return channel, token


async def deliver(desk, channel_id: int, body: bytes, *, secret: str = APP_SECRET, signature: str | None = None,
                  status: int = 200):
    """POST a webhook body to a channel, signed over its exact bytes."""
    headers = {"Content-Type": "application/json", SIGNATURE: signature or sign(body, secret)}
    response = await desk.client.post(f"/webhooks/{channel_id}", data=body, headers=headers)
    assert response.status == status, await response.text()
    return response


async def all_chats(desk, token: str) -> list[dict]:
    """Return every chat the operator sees."""
    return await desk.get("/api/chats?limit=100", token)


async def conversation(desk, token: str, chat_id: int) -> list[dict]:
    """Return every message of a chat, oldest first."""
    page = await desk.get(f"/api/chats/{chat_id}/messages?limit=100", token)
    assert page["has_more"] is False
    return page["messages"]


async def assert_nothing_stored(desk, token: str, case: str) -> None:
    """Check that no chat and no unread message exist."""
    assert await all_chats(desk, token) == [], case
    assert await desk.get("/api/unread", token) == {"chats": 0, "messages": 0}, case


# --- customer messages ------------------------------------------------------------------------


async def test_text_message_opens_a_chat_and_the_profile_follows(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))

    [chat] = await all_chats(desk, token)
    assert chat["channel_id"] == channel["id"] and chat["provider"] == "facebook"
    assert chat["external_id"] == CUSTOMER and chat["status"] == "new" and chat["unread"] == 1
    assert chat["contact"]["external_id"] == CUSTOMER
    [message] = await conversation(desk, token, chat["id"])
    assert message["text"] == "Hi, my order A-20931 hasn't arrived yet"
    assert message["direction"] == "in" and message["status"] == "received"
    assert message["author"]["type"] == "contact" and message["author"]["id"] == chat["contact"]["id"]
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 1}

    async def profile_shown() -> bool:
        [chat] = await all_chats(desk, token)
        return chat["contact"]["name"] == "Lucía Fernández" and chat["contact"]["avatar_url"] is not None

    await eventually(profile_shown)
    [chat] = await all_chats(desk, token)
    assert any(path.endswith(f"/{CUSTOMER}") and method == "GET" for method, path, _, _ in facebook.calls)
    response = await desk.client.get(chat["contact"]["avatar_url"], headers=desk.headers(token))
    assert response.status == 200
    assert await response.read() == AVATAR


async def test_unicode_text_arrives_unchanged(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text_unicode_raw.json"))
    [chat] = await all_chats(desk, token)
    [message] = await conversation(desk, token, chat["id"])
    assert message["text"] == "¿Tienen disponible el modelo azul? äöå 😊"


async def test_image_is_downloaded_from_the_cdn_and_served(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    sio, events = await desk.socket(token)
    try:
        body, files = served(facebook, "facebook_webhook_image.json")
        [expected] = files.values()
        await deliver(desk, channel["id"], body)
        [chat] = await all_chats(desk, token)
        [message] = await conversation(desk, token, chat["id"])
        [attachment] = message["attachments"]
        assert attachment["kind"] == "image"

        async def ready() -> dict | None:
            [message] = await conversation(desk, token, chat["id"])
            return message["attachments"][0] if message["attachments"][0]["ready"] else None

        await eventually(ready)
        attachment = await ready()
        assert attachment["size"] == len(expected) and attachment["mime"] == "image/jpeg"
        response = await desk.client.get(attachment["url"], headers=desk.headers(token))
        assert response.status == 200
        assert await response.read() == expected
        await eventually(lambda: any(name == "message.updated" and data["attachments"][0]["ready"]
                                     for name, data in events))
    finally:
        await sio.disconnect()


async def test_postback_is_a_customer_message(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_postback.json"))
    [chat] = await all_chats(desk, token)
    assert chat["external_id"] == CUSTOMER and chat["unread"] == 1
    [message] = await conversation(desk, token, chat["id"])
    assert message["text"] == "Track my order"
    assert message["direction"] == "in" and message["author"]["type"] == "contact"


async def test_sticker_sent_as_image_and_sticker_is_one_sticker(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    body, _ = served(facebook, "facebook_webhook_sticker.json")
    await deliver(desk, channel["id"], body)
    [chat] = await all_chats(desk, token)
    [message] = await conversation(desk, token, chat["id"])
    assert [a["kind"] for a in message["attachments"]] == ["sticker"]


# --- one callback URL for every page of the app ------------------------------------------------


async def test_batch_entries_for_a_page_without_channel_are_ignored(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    body, files = served(facebook, "facebook_webhook_batched.json")
    await deliver(desk, channel["id"], body)

    chats = {chat["external_id"]: chat for chat in await all_chats(desk, token)}
    assert set(chats) == {CUSTOMER, "6847201938475562"}
    assert all(chat["channel_id"] == channel["id"] for chat in chats.values())
    handoff, receipt = await conversation(desk, token, chats[CUSTOMER]["id"])
    assert handoff["text"] == "Talk to a human"
    assert receipt["text"] == "here is the receipt"
    [pdf] = receipt["attachments"]
    assert pdf["kind"] == "file" and pdf["file_name"] == "Receipt_A-20931.pdf"
    clip, answer = await conversation(desk, token, chats["6847201938475562"]["id"])
    assert clip["attachments"][0]["kind"] == "audio"
    assert answer["text"] == "Yes, that one"
    assert await desk.get("/api/unread", token) == {"chats": 2, "messages": 4}

    async def downloaded() -> bool:
        messages = await conversation(desk, token, chats[CUSTOMER]["id"])
        return messages[1]["attachments"][0]["ready"]

    await eventually(downloaded)
    [pdf] = (await conversation(desk, token, chats[CUSTOMER]["id"]))[1]["attachments"]
    assert pdf["file_name"] == "Receipt_A-20931.pdf"
    response = await desk.client.get(pdf["url"], headers=desk.headers(token))
    assert await response.read() == next(data for path, data in files.items() if path.endswith("Receipt_A-20931.pdf"))


async def test_batch_entries_are_routed_to_their_page_channel_wherever_they_arrive(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    facebook.pages[OTHER_PAGE] = {"name": "Acme Partners", "token": OTHER_PAGE_TOKEN}
    other = await desk.facebook_channel(token, facebook, page_id=OTHER_PAGE, token=OTHER_PAGE_TOKEN)
    body, _ = served(facebook, "facebook_webhook_batched.json")

    # Meta posts to whichever callback URL the app has: here, the other page's channel.
    await deliver(desk, other["id"], body)
    chats = {chat["external_id"]: chat for chat in await all_chats(desk, token)}
    assert {k: c["channel_id"] for k, c in chats.items()} == {
        CUSTOMER: channel["id"], "6847201938475562": channel["id"], "25018473920184736": other["id"]}
    started, shared = await conversation(desk, token, chats["25018473920184736"]["id"])
    assert started["text"] == "Get Started"
    assert "youtu" in shared["text"] and shared["attachments"] == []
    assert len(await conversation(desk, token, chats[CUSTOMER]["id"])) == 2

    # The same batch again, through the first page's URL: every message is stored once.
    await deliver(desk, channel["id"], body)
    assert len(await all_chats(desk, token)) == 3
    for chat in chats.values():
        assert len(await conversation(desk, token, chat["id"])) == 2
    assert await desk.get("/api/unread", token) == {"chats": 3, "messages": 6}


async def test_a_page_of_another_app_gets_nothing_from_this_apps_webhook(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    facebook.pages[OTHER_PAGE] = {"name": "Acme Partners", "token": OTHER_PAGE_TOKEN}
    other = await desk.facebook_channel(token, facebook, page_id=OTHER_PAGE, token=OTHER_PAGE_TOKEN,
                                        app_secret="another-app-secret")
    body, _ = served(facebook, "facebook_webhook_batched.json")
    # Signed with the first app's secret, the batch is no proof for the other app's page.
    await deliver(desk, other["id"], body, status=403)
    await assert_nothing_stored(desk, token, "wrong app's secret")
    await deliver(desk, channel["id"], body)
    chats = await all_chats(desk, token)
    assert {chat["external_id"] for chat in chats} == {CUSTOMER, "6847201938475562"}
    assert {chat["channel_id"] for chat in chats} == {channel["id"]}


# --- what carries no customer message ------------------------------------------------------------


async def test_echo_delivery_and_read_update_our_reply(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    sio, events = await desk.socket(token)
    try:
        await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
        [chat] = await all_chats(desk, token)
        reply = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token,
                                {"text": "Checking order A-20931 now", "client_id": "r-1"}, status=201)

        async def reply_status() -> str:
            messages = await conversation(desk, token, chat["id"])
            return next(m["status"] for m in messages if m["id"] == reply["id"])

        async def is_sent() -> bool:
            return await reply_status() == "sent"

        await eventually(is_sent)
        [sent] = facebook.sent
        assert sent["recipient"] == {"id": CUSTOMER} and sent["message"]["text"] == "Checking order A-20931 now"
        mid = f"m_{len(facebook.sent)}"
        sent_ms = int(time.time() * 1000) + 1000
        before = await conversation(desk, token, chat["id"])
        unread = await desk.get("/api/unread", token)

        # Meta echoes our own reply: neither a customer message nor a second copy of the reply.
        echo = first_event("facebook_webhook_echo.json")
        echo["message"].update(mid=mid, text=sent["message"]["text"], metadata=sent["message"].get("metadata"))
        await deliver(desk, channel["id"], event_body(echo))
        # Without the desk's metadata, the mid the Send API answered still names our reply.
        del echo["message"]["metadata"]
        await deliver(desk, channel["id"], event_body(echo))
        after = await conversation(desk, token, chat["id"])
        assert [m["id"] for m in after] == [m["id"] for m in before]
        assert [m for m in after if m["direction"] == "in"] == [m for m in before if m["direction"] == "in"]
        assert await desk.get("/api/unread", token) == unread

        # The captured receipts refer to messages before ours: nothing changes.
        await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_read_delivery.json"))
        assert await reply_status() == "sent"

        delivery, read = fixture_json("facebook", "facebook_webhook_read_delivery.json")["entry"][0]["messaging"]
        delivery["delivery"] = {"mids": [mid], "watermark": sent_ms}
        await deliver(desk, channel["id"], event_body(delivery))
        assert await reply_status() == "delivered"
        await eventually(lambda: any(name == "message.updated" and data["id"] == reply["id"]
                                     and data["status"] == "delivered" for name, data in events))

        read["read"] = {"watermark": sent_ms}
        read["timestamp"] = sent_ms
        await deliver(desk, channel["id"], event_body(read))
        assert await reply_status() == "read"
        # A late delivery report never moves it back.
        late = copy.deepcopy(delivery)
        late["delivery"]["watermark"] = sent_ms + 1
        await deliver(desk, channel["id"], event_body(late))
        assert await reply_status() == "read"
        assert len(await conversation(desk, token, chat["id"])) == 2
        await eventually(lambda: any(name == "message.updated" and data["id"] == reply["id"]
                                     and data["status"] == "read" for name, data in events))
    finally:
        await sio.disconnect()


# --- the page's own messages (echoes) ----------------------------------------------------------


def page_message(mid: str, *, text: str | None = None, metadata: str | None = None,
                 attachments: list | None = None, recipient: str = CUSTOMER) -> dict:
    """Return Meta's echo of a message the page sent to ``recipient``, shaped like the captured one."""
    echo = first_event("facebook_webhook_echo.json")
    echo["recipient"] = {"id": recipient}
    echo["timestamp"] = int(time.time() * 1000)
    message = echo["message"]
    message["mid"] = mid
    del message["metadata"]
    if metadata is not None:
        message["metadata"] = metadata
    if text is not None:
        message["text"] = text
    if attachments is not None:
        del message["text"]
        message["attachments"] = attachments
    return echo


async def round_robin_page(desk, fake) -> tuple[dict, str, dict, str]:
    """Connect the page with a round-robin queue and one online agent; return (channel, admin token, agent, token)."""
    _, admin_token = await desk.operator("boss", role="admin")
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Shop", "routing": "round_robin"},
                            status=201)
    channel = await desk.facebook_channel(admin_token, fake)
    channel = await desk.call("PATCH", f"/api/channels/{channel['id']}", admin_token, {"queue_id": queue["id"]})
    agent, agent_token = await desk.operator("ana", queue_ids=[queue["id"]])
    await desk.call("PUT", "/api/operators/me/status", agent_token, {"status": "online"})
    return channel, admin_token, agent, agent_token


async def events_after(desk, token: str, seq: int) -> list[tuple[str, dict]]:
    """Return the operator's logged events after ``seq`` (what they were sent), as (name, data)."""
    log = await desk.get(f"/api/events?after={seq}", token)
    return [(event["event"], event["data"]) for event in log["events"]]


async def test_reply_typed_in_the_page_inbox_joins_the_chat_as_the_pages_message(desk, facebook):
    channel, admin_token, agent, token = await round_robin_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    assert chat["status"] == "active" and chat["operator_id"] == agent["id"] and chat["unread"] == 1

    async def profile_shown() -> bool:
        [chat] = await all_chats(desk, token)
        return chat["contact"]["avatar_url"] is not None

    await eventually(profile_shown)  # its chat.updated comes before what is counted below
    unread = {t: await desk.get("/api/unread", t) for t in (token, admin_token)}
    seqs = {t: (await desk.get("/api/events?after=0", t))["seq"] for t in (token, admin_token)}
    sio, live = await desk.socket(token)
    try:
        # Someone answered in Meta's Page inbox: the captured echo (another sender's metadata).
        await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_echo.json"))
        question, answer = await conversation(desk, token, chat["id"])
        assert answer["text"] == "Hi! I'm checking order A-20931 for you now."
        assert answer["direction"] == "out" and answer["status"] == "sent" and answer["attachments"] == []
        # From the page, not from an operator (CONTRACT §3 has no author type for the page).
        assert answer["author"] == {"type": "system", "id": None, "name": channel["name"]}
        assert answer["id"] > question["id"]

        # Not a customer message: no unread, same status and operator, nothing routed.
        after = await desk.get(f"/api/chats/{chat['id']}", token)
        assert (after["status"], after["operator_id"], after["unread"]) == ("active", agent["id"], 1)
        assert after["last_message"]["id"] == answer["id"]
        for t in (token, admin_token):
            assert await desk.get("/api/unread", t) == unread[t]
            # Pushed to whoever sees the chat: the message and the chat's new last message.
            logged = await events_after(desk, t, seqs[t])
            assert [name for name, _ in logged] == ["message.created", "chat.updated"]
            assert logged[0][1]["id"] == answer["id"] and logged[1][1]["last_message"]["id"] == answer["id"]
        await eventually(lambda: any(name == "message.created" and data["id"] == answer["id"]
                                     for name, data in live))

        # Meta retries: stored once. Its delivery report moves it on like a reply of ours.
        await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_echo.json"))
        assert len(await conversation(desk, token, chat["id"])) == 2
        delivery = first_event("facebook_webhook_read_delivery.json")
        delivery["delivery"]["watermark"] = 1
        await deliver(desk, channel["id"], event_body(delivery))
        [_, answer] = await conversation(desk, token, chat["id"])
        assert answer["status"] == "delivered"
    finally:
        await sio.disconnect()


async def test_page_messages_never_open_reopen_or_route_a_chat(desk, facebook):
    channel, admin_token, agent, token = await round_robin_page(desk, facebook)
    # The page writes first (another app, or the Page inbox): kept in a closed chat nobody is given.
    await deliver(desk, channel["id"], event_body(page_message("m_page_first", text="Your order has shipped")))
    assert await all_chats(desk, token) == []
    assert await desk.get("/api/unread", token) == {"chats": 0, "messages": 0}
    [closed] = await desk.get("/api/chats?status=closed", admin_token)
    assert closed["external_id"] == CUSTOMER and closed["operator_id"] is None and closed["unread"] == 0
    assert closed["last_message"]["text"] == "Your order has shipped"
    assert await desk.get("/api/chats?status=new", admin_token) == []

    # The customer answers: a chat opens and is routed as usual.
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    assert chat["id"] != closed["id"] and chat["status"] == "active" and chat["operator_id"] == agent["id"]
    await desk.call("POST", f"/api/chats/{chat['id']}/close", token)

    # After the close, the page's next message stays in that chat, which stays closed.
    await deliver(desk, channel["id"], event_body(page_message("m_page_after", text="Anything else?")))
    chat = await desk.get(f"/api/chats/{chat['id']}", admin_token)
    assert chat["status"] == "closed" and chat["unread"] == 0
    assert [m["text"] for m in await conversation(desk, admin_token, chat["id"])] == [
        "Hi, my order A-20931 hasn't arrived yet", "Anything else?"]
    assert await desk.get("/api/chats?status=new", admin_token) == []
    assert await desk.get("/api/chats?status=active", admin_token) == []
    assert await desk.get("/api/unread", admin_token) == {"chats": 0, "messages": 0}


async def test_page_message_attachment_is_downloaded_and_served(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    body, files = served(facebook, "facebook_webhook_image.json")
    [expected] = files.values()
    image = json.loads(body)["entry"][0]["messaging"][0]["message"]["attachments"]
    await deliver(desk, channel["id"], event_body(page_message("m_page_photo", attachments=image)))

    async def ready() -> dict | None:
        _, photo = await conversation(desk, token, chat["id"])
        return photo if photo["attachments"] and photo["attachments"][0]["ready"] else None

    await eventually(ready)
    photo = await ready()
    assert photo["direction"] == "out" and photo["author"]["type"] == "system" and photo["text"] == ""
    [attachment] = photo["attachments"]
    assert attachment["kind"] == "image"
    response = await desk.client.get(attachment["url"], headers=desk.headers(token))
    assert response.status == 200
    assert await response.read() == expected


async def test_echo_of_our_reply_before_the_send_answer_is_stored_once(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    facebook.hold_answers = asyncio.Event()
    try:
        # A reply longer than one Send API message goes out in two, each with the desk's metadata.
        text = "Checking order A-20931 now. " * 90
        reply = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": text}, status=201)
        await eventually(lambda: len(facebook.sent) == 1)
        [first] = facebook.sent
        # Meta's echo of the first part arrives while the desk still waits for the Send API's answer.
        await deliver(desk, channel["id"], event_body(page_message(
            "m_1", text=first["message"]["text"], metadata=first["message"]["metadata"])))
        # So does a reply typed in the Page inbox meanwhile.
        await deliver(desk, channel["id"], event_body(page_message("m_page_inbox", text="We're on it!")))
    finally:
        facebook.hold_answers.set()

    async def sent() -> bool:
        messages = await conversation(desk, token, chat["id"])
        return any(m["id"] == reply["id"] and m["status"] == "sent" for m in messages)

    await eventually(sent)
    second = facebook.sent[1]
    # Both name the reply, each with its own place in it.
    assert (first["message"]["metadata"], second["message"]["metadata"]) == (
        f"desk:{reply['id']}:1/2", f"desk:{reply['id']}:2/2")
    await deliver(desk, channel["id"], event_body(page_message(
        "m_2", text=second["message"]["text"], metadata=second["message"]["metadata"])))
    messages = await conversation(desk, token, chat["id"])
    assert [(m["direction"], m["author"]["type"], m["text"]) for m in messages] == [
        ("in", "contact", "Hi, my order A-20931 hasn't arrived yet"),
        ("out", "operator", text),
        ("out", "system", "We're on it!"),
    ]


# --- the desk's own replies, confirmed by their echo ------------------------------------------------

# Past the Send API's 2000 characters: two messages.
TWO_PARTS = ["A" * 2000, "B" * 100]


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry transient failures after a fifth of a second instead of 2, 4, 8 … seconds."""
    monkeypatch.setattr(jobs, "backoff", lambda attempts: 0.2)


@pytest.fixture
def slow_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry transient failures only after a minute: longer than any test waits."""
    monkeypatch.setattr(jobs, "backoff", lambda attempts: 60.0)


def echo_of(fake, index: int) -> dict:
    """Return Meta's echo of the ``index``-th message the fake Graph API accepted, metadata and all."""
    message = fake.sent[index]["message"]
    return page_message(fake.message_ids[index], text=message["text"], metadata=message["metadata"])


def delivery_of(*mids: str) -> dict:
    """Return Meta's delivery report naming ``mids`` (its watermark older than anything sent)."""
    delivery = first_event("facebook_webhook_read_delivery.json")
    delivery["delivery"] = {"mids": list(mids), "watermark": 1}
    return delivery


async def chat_with_customer(desk, fake) -> tuple[dict, str, dict]:
    """Connect the page and receive the customer's message; return (channel, admin token, chat)."""
    channel, token = await setup_page(desk, fake)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    return channel, token, chat


async def reply(desk, token: str, chat: dict, text: str) -> dict:
    """Post an agent's reply; return it (pending)."""
    return await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": text}, status=201)


async def now(desk, token: str, message: dict) -> dict:
    """Return the message as the conversation shows it now."""
    return next(m for m in await conversation(desk, token, message["chat_id"]) if m["id"] == message["id"])


async def reaches(desk, token: str, message: dict, status: str) -> dict:
    """Wait until the message has ``status``; return it."""
    async def check() -> bool:
        return (await now(desk, token, message))["status"] == status
    await eventually(check)
    return await now(desk, token, message)


async def status_changes(desk, token: str, message: dict) -> list[str]:
    """Return the statuses the operator was told about for ``message``, in order."""
    log = await desk.get("/api/events?after=0", token)
    return [e["data"]["status"] for e in log["events"]
            if e["event"] == "message.updated" and e["data"]["id"] == message["id"]]


def accepted(fake) -> list[str]:
    """Return the texts the fake Graph API accepted, in order: what the customer got."""
    return [sent["message"].get("text") for sent in fake.sent]


async def test_a_long_reply_cut_off_between_parts_sends_only_the_rest_and_each_part_counts(
        desk, facebook, quick_backoff):
    channel, token, chat = await chat_with_customer(desk, facebook)
    # Graph fails the second part for a moment: the first is with the customer already.
    facebook.fail_next("/messages", 500, "<html>oops</html>", after=1)
    text = "A" * 2000 + "B" * 2000 + "C" * 100

    message = await reply(desk, token, chat, text)

    await reaches(desk, token, message, "sent")
    assert accepted(facebook) == ["A" * 2000, "B" * 2000, "C" * 100]
    assert sum(1 for method, path, _, _ in facebook.calls if path.endswith("/messages")) == 4
    # Meta reports the first part delivered: that is the reply's first message, delivered.
    await deliver(desk, channel["id"], event_body(delivery_of(facebook.message_ids[0])))
    assert (await now(desk, token, message))["status"] == "delivered"


async def test_a_part_whose_answer_was_lost_is_not_sent_again_once_echoed(desk, facebook, quick_backoff):
    channel, token, chat = await chat_with_customer(desk, facebook)
    facebook.hold_answers = asyncio.Event()
    facebook.drop_answers(1)
    message = await reply(desk, token, chat, "".join(TWO_PARTS))
    await eventually(lambda: len(facebook.sent) == 1)
    # Meta took the first part and echoes it; the answer to the desk is lost on the way back.
    await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))
    assert (await now(desk, token, message))["status"] == "pending"  # one part of two
    facebook.hold_answers.set()

    await reaches(desk, token, message, "sent")
    assert accepted(facebook) == TWO_PARTS
    assert await status_changes(desk, token, message) == ["sent"]


async def test_a_part_echoed_before_its_answer_counts_once(desk, facebook, quick_backoff):
    channel, token, chat = await chat_with_customer(desk, facebook)
    facebook.hold_answers = asyncio.Event()
    # The second part fails for a moment: the retry must start at the second part, not the third.
    facebook.fail_next("/messages", 500, "<html>oops</html>", after=1)
    message = await reply(desk, token, chat, "A" * 2000 + "B" * 2000 + "C" * 100)
    await eventually(lambda: len(facebook.sent) == 1)
    await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))
    facebook.hold_answers.set()  # then the answer naming the same part comes

    await reaches(desk, token, message, "sent")
    assert accepted(facebook) == ["A" * 2000, "B" * 2000, "C" * 100]


async def test_a_reply_whose_answer_was_lost_is_confirmed_by_its_echo_and_not_sent_again(
        desk, facebook, slow_backoff):
    channel, token, chat = await chat_with_customer(desk, facebook)
    sio, events = await desk.socket(token)
    try:
        facebook.drop_answers(1)
        first = await reply(desk, token, chat, "Your refund is on its way")
        # The send failed as far as the desk knows (no answer), and waits to be tried again.
        await eventually(lambda: Job.select().where((Job.ref_id == first["id"]) & (Job.attempts == 1)).exists())
        assert (await now(desk, token, first))["status"] == "pending"

        await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))

        assert (await now(desk, token, first))["status"] == "sent"
        await eventually(lambda: any(name == "message.updated" and data["id"] == first["id"]
                                     and data["status"] == "sent" for name, data in events))
        # Not sent again: the next reply goes at once, not after the first one's retry.
        second = await reply(desk, token, chat, "Anything else?")
        await reaches(desk, token, second, "sent")
        assert accepted(facebook) == ["Your refund is on its way", "Anything else?"]
        # The echo's mid is the reply's: Meta's delivery report of it counts.
        await deliver(desk, channel["id"], event_body(delivery_of(facebook.message_ids[0])))
        assert (await now(desk, token, first))["status"] == "delivered"
    finally:
        await sio.disconnect()


@pytest.mark.parametrize("answer", ["lost", "late"])
async def test_an_echo_during_the_send_settles_the_reply_whatever_its_answer(desk, facebook, quick_backoff, answer):
    channel, token, chat = await chat_with_customer(desk, facebook)
    facebook.hold_answers = asyncio.Event()
    if answer == "lost":
        facebook.drop_answers(1)
    first = await reply(desk, token, chat, "Your refund is on its way")
    await eventually(lambda: len(facebook.sent) == 1)
    # Meta's echo and delivery report come while the desk still waits for the Send API's answer.
    await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))
    assert (await now(desk, token, first))["status"] == "sent"
    await deliver(desk, channel["id"], event_body(delivery_of(facebook.message_ids[0])))
    assert (await now(desk, token, first))["status"] == "delivered"

    facebook.hold_answers.set()

    # The answer, or its loss, neither sends it again nor moves it back.
    second = await reply(desk, token, chat, "Anything else?")
    await reaches(desk, token, second, "sent")
    assert accepted(facebook) == ["Your refund is on its way", "Anything else?"]
    assert (await now(desk, token, first))["status"] == "delivered"
    assert await status_changes(desk, token, first) == ["sent", "delivered"]


async def test_a_reply_failed_for_lost_answers_is_sent_once_its_echo_comes(desk, facebook, monkeypatch):
    monkeypatch.setattr(outbound, "MAX_SEND_ATTEMPTS", 1)
    channel, token, chat = await chat_with_customer(desk, facebook)
    facebook.drop_answers(1)
    message = await reply(desk, token, chat, "Your refund is on its way")
    failed = await reaches(desk, token, message, "failed")
    assert failed["error"].startswith("cannot reach Graph")

    await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))

    sent = await now(desk, token, message)
    assert (sent["status"], sent["error"]) == ("sent", None)
    assert accepted(facebook) == ["Your refund is on its way"]


async def test_a_late_echo_of_a_part_sent_again_is_not_taken_for_the_next_part(desk, facebook, quick_backoff):
    channel, token, chat = await chat_with_customer(desk, facebook)
    # The first part's answer is lost and, its echo not there yet, the part goes again; Meta then
    # refuses the second part for good.
    facebook.drop_answers(1)
    facebook.fail_next("/messages", 400, fixture_json("facebook", "facebook_error_outside_window.json"), after=2)
    message = await reply(desk, token, chat, "".join(TWO_PARTS))
    await reaches(desk, token, message, "failed")
    assert accepted(facebook) == [TWO_PARTS[0], TWO_PARTS[0]]

    # The first copy's echo comes late. It is the first part again, not the second: the agent's
    # retry still sends the second.
    await deliver(desk, channel["id"], event_body(echo_of(facebook, 0)))
    assert (await now(desk, token, message))["status"] == "failed"
    await desk.call("POST", f"/api/chats/{chat['id']}/messages/{message['id']}/retry", token)

    await reaches(desk, token, message, "sent")
    assert accepted(facebook) == [TWO_PARTS[0], TWO_PARTS[0], TWO_PARTS[1]]
    assert [m["text"] for m in await conversation(desk, token, chat["id"])] == [
        "Hi, my order A-20931 hasn't arrived yet", "".join(TWO_PARTS)]


async def test_the_same_mid_again_is_stored_once(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    sio, events = await desk.socket(token)
    try:
        text = fixture_bytes("facebook", "facebook_webhook_text.json")
        await deliver(desk, channel["id"], text)
        await asyncio.gather(*(deliver(desk, channel["id"], text) for _ in range(3)))
        # Redelivered inside another batch (a new entry time), next to a new message.
        repeated = first_event("facebook_webhook_text.json")
        new = copy.deepcopy(repeated)
        new["message"] = {"mid": "m_new_message_0001", "text": "Any news?"}
        new["timestamp"] += 1000
        await deliver(desk, channel["id"], event_body(repeated, new, copy.deepcopy(new)))

        [chat] = await all_chats(desk, token)
        messages = await conversation(desk, token, chat["id"])
        assert [m["text"] for m in messages] == ["Hi, my order A-20931 hasn't arrived yet", "Any news?"]
        assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 2}
        log = await desk.get("/api/events?after=0", token)
        created = sorted(e["data"]["id"] for e in log["events"] if e["event"] == "message.created")
        assert created == [m["id"] for m in messages]
        await eventually(lambda: set(range(1, log["seq"] + 1)) <= {data["seq"] for _, data in events})
        assert sorted(data["id"] for name, data in events if name == "message.created") == created
    finally:
        await sio.disconnect()


async def test_kinds_the_desk_does_not_handle_are_acknowledged_and_ignored(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    reaction = first_event("facebook_webhook_text.json")
    del reaction["message"]
    mid = first_event("facebook_webhook_text.json")["message"]["mid"]
    reaction["reaction"] = {"reaction": "love", "emoji": "\u2764", "action": "react", "mid": mid}
    standby = {"object": "page", "entry": [{"id": DEFAULT_PAGE_ID, "time": 1782900123999,
                                            "standby": [first_event("facebook_webhook_text.json")]}]}
    instagram = json.loads(fixture_bytes("facebook", "facebook_webhook_text.json"))
    instagram["object"] = "instagram"
    for case, body in {
        "reaction": event_body(reaction),
        "standby": json.dumps(standby).encode(),
        "instagram": json.dumps(instagram).encode(),
        "no entries": json.dumps({"object": "page", "entry": []}).encode(),
    }.items():
        response = await deliver(desk, channel["id"], body)
        assert response.status == 200, case
        await assert_nothing_stored(desk, token, case)


# --- requests that are refused -------------------------------------------------------------------


async def test_signature_is_checked_over_the_exact_bytes(desk, facebook):
    vectors = fixture_json("facebook", "facebook_signature_vectors.json")
    channel, token = await setup_page(desk, facebook, app_secret=vectors["app_secret"])
    text = fixture_bytes("facebook", "facebook_webhook_text.json")
    unicode_raw = fixture_bytes("facebook", "facebook_webhook_text_unicode_raw.json")
    good = sign(text, vectors["app_secret"])
    altered = text.replace(b"A-20931", b"A-20932")
    assert len(altered) == len(text) and sum(a != b for a, b in zip(text, altered, strict=True)) == 1
    cases = {
        "missing": (text, None),
        "empty": (text, ""),
        "wrong secret": (text, sign(text, APP_SECRET)),
        "no prefix": (text, good[len("sha256="):]),
        "sha1 prefix": (text, "sha1=" + good[len("sha256="):]),
        "truncated": (text, good[:-1]),
        "body changed by one byte": (altered, good),
        "signature of re-serialised JSON": (unicode_raw, vectors["negative_example"]["value"]),
        "garbage body": (b"\xff not json", good),
    }
    for case, (body, signature) in cases.items():
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE] = signature
        response = await desk.client.post(f"/webhooks/{channel['id']}", data=body, headers=headers)
        assert response.status == 403, case
        await assert_nothing_stored(desk, token, case)

    for vector in vectors["vectors"]:
        if vector["file"] == "facebook_webhook_batched.json":
            continue  # its CDN URLs point at Meta: covered through the fake above
        body = fixture_bytes("facebook", vector["file"])
        assert len(body) == vector["bytes"]
        await deliver(desk, channel["id"], body, signature=vector["value"])
    [chat] = await all_chats(desk, token)
    assert len(await conversation(desk, token, chat["id"])) == 2


def bad_bodies() -> dict[str, bytes]:
    """Bodies Messenger never sends, by what is wrong with them."""
    text = fixture_bytes("facebook", "facebook_webhook_text.json")
    good_event = first_event("facebook_webhook_text.json")

    def without_sender_id(change) -> bytes:
        event = copy.deepcopy(good_event)
        change(event)
        return event_body(event)

    second = copy.deepcopy(good_event)
    second["message"] = {"mid": "m_second", "text": "second"}
    del second["sender"]
    return {
        "not JSON": text[:-20],
        "empty": b"",
        "invalid UTF-8": text.replace(b"Hi,", b"Hi\xc3\x28"),
        "JSON array": b"[" + text + b"]",
        "JSON number": b"42",
        "entry is an object": json.dumps({"object": "page", "entry": {"id": DEFAULT_PAGE_ID}}).encode(),
        "entry is a string": json.dumps({"object": "page", "entry": "108765432109876"}).encode(),
        "entry missing": json.dumps({"object": "page"}).encode(),
        "no sender": without_sender_id(lambda event: event.pop("sender")),
        "sender without id": without_sender_id(lambda event: event.__setitem__("sender", {})),
        "sender id null": without_sender_id(lambda event: event.__setitem__("sender", {"id": None})),
        "sender is a string": without_sender_id(lambda event: event.__setitem__("sender", CUSTOMER)),
        "good event next to one without sender": event_body(good_event, second),
    }


async def test_bodies_messenger_never_sends_are_refused_and_nothing_stored(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    for case, body in bad_bodies().items():
        response = await deliver(desk, channel["id"], body, status=400)
        assert (await response.json())["error"]["code"], case
        await assert_nothing_stored(desk, token, case)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    [chat] = await all_chats(desk, token)
    assert len(await conversation(desk, token, chat["id"])) == 1


async def test_oversize_body_is_refused_with_413(desk, facebook, settings):
    channel, token = await setup_page(desk, facebook)
    text = fixture_bytes("facebook", "facebook_webhook_text.json")
    over = text + b" " * (settings.webhook_limit + 1 - len(text))
    headers = {"Content-Type": "application/json", SIGNATURE: sign(over)}
    # Large bodies go as file-like objects: aiohttp warns about big raw bytes.
    response = await desk.client.post(f"/webhooks/{channel['id']}", data=io.BytesIO(over), headers=headers)
    assert response.status == 413
    await assert_nothing_stored(desk, token, "oversize")


async def test_verification_handshake(desk, facebook):
    channel, _ = await setup_page(desk, facebook)
    descriptor = fixture_json("facebook", "facebook_webhook_verification_request.json")
    query = {**descriptor["query"], "hub.verify_token": "verify-me"}
    url = f"/webhooks/{channel['id']}"

    response = await desk.client.get(url, params=query)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == descriptor["expected_response"]["body"]

    for case, params in {
        "wrong token": descriptor["query"],
        "no token": {k: v for k, v in query.items() if k != "hub.verify_token"},
        "not subscribe": {**query, "hub.mode": "unsubscribe"},
    }.items():
        response = await desk.client.get(url, params=params)
        assert response.status == descriptor["wrong_token_expected_status"], case
    response = await desk.client.get(f"/webhooks/{channel['id'] + 100}", params=query)
    assert response.status == 404


async def test_disabled_page_is_404_and_unsubscribed(desk, facebook):
    channel, token = await setup_page(desk, facebook)
    assert DEFAULT_PAGE_ID in facebook.subscribed
    changed = await desk.call("PATCH", f"/api/channels/{channel['id']}", token, {"enabled": False})
    assert changed["enabled"] is False
    assert DEFAULT_PAGE_ID not in facebook.subscribed
    assert any(method == "DELETE" and path.endswith(f"/{DEFAULT_PAGE_ID}/subscribed_apps")
               for method, path, _, _ in facebook.calls)
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"), status=404)
    await assert_nothing_stored(desk, token, "disabled")
    response = await desk.client.get(f"/webhooks/{channel['id']}", params={
        "hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"})
    assert response.status == 404
