"""Make the README's screenshots of the desk (empty, busy, narrow and embedded) and its settings.

    python -m tests.browser.make_screenshots [OUT_DIR]      (default docs/screenshots)

It runs the real app on a temporary database with the fake Telegram of the tests, feeds it
conversations through the webhook as Telegram would, and photographs Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import jwt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright

from desk.app import create_app
from desk.keys import context_key
from desk.settings import Settings
from desk.store import Chat, Message
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, telegram_text, wait_live
from tests.conftest import PASSWORD, Desk
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]


def png(width: int, height: int, pixel) -> bytes:
    """Encode an RGB picture drawn by ``pixel(x, y) -> (r, g, b)`` as PNG."""
    raw = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def parcel(x: int, y: int) -> tuple[int, int, int]:
    """A cardboard box with a torn corner on a table."""
    if 70 <= x <= 250 and 50 <= y <= 190:
        if x + (190 - y) < 110:
            return (245, 240, 232)  # the torn corner
        if 152 <= x <= 168:
            return (196, 160, 92)  # tape
        shade = 182 - (y - 50) // 6
        return (shade + 18, shade - 22, shade - 70)
    return (228 - y // 8, 222 - y // 9, 214 - y // 10)


def photo_update(update_id: int, user_id: int, first: str, last: str, file_id: str, caption: str) -> dict:
    update = telegram_text(update_id, user_id, "", first=first, last=last)
    message = update["message"]
    del message["text"]
    message["photo"] = [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 320, "height": 240,
                         "file_size": 2000}]
    message["caption"] = caption
    return update


def document_update(update_id: int, user_id: int, first: str, last: str, file_id: str, name: str) -> dict:
    update = telegram_text(update_id, user_id, "", first=first, last=last)
    message = update["message"]
    del message["text"]
    message["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": name,
                           "mime_type": "application/pdf", "file_size": 184_320}
    return update


CUSTOMERS = [
    # (user id, first, last, messages)
    (9101, "Olena", "Kovalenko", ["Hi! My order #A-20931 hasn't arrived yet, can you check?"]),
    (9102, "Jonas", "Meier", ["Hello, I'd like to change the delivery address for my order",
                              "It's order A-20977, new address is Lindenstraße 12, Berlin"]),
    (9103, "Amara", "Okafor", ["Do you ship to Lagos?"]),
    (9104, "Lucas", "Martin", ["The discount code WINTER15 says it has expired"]),
    (9105, "Sofia", "Rossi", ["Thank you so much, everything arrived!"]),
    (9106, "Kenji", "Tanaka", ["Can I return an item after 30 days?"]),
    (9107, "Priya", "Sharma", ["Is the blue one back in stock?"]),
    (9108, "Mateus", "Silva", ["Where can I find my invoice?"]),
]


async def seed(desk: Desk, fake: FakeTelegram) -> dict:
    """Fill the desk with a morning's worth of conversations."""
    _, admin_token = await desk.operator("maria", role="admin", name="Maria Jensen")
    channel = await desk.telegram_channel(admin_token, fake, name="Acme Support")
    queue = channel["queue_id"]
    _, anna_token = await desk.operator("anna", queue_ids=[queue], name="Anna Berg")
    await desk.call("PUT", "/api/operators/me/status", anna_token, {"status": "online"})
    _, tom_token = await desk.operator("tom", queue_ids=[queue], name="Tom Novak")
    fake.add_file("photo-parcel", "photos/parcel.png", png(320, 240, parcel))
    fake.add_file("doc-invoice", "documents/invoice.pdf", b"%PDF-1.4\n% invoice\n" + bytes(184_300))

    update = 7000
    for user, first, last, texts in CUSTOMERS:
        for text in texts:
            update += 1
            await desk.telegram_update(channel, telegram_text(update, user, text, first=first, last=last,
                                                              username=f"{first.lower()}_{last[0].lower()}"))
    chats = {c["contact"]["name"]: c for c in await desk.get("/api/chats?limit=100", admin_token)}

    # Anna's main conversation with Olena: a photo, replies, a PDF, a voice note.
    olena = chats["Olena Kovalenko"]["id"]
    await desk.call("POST", f"/api/chats/{olena}/accept", anna_token)
    await desk.call("POST", f"/api/chats/{olena}/messages", anna_token,
                    {"text": "Hi Olena! I'm sorry about the wait. Let me look up #A-20931 for you."}, status=201)
    update += 1
    await desk.telegram_update(channel, photo_update(update, 9101, "Olena", "Kovalenko", "photo-parcel",
                                                     "It came today, but the box is damaged"))
    await desk.call("POST", f"/api/chats/{olena}/messages", anna_token,
                    {"text": "Oh no, that's not how it should arrive. I've opened a claim with the courier "
                             "and we'll send a replacement today, free of charge.\n\nHere is your updated invoice:"},
                    status=201)
    update += 1
    await desk.telegram_update(channel, document_update(update, 9101, "Olena", "Kovalenko", "doc-invoice",
                                                        "invoice_A-20931.pdf"))
    update += 1
    await desk.telegram_update(channel, telegram_text(update, 9101, "Perfect, thank you! When will it ship?",
                                                      first="Olena", last="Kovalenko"))

    # Jonas is Anna's too, with a reply still on its way; Lucas's reply failed (he blocked the bot).
    jonas = chats["Jonas Meier"]["id"]
    await desk.call("POST", f"/api/chats/{jonas}/accept", anna_token)
    await desk.call("POST", f"/api/chats/{jonas}/messages", anna_token,
                    {"text": "Done — the courier has the new address."}, status=201)
    lucas = chats["Lucas Martin"]["id"]
    await desk.call("POST", f"/api/chats/{lucas}/accept", anna_token)
    await desk.call("POST", f"/api/chats/{lucas}/read", anna_token)
    fake.blocked.add("9104")
    await desk.call("POST", f"/api/chats/{lucas}/messages", anna_token,
                    {"text": "Sorry about that, here's a new code: SPRING20"}, status=201)
    # Sofia was helped and closed; Kenji is Tom's.
    sofia = chats["Sofia Rossi"]["id"]
    await desk.call("POST", f"/api/chats/{sofia}/accept", anna_token)
    await desk.call("POST", f"/api/chats/{sofia}/close", anna_token)
    await desk.call("POST", f"/api/chats/{chats['Kenji Tanaka']['id']}/accept", tom_token)
    await asyncio.sleep(1.5)  # let the outbox send and the downloads land

    # Spread the morning out: the first messages came yesterday, the rest over the last hours.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first_ids = [m.id for m in Message.select().where(Message.chat == olena).order_by(Message.id)]
    for offset, message_id in enumerate(first_ids):
        if offset < 2:  # the first question and the first answer, yesterday at this time
            when = now - dt.timedelta(days=1, minutes=6 - offset * 3)
        else:
            when = now - dt.timedelta(minutes=(len(first_ids) - offset) * 4 - 2)
        Message.update(created_at=when).where(Message.id == message_id).execute()
    Chat.update(last_message_at=when, created_at=now - dt.timedelta(days=1, minutes=6)).where(Chat.id == olena).execute()
    for minutes, chat in enumerate(list(Chat.select().order_by(Chat.last_message_at.desc()))):
        if chat.id == olena:
            continue
        when = now - dt.timedelta(minutes=7 + minutes * 23)
        Chat.update(last_message_at=when, created_at=when).where(Chat.id == chat.id).execute()
        Message.update(created_at=when).where(Message.chat == chat.id).execute()
    return {"olena": olena, "jonas": jonas, "lucas": lucas}


