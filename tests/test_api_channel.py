"""The API channel through the app: a system posts signed JSON to the webhook, agents see it live,
and their replies reach the system's callback URL signed, retried and rate limited as it asks."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from desk.services import jobs
from tests.conftest import Desk, eventually
from tests.fakes.api_callback import FakeCallback, sign


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry transient failures after a fifth of a second instead of 2, 4, 8 … seconds."""
    monkeypatch.setattr(jobs, "backoff", lambda attempts: 0.2)


def message(n: int = 1, *, conversation: str = "conv-42", text: str | None = None, **extra) -> dict:
    """Return a customer message as a system posts it."""
    return {"id": f"msg-{n}", "conversation": conversation,
            "contact": {"id": "cust-7", "name": "Olena Kovalenko", "username": "olena"},
            "text": f"message {n}" if text is None else text, **extra}


async def api_channel(desk: Desk, token: str, fake: FakeCallback, **config: str) -> dict:
    """Connect an API channel whose callback is the fake system."""
    body = {"provider": "api", "name": "Shop",
            "config": {"callback_url": fake.url, "hmac_secret": fake.secret, **config}}
    return await desk.call("POST", "/api/channels", token, body, status=201)


async def post(desk: Desk, channel: dict, data: dict | bytes, secret: str, *, status: int = 200) -> dict:
    """Post a body to the channel's webhook, signed as docs/providers.md says; return the JSON answer."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    response = await desk.client.post(f"/webhooks/{channel['id']}", data=raw, headers={
        "Content-Type": "application/json", "X-Desk-Signature": sign(secret, raw)})
    assert response.status == status, await response.text()
    return await response.json()


async def setup(desk: Desk, fake: FakeCallback) -> tuple[str, dict]:
    """Create an admin and an API channel; return (token, channel)."""
    _, token = await desk.operator("boss", role="admin")
    return token, await api_channel(desk, token, fake)


async def conversation(desk: Desk, token: str, chat_id: int) -> list[dict]:
    """Return a chat's messages, oldest first."""
    return (await desk.get(f"/api/chats/{chat_id}/messages?limit=100", token))["messages"]


async def reaches(desk: Desk, token: str, sent: dict, status: str, timeout: float = 8.0) -> dict:
    """Wait until the reply has ``status``; return it as the API shows it."""
    async def current() -> dict:
        return next(m for m in await conversation(desk, token, sent["chat_id"]) if m["id"] == sent["id"])

    async def check() -> bool:
        return (await current())["status"] == status
    await eventually(check, timeout=timeout)
    return await current()


async def status_changes(desk: Desk, token: str, sent: dict) -> list[str]:
    """Return the statuses the operator was told about for a reply, in order."""
    log = await desk.get("/api/events?after=0", token)
    return [e["data"]["status"] for e in log["events"]
            if e["event"] == "message.updated" and e["data"]["id"] == sent["id"]]


# --- connecting --------------------------------------------------------------------------------


async def test_api_is_an_installed_provider_with_its_fields(desk):
    _, token = await desk.operator("anna")
    providers = {p["code"]: p for p in await desk.get("/api/providers", token)}
    assert {"api", "telegram", "facebook"} <= set(providers)
    assert providers["api"]["name"] == "API"
    assert [(f["name"], f["type"], f["required"], f["secret"]) for f in providers["api"]["fields"]] == [
        ("callback_url", "url", True, False),
        ("hmac_secret", "password", True, True),
        ("account_id", "text", False, False),
    ]


async def test_connecting_pings_the_callback_with_the_webhook_url(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)

    assert channel["provider"] == "api" and channel["registered"] is True and channel["registration_error"] is None
    assert [c.payload for c in fake_callback.accepted] == [{"type": "ping", "webhook_url": channel["webhook_url"]}]
    assert channel["webhook_url"] == f"http://desk.test/webhooks/{channel['id']}"
    listed = await desk.call("GET", "/api/channels", token)
    assert fake_callback.secret not in json.dumps(listed)


async def test_bad_settings_are_refused_per_field_and_an_account_connects_once(desk, fake_callback):
    _, token = await desk.operator("boss", role="admin")
    base = {"provider": "api", "name": "Shop"}

    short = await desk.call("POST", "/api/channels", token, {**base, "config": {
        "callback_url": fake_callback.url, "hmac_secret": "too-short"}}, status=400)
    assert set(short["error"]["fields"]) == {"config.hmac_secret"}
    bad_url = await desk.call("POST", "/api/channels", token, {**base, "config": {
        "callback_url": "ftp://files.example/", "hmac_secret": fake_callback.secret}}, status=400)
    assert set(bad_url["error"]["fields"]) == {"config.callback_url"}
    missing = await desk.call("POST", "/api/channels", token, {**base, "config": {"callback_url": fake_callback.url}},
                              status=400)
    assert set(missing["error"]["fields"]) == {"config.hmac_secret"}
    assert fake_callback.attempts == []

    await api_channel(desk, token, fake_callback)
    again = await desk.call("POST", "/api/channels", token, {**base, "config": {
        "callback_url": fake_callback.url, "hmac_secret": fake_callback.secret}}, status=409)
    assert again["error"]["code"] == "already_connected"
    # Another account of the same system, told apart by account_id.
    second = await api_channel(desk, token, fake_callback, account_id="shop-eu")
    assert second["registered"] is True
    assert len(await desk.call("GET", "/api/channels", token)) == 2


