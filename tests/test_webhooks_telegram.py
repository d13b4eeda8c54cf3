"""Telegram webhooks end to end (CONTRACT §6, §3): captured updates in over HTTP, checked through the
agent's API and socket, with the fake Bot API serving files and profiles."""

from __future__ import annotations

import asyncio
import copy
import io
import json

import pytest

from tests.conftest import eventually, fixture_bytes, fixture_json
from tests.fakes.telegram import fake_bytes

CUSTOMER = "5123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Files of the captured updates, by fixture: (file_id, path on the fake, bytes the fake serves).
MEDIA_FILES = {
    "telegram_update_document.json": ("document", "documents/file_7.pdf", b"%PDF-1.7\n" + fake_bytes(3000)),
    "telegram_update_voice.json": ("voice", "voice/file_8.oga", b"OggS" + fake_bytes(2000)),
    "telegram_update_video.json": ("video", "videos/file_9.mp4", fake_bytes(5000)),
    "telegram_update_sticker.json": ("sticker", "stickers/file_10.tgs", fake_bytes(1500)),
}


def update(name: str) -> dict:
    """Return a captured update."""
    return fixture_json("telegram", name)


def text_update(update_id: int, user_id: int, message_id: int, text: str, *, first_name: str = "Customer") -> dict:
    """Build a private text update from ``user_id``, shaped like the captured one."""
    body = update("telegram_update_text.json")
    message = body["message"]
    body["update_id"] = update_id
    message["message_id"] = message_id
    message["text"] = text
    user = {"id": user_id, "is_bot": False, "first_name": first_name}
    message["from"] = user
    message["chat"] = {"id": user_id, "first_name": first_name, "type": "private"}
    return body


async def setup_channel(desk, fake_telegram) -> tuple[dict, str]:
    """Connect a bot as an admin; return (channel, admin token)."""
    _, token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(token, fake_telegram)
    assert channel["registered"] is True
    return channel, token


async def post_raw(desk, channel_id: int, body, headers: dict[str, str] | None = None):
    """POST a body to a channel's webhook exactly as given."""
    return await desk.client.post(f"/webhooks/{channel_id}", data=body, headers=headers or {})


async def conversation(desk, token: str, chat_id: int) -> list[dict]:
    """Return every message of a chat, oldest first."""
    page = await desk.get(f"/api/chats/{chat_id}/messages?limit=100", token)
    assert page["has_more"] is False
    return page["messages"]


async def all_chats(desk, token: str) -> list[dict]:
    """Return every chat the operator sees, whatever its status."""
    return await desk.get("/api/chats?limit=100", token)


async def assert_nothing_stored(desk, token: str, case: str) -> None:
    """Check that no chat and no unread message exist."""
    assert await all_chats(desk, token) == [], case
    assert await desk.get("/api/unread", token) == {"chats": 0, "messages": 0}, case


async def socket_caught_up(desk, token: str, events: list) -> list[dict]:
    """Wait until the socket got every event of the operator's replay log; return the log."""
    log = await desk.get("/api/events?after=0", token)
    wanted = set(range(1, log["seq"] + 1))
    await eventually(lambda: wanted <= {data["seq"] for _, data in events})
    return log["events"]


# --- what each kind of update becomes ---------------------------------------------------------