async def settings_screenshots(desk: Desk, fake: FakeTelegram, signed_in, url: str, out: Path) -> None:
    """Photograph the settings page: channels (with the connect flow), operators, queues."""
    _, token = await desk.operator("root", role="admin", name="Rita Okoye")
    billing = await desk.call("POST", "/api/queues", token, {"name": "Billing", "routing": "least_busy"}, status=201)
    operators = {op["login"]: op for op in await desk.get("/api/operators", token)}
    await desk.call("PATCH", f"/api/operators/{operators['tom']['id']}", token,
                    {"queue_ids": [*operators["tom"]["queue_ids"], billing["id"]], "max_chats": 8})
    page = await signed_in("maria", {"width": 1280, "height": 820})
    await page.goto(f"{url}/settings#channels")
    await page.wait_for_selector('#settings[data-loading="false"]')
    await page.wait_for_selector('[data-testid="health-status"]')
    await page.wait_for_timeout(300)
    await page.screenshot(path=out / "settings-channels.png")
    await page.click("#channel-add")
    await page.click('.provider-choice[data-provider="telegram"]')
    await page.fill('#channel-form input[name="name"]', "Returns bot")
    await page.fill('input[name="config.token"]', "7012345678:AAH-mistyped")
    await page.fill('input[name="config.api_base"]', fake.base_url)
    await page.click("#channel-submit")
    await page.wait_for_selector('[data-field="config.token"] .field-error:not([hidden])')
    await page.wait_for_timeout(300)
    await page.screenshot(path=out / "settings-connect.png")
    await page.keyboard.press("Escape")
    for section in ("operators", "queues"):
        await page.click(f'.settings-nav-link[data-section="{section}"]')
        await page.wait_for_timeout(300)
        await page.screenshot(path=out / f"settings-{section}.png")
    # On a phone the operators table is a stack of cards.
    phone = await signed_in("maria", {"width": 360, "height": 780}, 2)
    await phone.goto(f"{url}/settings#operators")
    await phone.wait_for_selector('#settings[data-loading="false"]')
    await phone.wait_for_timeout(300)
    await phone.screenshot(path=out / "settings-operators-narrow.png")


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="desk-shots-"))
    fake = FakeTelegram()
    fake_server = TestServer(fake.make_app(), host="127.0.0.1")
    await fake_server.start_server()
    fake.base_url = f"http://127.0.0.1:{fake_server.port}"

    async def intranet(_: web.Request) -> web.FileResponse:
        return web.FileResponse(EXAMPLES / "intranet.html")
    host_app = web.Application()
    host_app.router.add_get("/", intranet)
    host_server = TestServer(host_app, host="localhost")
    await host_server.start_server()
    host = f"http://localhost:{host_server.port}"

    settings = Settings(database_url=f"sqlite:///{tmp / 'desk.db'}", media_dir=tmp / "media",
                        public_url="http://desk.example", embed_origins=(host,), job_poll=0.05)
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    desk = Desk(client)
    url = desk.url
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        async def signed_in(login: str, viewport: dict, scale: float = 1):
            context = await browser.new_context(viewport=viewport, device_scale_factor=scale)
            page = await context.new_page()
            await page.goto(f"{url}/login")
            await page.fill("input[name=login]", login)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await wait_live(page)
            await page.wait_for_timeout(300)
            return page

        # Empty: the first minutes of a new desk.
        await desk.operator("ada", role="admin", name="Ada Lovelace")
        page = await signed_in("ada", {"width": 1280, "height": 760})
        await page.screenshot(path=out / "desk-empty.png")
        login = await browser.new_page(viewport={"width": 1280, "height": 760})
        await login.goto(f"{url}/login")
        await login.screenshot(path=out / "login.png")

        ids = await seed(desk, fake)
        page = await signed_in("anna", {"width": 1440, "height": 900})
        await page.click('.tab[data-tab="mine"]')
        await page.click(f'.chat-row[data-chat-id="{ids["olena"]}"]')
        await page.wait_for_selector(".att-image img[src]")
        await page.wait_for_timeout(600)
        await page.screenshot(path=out / "desk-busy.png")

        await page.click(f'.chat-row[data-chat-id="{ids["lucas"]}"]')
        await page.wait_for_selector(".msg-failure:not([hidden])")
        await page.wait_for_timeout(300)
        await page.screenshot(path=out / "desk-failed.png")

        phone = await signed_in("anna", {"width": 360, "height": 780}, scale=2)
        await phone.screenshot(path=out / "desk-narrow-list.png")
        await phone.click('.tab[data-tab="mine"]')
        await phone.click(f'.chat-row[data-chat-id="{ids["olena"]}"]')
        await phone.wait_for_selector(".att-image img[src]")
        await phone.wait_for_timeout(600)
        await phone.screenshot(path=out / "desk-narrow.png")

        token = jwt.encode({"sub": "anna", "exp": int(time.time()) + 600}, client.app[context_key].embed_secret,
                           algorithm="HS256")
        embedded = await browser.new_page(viewport={"width": 1440, "height": 860})
        await embedded.goto(f"{host}/?embed={quote(f'{url}/embed?token={token}', safe='')}")
        frame = embedded.frame_locator("#desk")
        await wait_live(frame)
        await frame.locator('.tab[data-tab="mine"]').click()
        await frame.locator(f'.chat-row[data-chat-id="{ids["jonas"]}"]').click()
        await embedded.wait_for_timeout(800)
        await embedded.screenshot(path=out / "desk-embedded.png")

        await settings_screenshots(desk, fake, signed_in, url, out)
        await browser.close()
    await client.close()
    await fake_server.close()
    await host_server.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"))
