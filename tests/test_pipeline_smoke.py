"""The message pipeline end to end: a Telegram message in, pushed live, a reply out."""

from __future__ import annotations

from tests.conftest import eventually, fixture_json


async def test_telegram_message_in_and_reply_out(desk, fake_telegram):
    admin, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    assert channel["registered"] is True
    agent, token = await desk.operator("anna", queue_ids=[channel["queue_id"]])
    sio, events = await desk.socket(token)
    try:
        await desk.telegram_update(channel, fixture_json("telegram", "telegram_update_text.json"))
        await eventually(lambda: any(name == "message.created" for name, _ in events))
        names = [name for name, _ in events]
        assert names[:2] == ["chat.created", "message.created"]
        assert "unread.updated" in names
        seqs = [data["seq"] for _, data in events]
        assert seqs == list(range(1, len(seqs) + 1))

        chats = await desk.get("/api/chats?status=new", token)
        assert len(chats) == 1
        chat = chats[0]
        assert chat["contact"]["name"] == "Olena Kovalenko"
        assert chat["unread"] == 1
        assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 1}

        await desk.call("POST", f"/api/chats/{chat['id']}/accept", token)
        reply = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token,
                                {"text": "<b>On it</b>", "client_id": "c-1"}, status=201)
        assert reply["status"] == "pending"
        await eventually(lambda: fake_telegram.sent_messages)
        sent = fake_telegram.sent_messages[0]
        assert sent["text"] == "<b>On it</b>" and "parse_mode" not in sent
        page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
        async def is_sent():
            page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
            return page["messages"][-1]["status"] == "sent"
        await eventually(is_sent)
        assert page["has_more"] is False
        replay = await desk.get("/api/events?after=0", token)
        assert [e["seq"] for e in replay["events"]] == list(range(1, replay["seq"] + 1))
    finally:
        await sio.disconnect()