async def test_text_message_opens_a_new_chat_for_the_customer(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    sio, events = await desk.socket(token)
    try:
        response = await desk.telegram_update(channel, update("telegram_update_text.json"))
        assert (await response.json()) is not None

        [chat] = await all_chats(desk, token)
        assert chat["channel_id"] == channel["id"] and chat["provider"] == "telegram"
        assert chat["external_id"] == CUSTOMER and chat["status"] == "new"
        assert chat["queue_id"] == channel["queue_id"] and chat["operator_id"] is None
        contact = chat["contact"]
        assert (contact["external_id"], contact["name"], contact["username"]) == (
            CUSTOMER, "Olena Kovalenko", "olena_k")
        assert chat["unread"] == 1
        [message] = await conversation(desk, token, chat["id"])
        assert message["text"] == "Hi! My order #A-20931 hasn't arrived yet, can you check?"
        assert message["direction"] == "in" and message["status"] == "received"
        assert message["author"] == {"type": "contact", "id": contact["id"], "name": "Olena Kovalenko"}
        assert message["attachments"] == [] and message["edited_at"] is None
        assert chat["last_message"]["id"] == message["id"]
        assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 1}

        await eventually(lambda: any(name == "message.created" for name, _ in events))
        pushed = next(data for name, data in events if name == "message.created")
        assert {k: v for k, v in pushed.items() if k != "seq"} == message
    finally:
        await sio.disconnect()