async def test_a_callback_that_is_down_leaves_the_channel_unregistered_until_asked_again(desk, fake_callback):
    _, token = await desk.operator("boss", role="admin")
    fake_callback.fail_next(503, "deploying")

    channel = await api_channel(desk, token, fake_callback)
    assert channel["registered"] is False
    assert channel["registration_error"] == "the callback URL answered HTTP 503: deploying"

    again = await desk.call("POST", f"/api/channels/{channel['id']}/register", token)
    assert again["registered"] is True and again["registration_error"] is None


# --- messages in -------------------------------------------------------------------------------


async def test_signed_messages_open_chats_and_are_pushed_live(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)
    sio, events = await desk.socket(token)
    try:
        assert await post(desk, channel, message(1, text="Where is my order?"), fake_callback.secret) == {"ok": True}
        await eventually(lambda: any(name == "message.created" for name, _ in events))
    finally:
        await sio.disconnect()

    created = next(data for name, data in events if name == "message.created")
    assert created["text"] == "Where is my order?" and created["direction"] == "in"
    [chat] = await desk.get("/api/chats", token)
    assert (chat["provider"], chat["channel_id"], chat["external_id"], chat["status"]) == (
        "api", channel["id"], "conv-42", "new")
    contact = chat["contact"]
    assert (contact["external_id"], contact["name"], contact["username"]) == ("cust-7", "Olena Kovalenko", "olena")
    assert [m["text"] for m in await conversation(desk, token, chat["id"])] == ["Where is my order?"]


async def test_a_batch_is_stored_in_order_and_a_repeated_id_once(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)

    await post(desk, channel, {"messages": [message(1), message(2), message(3, conversation="conv-43")]},
               fake_callback.secret)
    await post(desk, channel, message(2), fake_callback.secret)  # the system retried a delivery
    await post(desk, channel, {"messages": [message(3, conversation="conv-43"), message(4)]}, fake_callback.secret)

    chats = {c["external_id"]: c for c in await desk.get("/api/chats", token)}
    assert set(chats) == {"conv-42", "conv-43"}
    assert [m["text"] for m in await conversation(desk, token, chats["conv-42"]["id"])] == [
        "message 1", "message 2", "message 4"]
    assert [m["text"] for m in await conversation(desk, token, chats["conv-43"]["id"])] == ["message 3"]
    assert chats["conv-42"]["unread"] == 3


async def test_the_contact_follows_the_name_each_message_carries(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)
    await post(desk, channel, message(1), fake_callback.secret)
    renamed = message(2)
    renamed["contact"] = {"id": "cust-7", "name": "Olena K.", "username": "olena_k"}
    await post(desk, channel, renamed, fake_callback.secret)

    [chat] = await desk.get("/api/chats", token)
    assert (chat["contact"]["name"], chat["contact"]["username"]) == ("Olena K.", "olena_k")


@pytest.mark.parametrize("case", ["no signature", "wrong secret", "body changed"])
async def test_a_bad_signature_is_refused_and_nothing_is_stored(desk, fake_callback, case):
    token, channel = await setup(desk, fake_callback)
    raw = json.dumps(message(1)).encode()
    headers = {"Content-Type": "application/json"}
    if case == "wrong secret":
        headers["X-Desk-Signature"] = sign("not-the-channel-secret-42", raw)
    elif case == "body changed":
        headers["X-Desk-Signature"] = sign(fake_callback.secret, raw)
        raw = raw.replace(b"message 1", b"message 2")

    response = await desk.client.post(f"/webhooks/{channel['id']}", data=raw, headers=headers)

    assert response.status == 403
    assert (await response.json())["error"]["code"] == "bad_signature"
    assert await desk.get("/api/chats", token) == []


async def test_a_signed_body_outside_the_format_is_400_and_nothing_is_stored(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)

    answer = await post(desk, channel, {"messages": [message(1), {"id": "msg-2", "text": "no conversation"}]},
                        fake_callback.secret, status=400)

    assert answer["error"]["code"] == "bad_payload" and "messages[1].conversation" in answer["error"]["message"]
    assert await desk.get("/api/chats", token) == []


async def test_a_disabled_channels_webhook_is_404(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)
    await desk.call("PATCH", f"/api/channels/{channel['id']}", token, {"enabled": False})
    await post(desk, channel, message(1), fake_callback.secret, status=404)


