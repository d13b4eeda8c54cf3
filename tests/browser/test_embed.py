"""The desk embedded in an intranet page (CONTRACT §2): token auth with third-party cookies
blocked, framing only by allowed origins, postMessage both ways."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import jwt
import pytest
from aiohttp import web
from playwright.async_api import expect

from desk.keys import context_key
from desk.store import Operator, Setting
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EXAMPLES,
    UI_TIMEOUT_MS,
    telegram_text,
    wait_live,
    write_chromium_preferences,
)
from tests.conftest import eventually


@pytest.fixture
async def intranet(aiohttp_server):
    """Serve examples/intranet.html as an intranet would; returns a factory of such servers."""
    async def serve():
        async def page(_: web.Request) -> web.FileResponse:
            return web.FileResponse(EXAMPLES / "intranet.html")
        app = web.Application()
        app.router.add_get("/", page)
        # "localhost", not 127.0.0.1 like the desk: another site, so the framed desk is third-party.
        server = await aiohttp_server(app, host="localhost")
        return f"http://localhost:{server.port}"
    return serve


@pytest.fixture
async def blocking_context(playwright, tmp_path):
    """A Chromium profile that blocks third-party cookies, as a privacy-minded user sets it."""
    profile = tmp_path / "profile"
    write_chromium_preferences(profile, {"profile": {"block_third_party_cookies": True, "cookie_controls_mode": 1}})
    context = await playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800})
    yield context
    await context.close()


def embed_url(client, login: str, *, ttl: int = 300) -> str:
    secret = client.app[context_key].embed_secret
    token = jwt.encode({"sub": login, "exp": int(time.time()) + ttl}, secret, algorithm="HS256")
    return f"{str(client.make_url('')).rstrip('/')}/embed?token={token}"


async def host_messages(page) -> list[dict]:
    return await page.evaluate("window.deskMessages")


async def test_embedded_desk_works_without_cookies_and_talks_to_its_host(
        desk, client, fake_telegram, intranet, blocking_context):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    agent, token = await desk.operator("anna", queue_ids=[channel["queue_id"]], name="Anna Berg")
    await desk.telegram_update(channel, telegram_text(4001, 801, "Hello from Telegram"))
    chat_id = (await desk.get("/api/chats", token))[0]["id"]
    host = await intranet()
    Setting.create(key="embed_origins", value=json.dumps([host]))  # the settings page's allow-list

    page = await blocking_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    await page.goto(f"{host}/?embed={quote(embed_url(client, 'anna'), safe='')}")
    framed = page.frame_locator("#desk")
    await wait_live(framed)
    frame = next(f for f in page.frames if "/embed" in f.url)
    # The browser really treats the desk as third-party with its cookies blocked: a cookie the
    # desk's own page could set at the top level is refused inside the frame.
    probe = "() => { document.cookie = 'probe=1; SameSite=None; Secure; Path=/'; return document.cookie }"
    assert await frame.evaluate(probe) == ""
    assert [c for c in await blocking_context.cookies() if c["name"] == "desk_session"] == []

    row = framed.locator(".chat-row", has_text="Olena Kovalenko")
    await expect(row.locator(".chat-unread")).to_have_text("1")
    await eventually(lambda: _has(page, "desk:ready"))
    await expect(page.locator("#unread")).to_have_text("1")

    # Live: a new message reaches the framed desk and the host hears of it.
    await desk.telegram_update(channel, telegram_text(4002, 801, "Are you there?"))
    await expect(row.locator(".chat-unread")).to_have_text("2")
    await expect(page.locator("#unread")).to_have_text("2")
    messages = [m for m in await host_messages(page) if m["type"] == "desk:message"]
    assert messages[-1]["data"]["text"] == "Are you there?" and messages[-1]["data"]["chat_id"] == chat_id

    # The host opens the chat; the desk says so and marks it read.
    await page.fill("#chat-id", str(chat_id))
    await page.click("#open")
    await expect(framed.locator("#conv-name")).to_have_text("Olena Kovalenko")
    await eventually(lambda: _has(page, "desk:chat-opened", {"chat_id": chat_id}))
    await expect(page.locator("#unread")).to_have_text("0")

    # Replying works by bearer token (no cookie, no CSRF token).
    await framed.locator("#composer-text").fill("Yes, here to help")
    await framed.locator("#composer-text").press("Enter")
    await eventually(lambda: fake_telegram.sent_messages, timeout=10)
    assert fake_telegram.sent_messages[-1]["text"] == "Yes, here to help"

    # The host sets the agent's status, then signs the desk out.
    await page.select_option("#status", "busy")
    await page.click("#set-status")
    await eventually(lambda: Operator.get_by_id(agent["id"]).status == "busy")
    await expect(framed.locator(".status-picker")).to_have_attribute("data-status", "busy")
    config = json.loads(await frame.locator("#desk-config").text_content())
    await page.click("#logout")
    await expect(framed.locator("#notice")).to_contain_text("session has ended")
    await desk.get("/api/operators/me", config["token"], status=401)
    assert errors == []


async def _has(page, kind: str, data: dict | None = None) -> bool:
    for message in await host_messages(page):
        if message["type"] == kind and (data is None or message["data"] == data):
            return True
    return False


async def test_a_page_of_another_origin_cannot_frame_the_desk(desk, client, intranet, browser):
    await desk.operator("anna")
    allowed, other = await intranet(), await intranet()
    Setting.create(key="embed_origins", value=json.dumps([allowed]))
    page = await browser.new_page()
    await page.goto(f"{other}/?embed={quote(embed_url(client, 'anna'), safe='')}")
    await page.wait_for_load_state("load")
    frame = next(f for f in page.frames if f is not page.main_frame)
    # Chromium replaces a frame refused by frame-ancestors with its error page: no desk in it.
    await expect(page.frame_locator("#desk").locator("#app")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    assert "/embed" not in frame.url or await frame.locator("#desk-config").count() == 0
    assert await host_messages(page) == []
