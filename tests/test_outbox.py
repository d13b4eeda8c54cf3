"""The outbox (CONTRACT §8, TARGETS R6 and P13): an accepted reply is sent, or ends failed with the
messenger's reason; 429s, 5xx and Telegram's per-chat limit are honoured; nothing is lost across a
restart, and a send in flight at a crash is sent again."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json

import pytest

from desk import keys
from desk.app import create_app
from desk.services import jobs, outbound
from desk.store import Job, MessagePart, utcnow
from tests.conftest import Desk, eventually, fixture_bytes, fixture_json

CHAT_ID = fixture_json("telegram", "telegram_update_text.json")["message"]["chat"]["id"]
BLOCKED = fixture_json("telegram", "telegram_error_403_blocked.json")


def too_many_requests(retry_after: int) -> dict:
    """Return Telegram's 429 envelope (the captured fixture) with a short ``retry_after``."""
    body = fixture_json("telegram", "telegram_error_429.json")
    body["description"] = f"Too Many Requests: retry after {retry_after}"
    body["parameters"]["retry_after"] = retry_after
    return body


def server_error(code: int = 502) -> dict:
    """Return the envelope the Bot API answers when it is down for a moment."""
    return {"ok": False, "error_code": code, "description": "Bad Gateway"}


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry transient failures after a fifth of a second instead of 2, 4, 8 … seconds."""
    monkeypatch.setattr(jobs, "backoff", lambda attempts: 0.2)


async def telegram_chat(desk: Desk, fake) -> tuple[str, dict]:
    """Create an admin and a Telegram channel, receive one customer message; return (token, chat)."""
    _, token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(token, fake)
    await desk.telegram_update(channel, fixture_json("telegram", "telegram_update_text.json"))
    chats = await desk.get("/api/chats", token)
    assert len(chats) == 1
    return token, chats[0]


async def send(desk: Desk, token: str, chat: dict, text: str) -> dict:
    """Post a reply as the agent does; return the message object (201, pending)."""
    message = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": text}, status=201)
    assert message["status"] == "pending"
    return message


async def stored(desk: Desk, token: str, message: dict) -> dict:
    """Return the message as the conversation API shows it now."""
    page = await desk.get(f"/api/chats/{message['chat_id']}/messages?limit=100", token)
    return next(m for m in page["messages"] if m["id"] == message["id"])


async def reaches(desk: Desk, token: str, message: dict, status: str, timeout: float = 8.0) -> dict:
    """Wait until the message has ``status``; return it."""
    async def check() -> bool:
        return (await stored(desk, token, message))["status"] == status
    await eventually(check, timeout=timeout)
    return await stored(desk, token, message)


async def status_changes(desk: Desk, token: str, message: dict) -> list[str]:
    """Return the statuses the operator was told about for ``message``, in order (from the event log)."""
    log = await desk.get("/api/events?after=0", token)
    return [e["data"]["status"] for e in log["events"]
            if e["event"] == "message.updated" and e["data"]["id"] == message["id"]]


def sends(fake) -> list[tuple[float, dict]]:
    """Return every sendMessage call the fake Telegram received, with its arrival time."""
    return [(at, params) for (method, params), at in zip(fake.calls, fake.call_times, strict=True)
            if method.lower() == "sendmessage"]


# --- Telegram: 429, 403, 5xx, attempts ------------------------------------------------------------


async def test_429_delays_the_send_by_retry_after_then_sends(desk, fake_telegram, quick_backoff):
    token, chat = await telegram_chat(desk, fake_telegram)
    # Longer than the per-chat spacing and the back-off, so only retry_after explains the wait.
    fake_telegram.fail_next("sendMessage", 429, too_many_requests(2))

    message = await send(desk, token, chat, "Let me check")

    await eventually(lambda: len(sends(fake_telegram)) == 1)
    assert (await stored(desk, token, message))["status"] == "pending"
    sent = await reaches(desk, token, message, "sent")
    assert sent["error"] is None
    (first, _), (second, params) = sends(fake_telegram)
    assert second - first >= 2.0  # not before Telegram's retry_after
    assert params["text"] == "Let me check"
    assert [p["text"] for p in fake_telegram.sent_messages] == ["Let me check"]
    # The agent saw pending then sent, never a failure in between.
    assert await status_changes(desk, token, message) == ["sent"]


async def test_blocked_by_the_user_ends_failed_with_telegrams_reason_pushed_live(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.blocked.add(str(CHAT_ID))
    sio, events = await desk.socket(token)
    try:
        message = await send(desk, token, chat, "Are you there?")

        def pushed_failure() -> list[dict]:
            return [data for name, data in events
                    if name == "message.updated" and data["id"] == message["id"] and data["status"] == "failed"]
        await eventually(pushed_failure)
        update = pushed_failure()[0]
        assert update["error"] == BLOCKED["description"] == "Forbidden: bot was blocked by the user"
        assert update["chat_id"] == chat["id"] and update["text"] == "Are you there?"
    finally:
        await sio.disconnect()
    failed = await stored(desk, token, message)
    assert failed["status"] == "failed" and failed["error"] == BLOCKED["description"]
    # A refusal that will not change is not retried.
    assert len(sends(fake_telegram)) == 1
    assert fake_telegram.sent_messages == []


async def test_server_error_is_retried_then_sent(desk, fake_telegram, quick_backoff):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 502, server_error())

    message = await send(desk, token, chat, "One moment")

    sent = await reaches(desk, token, message, "sent")
    assert sent["error"] is None
    assert [p["text"] for _, p in sends(fake_telegram)] == ["One moment", "One moment"]
    assert [p["text"] for p in fake_telegram.sent_messages] == ["One moment"]


async def test_transient_failures_end_failed_after_max_attempts(desk, fake_telegram, quick_backoff, monkeypatch):
    monkeypatch.setattr(outbound, "MAX_SEND_ATTEMPTS", 3)
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 500, server_error(500), times=10)

    message = await send(desk, token, chat, "Hello?")

    failed = await reaches(desk, token, message, "failed")
    assert failed["error"] == "Bad Gateway"
    assert len(sends(fake_telegram)) == 3
    assert fake_telegram.sent_messages == []
    assert not Job.select().where(Job.ref_id == message["id"]).exists()


async def test_429s_do_not_use_up_the_attempts(desk, fake_telegram, monkeypatch):
    monkeypatch.setattr(outbound, "MAX_SEND_ATTEMPTS", 2)
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 429, too_many_requests(1), times=2)

    message = await send(desk, token, chat, "Patience")

    await reaches(desk, token, message, "sent")
    assert [p["text"] for _, p in sends(fake_telegram)] == ["Patience"] * 3
    assert await status_changes(desk, token, message) == ["sent"]


async def test_retry_route_sends_a_failed_reply_again(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 403, BLOCKED)
    message = await send(desk, token, chat, "Try this")
    await reaches(desk, token, message, "failed")
    retry = f"/api/chats/{chat['id']}/messages/{message['id']}/retry"

    again = await desk.call("POST", retry, token)

    assert again["id"] == message["id"]
    assert again["status"] == "pending" and again["error"] is None
    sent = await reaches(desk, token, message, "sent")
    assert sent["text"] == "Try this"
    assert [p["text"] for p in fake_telegram.sent_messages] == ["Try this"]
    assert await status_changes(desk, token, message) == ["failed", "pending", "sent"]
    # Only a failed reply can be retried: a sent one is not sent twice.
    error = await desk.call("POST", retry, token, status=409)
    assert error["error"]["code"] == "not_failed"
    await desk.call("POST", f"/api/chats/{chat['id']}/messages/999999/retry", token, status=404)
    assert len(fake_telegram.sent_messages) == 1


# --- order and rate limits -------------------------------------------------------------------------


async def test_replies_keep_the_order_typed_when_the_first_hits_429(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 429, too_many_requests(1))

    messages = [await send(desk, token, chat, text) for text in ("first", "second", "third")]

    for message in messages:
        await reaches(desk, token, message, "sent")
    assert [p["text"] for p in fake_telegram.sent_messages] == ["first", "second", "third"]
    assert [p["text"] for _, p in sends(fake_telegram)] == ["first", "first", "second", "third"]


async def test_telegram_gets_at_most_one_message_a_second_per_chat(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)

    messages = [await send(desk, token, chat, f"part {n}") for n in range(3)]

    for message in messages:
        await reaches(desk, token, message, "sent")
    calls = sends(fake_telegram)
    assert [p["text"] for _, p in calls] == ["part 0", "part 1", "part 2"]
    times = [at for at, _ in calls]
    # About a second apart: the lower bound leaves room for timer granularity, there is no upper one.
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times))


# --- Facebook ----------------------------------------------------------------------------------------


async def test_facebook_reply_outside_the_24h_window_fails_with_graphs_message(desk, fake_facebook):
    _, token = await desk.operator("boss", role="admin")
    channel = await desk.facebook_channel(token, fake_facebook)
    body = fixture_bytes("facebook", "facebook_webhook_text.json")
    signature = "sha256=" + hmac.new(b"fb-app-secret", body, hashlib.sha256).hexdigest()
    response = await desk.client.post(f"/webhooks/{channel['id']}", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature})
    assert response.status == 200, await response.text()
    [chat] = await desk.get("/api/chats", token)
    outside = json.loads(fixture_bytes("facebook", "facebook_error_outside_window.json"))
    fake_facebook.fail_next("/messages", 400, outside)

    message = await send(desk, token, chat, "Your parcel left the warehouse")

    failed = await reaches(desk, token, message, "failed")
    assert failed["error"] == outside["error"]["message"]
    assert fake_facebook.sent == []
    assert sum(1 for method, path, _, _ in fake_facebook.calls if path.endswith("/messages")) == 1


# --- restarts and crashes ------------------------------------------------------------------------------


async def test_reply_accepted_before_a_stop_is_sent_after_the_restart(aiohttp_client, settings, fake_telegram):
    first = await aiohttp_client(create_app(dataclasses.replace(settings, run_workers=False)))
    desk = Desk(first)
    token, chat = await telegram_chat(desk, fake_telegram)
    message = await send(desk, token, chat, "Sorry for the wait")
    await first.close()
    assert fake_telegram.sent_messages == []

    desk = Desk(await aiohttp_client(create_app(settings)))

    sent = await reaches(desk, token, message, "sent")
    assert sent["text"] == "Sorry for the wait"
    assert [p["text"] for p in fake_telegram.sent_messages] == ["Sorry for the wait"]


async def test_send_claimed_by_a_dead_process_is_sent_by_the_next(aiohttp_client, settings, fake_telegram):
    first = await aiohttp_client(create_app(dataclasses.replace(settings, run_workers=False)))
    desk = Desk(first)
    token, chat = await telegram_chat(desk, fake_telegram)
    message = await send(desk, token, chat, "Still here")
    # The state a kill -9 leaves: the job claimed by a process that is gone, its lease run out.
    claimed = Job.update(lease_owner="crashed-host:4242:dead", lease_until=utcnow() - dt.timedelta(seconds=1)).where(
        (Job.kind == jobs.SEND) & (Job.ref_id == message["id"])).execute()
    assert claimed == 1
    await first.close()

    desk = Desk(await aiohttp_client(create_app(settings)))

    await reaches(desk, token, message, "sent")
    assert [p["text"] for p in fake_telegram.sent_messages] == ["Still here"]
    assert not Job.select().where(Job.ref_id == message["id"]).exists()


async def test_send_interrupted_by_a_stop_resumes_at_once_after_the_restart(aiohttp_client, settings, fake_telegram):
    # A long lease: only a claim released on stop lets the restarted process send within seconds.
    settings = dataclasses.replace(settings, job_lease=120.0)
    first = await aiohttp_client(create_app(settings))
    desk = Desk(first)
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.delay("sendMessage", 30)
    message = await send(desk, token, chat, "Interrupted")
    await eventually(lambda: sends(fake_telegram))
    await first.close()  # the send is still waiting for Telegram
    fake_telegram.delay("sendMessage", 0)

    desk = Desk(await aiohttp_client(create_app(settings)))

    await reaches(desk, token, message, "sent", timeout=5)
    assert [p["text"] for _, p in sends(fake_telegram)] == ["Interrupted", "Interrupted"]


async def test_a_send_slower_than_the_lease_is_not_taken_over_by_another_process(
        aiohttp_client, settings, fake_telegram):
    settings = dataclasses.replace(settings, job_lease=1.0)
    client = await aiohttp_client(create_app(settings))
    desk = Desk(client)
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.delay("sendMessage", 2.5)  # Telegram answers well after the claim's first lease
    message = await send(desk, token, chat, "Slow network")
    await eventually(lambda: sends(fake_telegram))
    # Another process's worker keeps looking for due work while the first send is under way.
    other = jobs.Worker(client.app[keys.context_key], {jobs.SEND: outbound.send_job})
    try:
        while (await stored(desk, token, message))["status"] == "pending":
            assert await other.scan() == 0, "a reply being sent was claimed by a second worker"
            await asyncio.sleep(0.1)
    finally:
        await other.stop()
    assert (await stored(desk, token, message))["status"] == "sent"
    assert len(sends(fake_telegram)) == 1


# --- Telegram: a reply in parts --------------------------------------------------------------------

# Past Telegram's 4096 characters: three messages, cut at the line breaks.
LONG_REPLY_PARTS = ["A" * 4000, "B" * 4000, "C" * 100]
LONG_REPLY = "\n".join(LONG_REPLY_PARTS)


def parts_kept(message: dict) -> list[str]:
    """Return the messenger ids the desk keeps for each part of a reply, in order."""
    return [part.external_id for part in MessagePart.select().where(MessagePart.message == message["id"])
            .order_by(MessagePart.id)]


async def test_a_long_reply_hit_by_429_on_its_second_part_sends_only_the_parts_not_yet_sent(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 429, too_many_requests(1), after=1)

    message = await send(desk, token, chat, LONG_REPLY)

    sent = await reaches(desk, token, message, "sent")
    assert sent["text"] == LONG_REPLY and sent["error"] is None
    # The first part went once: the customer sees each part once, in order.
    assert [p["text"] for _, p in sends(fake_telegram)] == ["A" * 4000, "B" * 4000, "B" * 4000, "C" * 100]
    assert [p["text"] for p in fake_telegram.sent_messages] == LONG_REPLY_PARTS
    assert await status_changes(desk, token, message) == ["sent"]
    # Every part's Telegram id leads back to the one reply.
    assert parts_kept(message) == [f"{CHAT_ID}:{m['message_id']}" for m in fake_telegram.messages]


async def test_a_long_reply_cut_off_by_a_restart_goes_on_from_the_part_not_yet_sent(
        aiohttp_client, settings, fake_telegram):
    # A long lease: only a claim released on stop lets the restarted process send within seconds.
    settings = dataclasses.replace(settings, job_lease=120.0)
    first = await aiohttp_client(create_app(settings))
    desk = Desk(first)
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.delay("sendMessage", 30, after=1)  # the first part goes, the second hangs
    message = await send(desk, token, chat, LONG_REPLY)
    await eventually(lambda: len(sends(fake_telegram)) == 2)
    await first.close()  # the second part is still waiting for Telegram
    fake_telegram.delay("sendMessage", 0)

    desk = Desk(await aiohttp_client(create_app(settings)))

    await reaches(desk, token, message, "sent", timeout=5)
    # The part in flight at the stop goes again (at least once); the one Telegram took does not.
    assert [p["text"] for _, p in sends(fake_telegram)] == ["A" * 4000, "B" * 4000, "B" * 4000, "C" * 100]
    assert [p["text"] for p in fake_telegram.sent_messages] == LONG_REPLY_PARTS


async def test_a_failed_long_reply_retried_by_the_agent_sends_only_the_rest(desk, fake_telegram):
    token, chat = await telegram_chat(desk, fake_telegram)
    fake_telegram.fail_next("sendMessage", 403, BLOCKED, after=1)
    message = await send(desk, token, chat, LONG_REPLY)
    failed = await reaches(desk, token, message, "failed")
    assert failed["error"] == BLOCKED["description"]

    await desk.call("POST", f"/api/chats/{chat['id']}/messages/{message['id']}/retry", token)

    await reaches(desk, token, message, "sent")
    assert [p["text"] for p in fake_telegram.sent_messages] == LONG_REPLY_PARTS


# --- Telegram: a group upgraded to a supergroup ----------------------------------------------------

GROUP = fixture_json("telegram", "telegram_update_migrate_to_chat_id.json")["message"]["chat"]
SUPERGROUP_ID = fixture_json("telegram", "telegram_update_migrate_to_chat_id.json")["message"]["migrate_to_chat_id"]


def basic_group_update() -> dict:
    """Return a member's message in the basic group, before its upgrade (the group fixture, in the old group)."""
    body = fixture_json("telegram", "telegram_update_from_group.json")
    body["update_id"] -= 100
    body["message"]["chat"] = dict(GROUP)
    del body["message"]["reply_to_message"]
    return body


