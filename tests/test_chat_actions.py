"""Chat actions: the built-in ones, the transcript sent as a signed POST (retried), and settings."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from aiohttp import web

from desk.services import assignment
from tests.conftest import eventually, fixture_json


@pytest.fixture
async def transcript_server(aiohttp_server):
    """A local server that receives transcripts; the first answer can be scripted to fail."""
    received: list[dict] = []
    failures: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        received.append({"headers": dict(request.headers), "body": body})
        if failures:
            return web.Response(status=failures.pop(0))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/transcripts", handle)
    server = await aiohttp_server(app)
    return {"url": str(server.make_url("/transcripts")), "received": received, "failures": failures}


async def active_chat(desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    await desk.telegram_update(channel, fixture_json("telegram", "telegram_update_text.json"))
    chat = (await desk.get("/api/chats", admin_token))[0]
    await desk.call("POST", f"/api/chats/{chat['id']}/accept", admin_token)
    return admin_token, chat


async def test_actions_list_includes_the_transcript_and_runs_builtins(desk, fake_telegram):
    admin_token, chat = await active_chat(desk, fake_telegram)
    codes = [a["code"] for a in await desk.get(f"/api/chats/{chat['id']}/actions", admin_token)]
    assert codes == ["transfer", "close", "send_transcript"]
    result = await desk.call("POST", f"/api/chats/{chat['id']}/actions/close", admin_token)
    assert result["chat"]["status"] == "closed"
    codes = [a["code"] for a in await desk.get(f"/api/chats/{chat['id']}/actions", admin_token)]
    assert codes == ["send_transcript"]
    await desk.call("POST", f"/api/chats/{chat['id']}/actions/accept", admin_token, status=404)


async def test_transcript_needs_a_url(desk, fake_telegram):
    admin_token, chat = await active_chat(desk, fake_telegram)
    response = await desk.call("POST", f"/api/chats/{chat['id']}/actions/send_transcript", admin_token, status=400)
    assert "transcript URL" in response["error"]["message"]


async def test_transcript_is_posted_signed_and_retried(desk, fake_telegram, transcript_server):
    admin_token, chat = await active_chat(desk, fake_telegram)
    settings = await desk.call("PATCH", "/api/settings", admin_token, {"transcript_url": transcript_server["url"]})
    secret = settings["transcript_secret"]
    transcript_server["failures"].append(503)
    sio, events = await desk.socket(admin_token)
    try:
        result = await desk.call("POST", f"/api/chats/{chat['id']}/actions/send_transcript", admin_token)
        assert transcript_server["url"] in result["note"]
        # First answer 503, then the job retries (backoff 2 s) and the second POST succeeds.
        await eventually(lambda: len(transcript_server["received"]) == 2, timeout=10)
        await eventually(lambda: any(n == "message.created" and d["author"]["type"] == "system" for n, d in events))
    finally:
        await sio.disconnect()
    delivered = transcript_server["received"][1]
    timestamp = delivered["headers"]["X-Desk-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + delivered["body"], hashlib.sha256).hexdigest()
    assert delivered["headers"]["X-Desk-Signature"] == f"sha256={expected}"
    body = json.loads(delivered["body"])
    assert body["type"] == "transcript" and body["chat"]["id"] == chat["id"]
    assert body["messages"][0]["text"].startswith("Hi! My order #A-20931")
    note = [e for n, e in events if n == "message.created" and e["author"]["type"] == "system"][-1]
    assert note["text"] == f"Transcript sent to {transcript_server['url']}"


async def test_queue_actions_are_checked_and_agents_cannot_change_settings(desk, fake_telegram):
    admin_token, chat = await active_chat(desk, fake_telegram)
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    assert set(queue["actions"]) == set(assignment.BUILTIN_ACTIONS) | {"send_transcript"}
    bad = await desk.call("PATCH", f"/api/queues/{queue['id']}", admin_token, {"actions": ["explode"]}, status=400)
    assert "actions" in bad["error"]["fields"]
    _, agent_token = await desk.operator("anna")
    await desk.call("GET", "/api/settings", agent_token, status=403)
    await desk.call("PATCH", "/api/settings", agent_token, {"transcript_url": "http://evil.test/"}, status=403)
    await desk.call("POST", "/api/settings/embed-secret", agent_token, status=403)


async def test_settings_keep_origins_and_rotate_the_embed_secret(desk):
    _, admin_token = await desk.operator("boss", role="admin")
    before = await desk.get("/api/settings", admin_token)
    bad = await desk.call("PATCH", "/api/settings", admin_token, {"embed_origins": ["javascript:alert(1)"]}, status=400)
    assert "embed_origins" in bad["error"]["fields"]
    changed = await desk.call("PATCH", "/api/settings", admin_token, {"embed_origins": ["https://intranet.example.com/"]})
    assert changed["embed_origins"] == ["https://intranet.example.com"]
    response = await desk.client.get("/login")
    assert "frame-ancestors https://intranet.example.com" in response.headers["Content-Security-Policy"]
    rotated = await desk.call("POST", "/api/settings/embed-secret", admin_token)
    assert rotated["embed_secret"] != before["embed_secret"]