async def test_attachments_are_fetched_only_from_the_callbacks_origin(desk, fake_callback):
    token, channel = await setup(desk, fake_callback)
    receipt = b"\xff\xd8receipt\xff\xd9"
    fake_callback.files["/files/receipt.jpg"] = (receipt, "image/jpeg")
    elsewhere = "http://127.0.0.2:9/receipt.jpg"

    await post(desk, channel, message(1, text="see attached", attachments=[
        {"kind": "image", "url": fake_callback.base_url + "/files/receipt.jpg", "file_name": "receipt.jpg"},
        {"kind": "file", "url": elsewhere, "file_name": "other.pdf"},
    ]), fake_callback.secret)
    [chat] = await desk.get("/api/chats", token)

    async def settled() -> bool:
        [stored] = await conversation(desk, token, chat["id"])
        return stored["attachments"][0]["ready"] and stored["attachments"][1]["error"] is not None
    await eventually(settled)

    [stored] = await conversation(desk, token, chat["id"])
    image, other = stored["attachments"]
    assert (image["kind"], image["file_name"], image["mime"], image["size"]) == ("image", "receipt.jpg", "image/jpeg",
                                                                              len(receipt))
    assert await desk.get(image["url"], token) == receipt
    assert other["ready"] is False and other["url"] is None and "refused" in other["error"]
    assert fake_callback.downloads == ["/files/receipt.jpg"]


# --- replies out -------------------------------------------------------------------------------


async def chat_with_message(desk: Desk, fake: FakeCallback) -> tuple[str, dict]:
    """Connect a channel and receive one customer message; return (token, chat)."""
    token, channel = await setup(desk, fake)
    await post(desk, channel, message(1), fake.secret)
    [chat] = await desk.get("/api/chats", token)
    return token, chat


async def reply(desk: Desk, token: str, chat: dict, text: str) -> dict:
    """Send a reply as the agent does; return the pending message."""
    sent = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": text}, status=201)
    assert sent["status"] == "pending"
    return sent


async def test_an_agents_reply_reaches_the_callback_signed(desk, fake_callback):
    token, chat = await chat_with_message(desk, fake_callback)

    sent = await reply(desk, token, chat, "<b>On it</b>")

    done = await reaches(desk, token, sent, "sent")
    assert done["error"] is None
    # The fake accepts only callbacks whose signature and timestamp check out.
    assert fake_callback.messages == [{"type": "message", "desk_id": sent["id"], "conversation": "conv-42",
                                       "text": "<b>On it</b>"}]
    assert fake_callback.rejected == []


async def test_a_file_reply_reaches_the_callback_inline(desk, fake_callback):
    token, chat = await chat_with_message(desk, fake_callback)
    form = aiohttp.FormData()
    form.add_field("text", "your invoice")
    form.add_field("file", b"%PDF-1.4 invoice", filename="invoice.pdf", content_type="application/pdf")

    response = await desk.client.post(f"/api/chats/{chat['id']}/messages", data=form, headers=desk.headers(token))
    assert response.status == 201, await response.text()
    await reaches(desk, token, await response.json(), "sent")

    [sent] = fake_callback.messages
    assert sent["text"] == "your invoice"
    assert sent["attachment"]["file_name"] == "invoice.pdf" and sent["attachment"]["mime"] == "application/pdf"
    assert base64.b64decode(sent["attachment"]["data"]) == b"%PDF-1.4 invoice"


async def test_a_callback_500_is_retried_then_sent_once(desk, fake_callback, quick_backoff):
    token, chat = await chat_with_message(desk, fake_callback)
    fake_callback.fail_next(500, "database is down")

    sent = await reply(desk, token, chat, "One moment")

    await reaches(desk, token, sent, "sent")
    assert [c.payload["text"] for c in fake_callback.attempts if c.payload["type"] == "message"] == [
        "One moment", "One moment"]
    assert [m["text"] for m in fake_callback.messages] == ["One moment"]
    # The agent saw pending, then sent: no failure in between.
    assert await status_changes(desk, token, sent) == ["sent"]


async def test_a_callback_429_is_honoured_for_retry_after(desk, fake_callback):
    token, chat = await chat_with_message(desk, fake_callback)
    fake_callback.fail_next(429, "slow down", headers={"Retry-After": "1"})

    sent = await reply(desk, token, chat, "Let me check")

    await reaches(desk, token, sent, "sent")
    first, second = [c for c in fake_callback.attempts if c.payload["type"] == "message"]
    assert second.at - first.at >= 1.0  # not before the system's Retry-After
    assert [m["text"] for m in fake_callback.messages] == ["Let me check"]
    assert await status_changes(desk, token, sent) == ["sent"]


async def test_a_callback_4xx_fails_the_reply_with_the_systems_reason(desk, fake_callback):
    token, chat = await chat_with_message(desk, fake_callback)
    fake_callback.fail_next(422, "conversation conv-42 is closed on our side")

    sent = await reply(desk, token, chat, "Still there?")

    failed = await reaches(desk, token, sent, "failed")
    assert failed["error"] == "conversation conv-42 is closed on our side"
    assert len(fake_callback.attempts) == 2  # the ping, and one try of the reply: never retried
    assert fake_callback.messages == []