async def test_a_reply_to_a_group_upgraded_to_a_supergroup_goes_to_the_supergroup(desk, fake_telegram):
    _, token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(token, fake_telegram)
    await desk.telegram_update(channel, basic_group_update())
    [chat] = await desk.get("/api/chats", token)
    assert chat["external_id"] == str(GROUP["id"])
    # An admin upgrades the group before the bot heard of it: the old id answers 400.
    fake_telegram.upgrade_group(GROUP["id"], SUPERGROUP_ID)

    message = await send(desk, token, chat, "Here is the price list")

    sent = await reaches(desk, token, message, "sent")
    assert sent["error"] is None
    assert [p["chat_id"] for _, p in sends(fake_telegram)] == [GROUP["id"], SUPERGROUP_ID]
    assert [(p["chat_id"], p["text"]) for p in fake_telegram.sent_messages] == [
        (SUPERGROUP_ID, "Here is the price list")]
    # The chat follows the group: the next replies go straight there, and the group's messages
    # land in the same chat.
    moved = await desk.get(f"/api/chats/{chat['id']}", token)
    assert moved["external_id"] == str(SUPERGROUP_ID) and moved["status"] == "active"
    await desk.telegram_update(channel, fixture_json("telegram", "telegram_update_from_group.json"))
    assert [c["id"] for c in await desk.get("/api/chats?limit=100", token)] == [chat["id"]]
    second = await send(desk, token, chat, "Anything else?")
    await reaches(desk, token, second, "sent")
    assert [p["chat_id"] for _, p in sends(fake_telegram)][2:] == [SUPERGROUP_ID]