async def test_photo_is_downloaded_through_getfile_and_served(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    sio, events = await desk.socket(token)
    try:
        body = update("telegram_update_photo.json")
        await desk.telegram_update(channel, body)
        [chat] = await all_chats(desk, token)
        [message] = await conversation(desk, token, chat["id"])
        assert message["text"] == "This is what I received - the box is damaged"
        [attachment] = message["attachments"]
        assert attachment["kind"] == "image" and attachment["file_name"] is None

        largest = body["message"]["photo"][-1]["file_id"]
        expected = fake_telegram.files[fake_telegram.file_index[largest]["file_path"]]

        def ready_pushed() -> dict | None:
            for name, data in events:
                if name == "message.updated" and data["id"] == message["id"] and data["attachments"][0]["ready"]:
                    return data
            return None

        await eventually(ready_pushed)
        assert [params["file_id"] for params in fake_telegram.calls_of("getFile")].count(largest) == 1
        pushed = ready_pushed()["attachments"][0]
        [message] = await conversation(desk, token, chat["id"])
        [attachment] = message["attachments"]
        assert attachment["ready"] is True and attachment["url"] == f"/api/attachments/{attachment['id']}"
        assert attachment["size"] == len(expected) and attachment["mime"] == "image/jpeg"
        assert pushed == attachment
        response = await desk.client.get(attachment["url"], headers=desk.headers(token))
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        assert await response.read() == expected
    finally:
        await sio.disconnect()


async def test_every_update_kind_lands_in_the_conversation_in_order(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    for name, (field, path, data) in MEDIA_FILES.items():
        media = update(name)["message"][field]
        fake_telegram.add_file(media["file_id"], path, data)
    names = ["telegram_update_text.json", "telegram_update_photo.json", *MEDIA_FILES,
             "telegram_update_location.json", "telegram_update_contact.json"]
    for name in names:
        await desk.telegram_update(channel, update(name))

    [chat] = await all_chats(desk, token)
    assert chat["unread"] == len(names)
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": len(names)}

    async def downloads_done() -> bool:
        messages = await conversation(desk, token, chat["id"])
        return all(a["ready"] for m in messages for a in m["attachments"])

    await eventually(downloads_done)
    text, photo, document, voice, video, sticker, location, contact = await conversation(desk, token, chat["id"])
    assert [m["id"] for m in (text, photo, document, voice, video, sticker, location, contact)] == sorted(
        m["id"] for m in (text, photo, document, voice, video, sticker, location, contact))
    assert text["attachments"] == []

    def one(message: dict) -> dict:
        [attachment] = message["attachments"]
        return attachment

    assert document["text"] == "Invoice attached"
    assert (one(document)["kind"], one(document)["file_name"], one(document)["mime"]) == (
        "file", "invoice_A-20931.pdf", "application/pdf")
    assert voice["text"] == ""
    assert (one(voice)["kind"], one(voice)["file_name"], one(voice)["mime"]) == ("audio", None, "audio/ogg")
    assert video["text"] == "see 0:05"
    assert (one(video)["kind"], one(video)["file_name"], one(video)["mime"]) == ("video", "unboxing.mp4", "video/mp4")
    assert one(sticker)["kind"] == "sticker"

    for message, fixture in ((document, "telegram_update_document.json"), (voice, "telegram_update_voice.json"),
                             (video, "telegram_update_video.json"), (sticker, "telegram_update_sticker.json")):
        attachment = one(message)
        data = MEDIA_FILES[fixture][2]
        assert attachment["size"] == len(data), fixture
        response = await desk.client.get(attachment["url"], headers=desk.headers(token))
        assert response.status == 200, fixture
        assert await response.read() == data, fixture
    response = await desk.client.get(one(document)["url"], headers=desk.headers(token))
    assert "invoice_A-20931.pdf" in response.headers["Content-Disposition"]

    place = one(location)
    assert place["kind"] == "location" and place["ready"] is True and place["url"] is None
    assert place["meta"]["latitude"] == 50.450092 and place["meta"]["longitude"] == 30.523921
    card = one(contact)
    assert card["kind"] == "contact" and card["ready"] is True and card["url"] is None
    assert card["meta"]["phone_number"] == "+380501234567"
    assert card["meta"]["first_name"] == "Olena" and card["meta"]["last_name"] == "Kovalenko"


async def test_an_edit_changes_the_same_message(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    sio, events = await desk.socket(token)
    try:
        await desk.telegram_update(channel, update("telegram_update_text.json"))
        [chat] = await all_chats(desk, token)
        [original] = await conversation(desk, token, chat["id"])

        await desk.telegram_update(channel, update("telegram_update_edited.json"))
        [edited] = await conversation(desk, token, chat["id"])
        assert edited["id"] == original["id"]
        assert edited["text"] == "Hi! My order #A-20931 hasn't arrived yet (ordered on June 20), can you check?"
        assert original["edited_at"] is None and edited["edited_at"] is not None
        assert edited["created_at"] == original["created_at"]
        [chat] = await all_chats(desk, token)
        assert chat["unread"] == 1 and chat["last_message"]["text"] == edited["text"]
        assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 1}

        log = await socket_caught_up(desk, token, events)
        updates = [data for name, data in events if name == "message.updated" and data["id"] == edited["id"]]
        assert [data["text"] for data in updates] == [edited["text"]]
        assert updates[0]["edited_at"] == edited["edited_at"]
        assert [e["event"] for e in log].count("message.created") == 1
    finally:
        await sio.disconnect()


async def test_a_group_is_one_chat_and_each_member_a_contact(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    first = update("telegram_update_from_group.json")
    second = copy.deepcopy(first)
    second["update_id"] += 1
    giulia = {"id": 6345678901, "is_bot": False, "first_name": "Giulia", "last_name": "Bianchi"}
    second["message"].update({"message_id": 378, "text": "Same question here", "from": giulia,
                              "date": first["message"]["date"] + 5})
    del second["message"]["reply_to_message"], second["message"]["entities"]
    await desk.telegram_update(channel, first)
    await desk.telegram_update(channel, second)
    # Marco also writes to the bot privately: a conversation of its own.
    await desk.telegram_update(channel, text_update(second["update_id"] + 1, 6234567890, 15, "Hi, it's Marco",
                                                    first_name="Marco"))

    chats = {chat["external_id"]: chat for chat in await all_chats(desk, token)}
    assert set(chats) == {"-1002198765432", "6234567890"}
    group = chats["-1002198765432"]
    marco, giulia = await conversation(desk, token, group["id"])
    assert marco["text"] == "@acme_support_bot any update on the wholesale price list?"
    assert giulia["text"] == "Same question here"
    assert (marco["author"]["type"], marco["author"]["name"]) == ("contact", "Marco")
    assert (giulia["author"]["type"], giulia["author"]["name"]) == ("contact", "Giulia Bianchi")
    assert marco["author"]["id"] != giulia["author"]["id"]
    assert group["contact"]["external_id"] == "6234567890" and group["contact"]["username"] == "marco_rossi"
    assert group["unread"] == 2
    private = chats["6234567890"]
    [hello] = await conversation(desk, token, private["id"])
    assert hello["author"]["id"] == marco["author"]["id"]
    assert private["contact"]["id"] == group["contact"]["id"]


async def test_blocking_the_bot_leaves_a_note_in_the_open_chat(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    # Without an open chat there is nowhere to note it, and no chat is opened for it.
    blocked = update("telegram_update_my_chat_member_blocked.json")
    early = copy.deepcopy(blocked)
    early["update_id"] = 861234400
    await desk.telegram_update(channel, early)
    await assert_nothing_stored(desk, token, "blocked before any message")

    await desk.telegram_update(channel, update("telegram_update_text.json"))
    await desk.telegram_update(channel, blocked)
    [chat] = await all_chats(desk, token)
    customer, note = await conversation(desk, token, chat["id"])
    assert customer["author"]["type"] == "contact"
    assert note["author"]["type"] == "system"
    assert "block" in note["text"].lower()
    assert chat["unread"] == 1


async def test_profile_is_fetched_after_the_answer(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    # The customer renamed themselves: the profile the Bot API gives wins over the update's sender.
    profile = fake_telegram.profiles[CUSTOMER]
    profile["last_name"] = "Shevchenko"
    big = fake_telegram.file_index[profile["photo"]["big_file_id"]]
    avatar_bytes = fake_telegram.files[big["file_path"]]
    sio, events = await desk.socket(token)
    try:
        await desk.telegram_update(channel, update("telegram_update_text.json"))
        [chat] = await all_chats(desk, token)
        contact_id = chat["contact"]["id"]

        async def profile_shown() -> bool:
            [chat] = await all_chats(desk, token)
            return chat["contact"]["avatar_url"] is not None and chat["contact"]["name"] == "Olena Shevchenko"

        await eventually(profile_shown)
        assert {str(p["chat_id"]) for p in fake_telegram.calls_of("getChat")} == {CUSTOMER}
        assert profile["photo"]["big_file_id"] in [p["file_id"] for p in fake_telegram.calls_of("getFile")]
        [chat] = await all_chats(desk, token)
        assert chat["contact"]["username"] == "olena_k"
        assert chat["contact"]["avatar_url"] == f"/api/contacts/{contact_id}/avatar"
        response = await desk.client.get(chat["contact"]["avatar_url"], headers=desk.headers(token))
        assert response.status == 200 and response.content_type.startswith("image/")
        assert await response.read() == avatar_bytes
        await eventually(lambda: any(name == "chat.updated" and data["contact"]["avatar_url"] for name, data in events))
    finally:
        await sio.disconnect()


# --- requests that are refused -----------------------------------------------------------------


async def test_wrong_or_missing_secret_is_refused_and_nothing_stored(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    body = json.dumps(update("telegram_update_text.json")).encode()
    secret = desk.channel_secret(channel["id"])
    assert fake_telegram.webhook["secret_token"] == secret
    cases = {
        "missing": {"Content-Type": "application/json"},
        "empty": {"Content-Type": "application/json", SECRET_HEADER: ""},
        # One character changed (secrets are random: one that starts with "x" gets a "y").
        "wrong": {"Content-Type": "application/json", SECRET_HEADER: ("y" if secret[0] == "x" else "x") + secret[1:]},
        "prefix": {"Content-Type": "application/json", SECRET_HEADER: secret[:-1]},
        "longer": {"Content-Type": "application/json", SECRET_HEADER: secret + "x"},
    }
    for case, headers in cases.items():
        response = await post_raw(desk, channel["id"], body, headers)
        assert response.status == 403, case
        assert (await response.json())["error"]["code"], case
        await assert_nothing_stored(desk, token, case)
    # The secret is checked before the body is parsed: garbage with a wrong secret is a 403, not a 400.
    response = await post_raw(desk, channel["id"], b"\xff not json", cases["wrong"])
    assert response.status == 403
    # The very same update with the right secret still gets in: the refusals left no trace.
    await desk.telegram_update(channel, body)
    [chat] = await all_chats(desk, token)
    assert len(await conversation(desk, token, chat["id"])) == 1


def bad_bodies() -> dict[str, bytes]:
    """Bodies Telegram never sends, by what is wrong with them."""
    good = update("telegram_update_text.json")

    def variant(change) -> bytes:
        body = copy.deepcopy(good)
        change(body)
        return json.dumps(body).encode()

    def set_message(value):
        return lambda body: body.__setitem__("message", value)

    def set_chat(value):
        return lambda body: body["message"].__setitem__("chat", value)

    return {
        "not JSON": b'{"update_id": 861234501, "message": ',
        "empty": b"",
        "invalid UTF-8": json.dumps(good).encode().replace(b"Hi!", b"Hi\xff\xfe!"),
        "JSON array": json.dumps([good]).encode(),
        "JSON string": b'"update"',
        "missing update_id": variant(lambda body: body.pop("update_id")),
        "null update_id": variant(lambda body: body.__setitem__("update_id", None)),
        "string update_id": variant(lambda body: body.__setitem__("update_id", "861234501")),
        "float update_id": variant(lambda body: body.__setitem__("update_id", 861234501.5)),
        "bool update_id": variant(lambda body: body.__setitem__("update_id", True)),
        "message is a string": variant(set_message("hello")),
        "message is a list": variant(set_message([good["message"]])),
        "message is null": variant(set_message(None)),
        "edited_message is a number": variant(lambda body: body.update(edited_message=5) or body.pop("message")),
        "no chat": variant(lambda body: body["message"].pop("chat")),
        "chat is a number": variant(set_chat(5123456789)),
        "chat without id": variant(set_chat({"type": "private", "first_name": "Olena"})),
        "chat id is a string": variant(set_chat({"id": "5123456789", "type": "private"})),
        "chat id is a float": variant(set_chat({"id": 5123456789.0, "type": "private"})),
        "chat id is a bool": variant(set_chat({"id": True, "type": "private"})),
    }


async def test_bodies_telegram_never_sends_are_refused_and_nothing_stored(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    for case, body in bad_bodies().items():
        response = await desk.telegram_update(channel, body, status=400)
        assert (await response.json())["error"]["code"], case
        await assert_nothing_stored(desk, token, case)

    # The chat's later updates still flow, also after bad ones for a chat that exists.
    await desk.telegram_update(channel, update("telegram_update_text.json"))
    for body in bad_bodies().values():
        await desk.telegram_update(channel, body, status=400)
    await desk.telegram_update(channel, update("telegram_update_photo.json"))
    await desk.telegram_update(channel, update("telegram_update_edited.json"))
    [chat] = await all_chats(desk, token)
    text, photo = await conversation(desk, token, chat["id"])
    assert text["text"].startswith("Hi! My order #A-20931 hasn't arrived yet (ordered")
    assert photo["attachments"][0]["kind"] == "image"
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 2}


async def test_a_refused_update_leaves_no_trace_of_its_update_id(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    good = update("telegram_update_text.json")
    broken = copy.deepcopy(good)
    broken["message"]["chat"]["id"] = str(broken["message"]["chat"]["id"])
    await desk.telegram_update(channel, broken, status=400)
    await desk.telegram_update(channel, good)
    [chat] = await all_chats(desk, token)
    assert [m["text"] for m in await conversation(desk, token, chat["id"])] == [good["message"]["text"]]


async def test_oversize_body_is_refused_with_413(desk, fake_telegram, settings):
    channel, token = await setup_channel(desk, fake_telegram)
    limit = settings.webhook_limit
    assert 1024 * 1024 <= limit <= 8 * 1024 * 1024
    headers = {"Content-Type": "application/json", SECRET_HEADER: desk.channel_secret(channel["id"])}
    body = json.dumps(update("telegram_update_text.json")).encode()
    # Trailing whitespace keeps the JSON valid: a body of exactly the limit is taken.
    at_limit = body + b" " * (limit - len(body))
    over = body + b" " * (limit + 1 - len(body))

    # Large bodies go as file-like objects: aiohttp warns about big raw bytes.
    response = await post_raw(desk, channel["id"], io.BytesIO(over), headers)
    assert response.status == 413
    assert (await response.json())["error"]["code"]
    await assert_nothing_stored(desk, token, "declared length over the limit")

    async def chunked():
        for start in range(0, len(over), 256 * 1024):
            yield over[start:start + 256 * 1024]

    response = await post_raw(desk, channel["id"], chunked(), headers)
    assert response.status == 413
    await assert_nothing_stored(desk, token, "chunked body over the limit")

    response = await post_raw(desk, channel["id"], io.BytesIO(at_limit), headers)
    assert response.status == 200
    [chat] = await all_chats(desk, token)
    assert len(await conversation(desk, token, chat["id"])) == 1


async def test_unknown_channel_is_404(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    body = json.dumps(update("telegram_update_text.json")).encode()
    headers = {"Content-Type": "application/json", SECRET_HEADER: desk.channel_secret(channel["id"])}
    for path in (f"/webhooks/{channel['id'] + 1000}", "/webhooks/0", "/webhooks/bot"):
        response = await desk.client.post(path, data=body, headers=headers)
        assert response.status == 404, path
    await assert_nothing_stored(desk, token, "unknown channel")


async def test_disabled_channel_is_404_and_its_webhook_deleted(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    await desk.telegram_update(channel, update("telegram_update_text.json"))
    assert fake_telegram.webhook["url"] == channel["webhook_url"]
    changed = await desk.call("PATCH", f"/api/channels/{channel['id']}", token, {"enabled": False})
    assert changed["enabled"] is False and changed["registered"] is False
    assert len(fake_telegram.calls_of("deleteWebhook")) == 1
    assert fake_telegram.webhook["url"] == ""

    await desk.telegram_update(channel, update("telegram_update_photo.json"), status=404)
    [chat] = await all_chats(desk, token)
    assert len(await conversation(desk, token, chat["id"])) == 1

    changed = await desk.call("PATCH", f"/api/channels/{channel['id']}", token, {"enabled": True})
    assert changed["registered"] is True and fake_telegram.webhook["url"] == channel["webhook_url"]
    await desk.telegram_update(channel, update("telegram_update_photo.json"))
    assert len(await conversation(desk, token, chat["id"])) == 2


async def test_unknown_update_kinds_are_acknowledged_and_ignored(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    poll = {"id": "5873457826153349121", "question": "Which colour?", "options": [
        {"text": "Blue", "voter_count": 1}, {"text": "Red", "voter_count": 0}],
        "total_voter_count": 1, "is_closed": False, "is_anonymous": True, "type": "regular",
        "allows_multiple_answers": False}
    service = update("telegram_update_text.json")
    service["update_id"] = 7
    del service["message"]["text"]
    service["message"]["new_chat_title"] = "Renamed"
    for body in ({"update_id": 5, "poll": poll},
                 {"update_id": 6, "message_reaction": {"chat": {"id": 5123456789, "type": "private"}}},
                 service,
                 {"update_id": 8}):
        await desk.telegram_update(channel, body)
    await assert_nothing_stored(desk, token, "unknown kinds")
    await desk.telegram_update(channel, update("telegram_update_text.json"))
    assert len(await all_chats(desk, token)) == 1


# --- duplicates, order, concurrency ------------------------------------------------------------


async def test_the_same_update_again_is_stored_once(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    sio, events = await desk.socket(token)
    try:
        text = update("telegram_update_text.json")
        for _ in range(3):
            await desk.telegram_update(channel, text)
        photo = update("telegram_update_photo.json")
        await asyncio.gather(*(desk.telegram_update(channel, photo) for _ in range(3)))
        # A redelivery under a new update_id of a message already stored is still one message.
        again = copy.deepcopy(text)
        again["update_id"] += 1000
        await desk.telegram_update(channel, again)

        [chat] = await all_chats(desk, token)
        messages = await conversation(desk, token, chat["id"])
        assert [m["text"] for m in messages] == [text["message"]["text"], photo["message"]["caption"]]
        assert chat["unread"] == 2
        assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 2}

        log = await socket_caught_up(desk, token, events)
        created = [data["id"] for name, data in events if name == "message.created"]
        assert sorted(created) == [m["id"] for m in messages]
        assert sorted(e["data"]["id"] for e in log if e["event"] == "message.created") == [m["id"] for m in messages]
        assert [e["event"] for e in log].count("chat.created") == 1
    finally:
        await sio.disconnect()


async def test_thirty_customers_at_once_keep_their_own_order(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    customers, per_customer = 30, 10

    async def customer(number: int) -> None:
        user_id = 900000000 + number
        for index in range(per_customer):
            body = text_update(1000 + number * per_customer + index, user_id, index + 1, f"customer {number} #{index}",
                               first_name=f"Customer{number}")
            await desk.telegram_update(channel, body)

    await asyncio.gather(*(customer(number) for number in range(customers)))

    chats = await all_chats(desk, token)
    assert len(chats) == customers
    assert await desk.get("/api/unread", token) == {"chats": customers, "messages": customers * per_customer}
    seen = set()
    for chat in chats:
        number = int(chat["external_id"]) - 900000000
        assert chat["contact"]["name"] == f"Customer{number}"
        messages = await conversation(desk, token, chat["id"])
        assert [m["text"] for m in messages] == [f"customer {number} #{index}" for index in range(per_customer)]
        assert chat["unread"] == per_customer
        seen.add(number)
    assert seen == set(range(customers))


async def test_a_message_after_close_opens_a_new_chat(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    await desk.telegram_update(channel, update("telegram_update_text.json"))
    [first] = await all_chats(desk, token)
    closed = await desk.call("POST", f"/api/chats/{first['id']}/close", token)
    assert closed["status"] == "closed"

    await desk.telegram_update(channel, update("telegram_update_photo.json"))
    chats = {chat["id"]: chat for chat in await all_chats(desk, token)}
    assert len(chats) == 2
    [second_id] = set(chats) - {first["id"]}
    second = chats[second_id]
    assert chats[first["id"]]["status"] == "closed"
    assert second["status"] == "new" and second["external_id"] == first["external_id"]
    assert second["contact"]["id"] == first["contact"]["id"]
    assert [m["text"] for m in await conversation(desk, token, first["id"])] == [
        "Hi! My order #A-20931 hasn't arrived yet, can you check?"]
    [photo] = await conversation(desk, token, second_id)
    assert photo["attachments"][0]["kind"] == "image"
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 1}


@pytest.mark.parametrize("name", ["telegram_update_text.json", "telegram_update_photo.json"])
async def test_captured_update_bytes_are_accepted_as_they_are(desk, fake_telegram, name):
    channel, token = await setup_channel(desk, fake_telegram)
    await desk.telegram_update(channel, fixture_bytes("telegram", name))
    assert len(await all_chats(desk, token)) == 1


# --- a group upgraded to a supergroup ------------------------------------------------------------

MIGRATE_TO = update("telegram_update_migrate_to_chat_id.json")
MIGRATE_FROM = update("telegram_update_migrate_from_chat_id.json")
OLD_GROUP_ID = MIGRATE_TO["message"]["chat"]["id"]
SUPERGROUP_ID = MIGRATE_TO["message"]["migrate_to_chat_id"]


def basic_group_update(update_id: int, message_id: int, text: str) -> dict:
    """Return Marco's message in the basic group, before the upgrade (the group fixture, in the old group)."""
    body = update("telegram_update_from_group.json")
    body["update_id"] = update_id
    body["message"].update({"message_id": message_id, "text": text, "chat": dict(MIGRATE_TO["message"]["chat"])})
    del body["message"]["reply_to_message"], body["message"]["entities"]
    return body


@pytest.mark.parametrize("notices", [[MIGRATE_TO, MIGRATE_FROM], [MIGRATE_FROM, MIGRATE_TO], [MIGRATE_FROM]])
async def test_a_group_upgraded_to_a_supergroup_goes_on_in_the_same_chat(desk, fake_telegram, notices):
    channel, token = await setup_channel(desk, fake_telegram)
    await desk.telegram_update(channel, basic_group_update(861234400, 410, "Is the price list out?"))
    [chat] = await all_chats(desk, token)
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
    assert chat["external_id"] == str(OLD_GROUP_ID)

    for notice in notices:  # Telegram's notices of the upgrade, in the old group and in the new one
        await desk.telegram_update(channel, notice)

    [moved] = await all_chats(desk, token)
    assert moved["id"] == chat["id"] and moved["external_id"] == str(SUPERGROUP_ID)
    assert (moved["status"], moved["contact"]["id"]) == ("active", chat["contact"]["id"])
    log = await desk.get("/api/events?after=0", token)
    assert [e["data"]["external_id"] for e in log["events"] if e["event"] == "chat.updated"][-1] == str(SUPERGROUP_ID)
    # The supergroup's messages join the same chat, with the same contact; a reply goes to the new id.
    await desk.telegram_update(channel, update("telegram_update_from_group.json"))
    [same] = await all_chats(desk, token)
    assert (same["id"], same["contact"]["id"], same["unread"]) == (chat["id"], chat["contact"]["id"], 2)
    texts = [m["text"] for m in await conversation(desk, token, chat["id"])]
    assert texts == ["Is the price list out?", "@acme_support_bot any update on the wholesale price list?"]
    await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": "Attached"}, status=201)
    await eventually(lambda: fake_telegram.sent_messages)
    assert [p["chat_id"] for p in fake_telegram.sent_messages] == [SUPERGROUP_ID]


async def test_an_upgrade_noticed_after_the_supergroup_wrote_leaves_one_open_chat(desk, fake_telegram):
    channel, token = await setup_channel(desk, fake_telegram)
    await desk.telegram_update(channel, basic_group_update(861234400, 410, "Is the price list out?"))
    # The supergroup's first message comes before Telegram's notice, and opens a chat of its own.
    await desk.telegram_update(channel, update("telegram_update_from_group.json"))
    old, new = sorted(await all_chats(desk, token), key=lambda c: c["id"])

    await desk.telegram_update(channel, MIGRATE_TO)

    chats = {c["id"]: c for c in await all_chats(desk, token)}
    assert set(chats) == {old["id"], new["id"]}
    assert (chats[old["id"]]["status"], chats[new["id"]]["status"]) == ("closed", "new")
    assert {c["external_id"] for c in chats.values()} == {str(SUPERGROUP_ID)}
    # Nothing was lost: the conversation goes on in the open chat, the old one keeps its history.
    later = update("telegram_update_from_group.json")
    later["update_id"] += 50
    later["message"].update({"message_id": 380, "text": "Hello?"})
    await desk.telegram_update(channel, later)
    assert [m["text"] for m in await conversation(desk, token, new["id"])][-1] == "Hello?"
    assert [m["text"] for m in await conversation(desk, token, old["id"])] == ["Is the price list out?"]
