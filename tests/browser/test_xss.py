"""Hostile text from customers renders as text in the desk: no script runs (CONTRACT §8, TARGETS S3)."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import sign_in, telegram_text

# Each payload would set window.__xss (or open a dialog) if the desk ever parsed it as HTML.
CORPUS = [
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "<svg onload=\"window.__xss = 'svg'\"><circle r=1 /></svg>",
    "<a href=\"javascript:window.__xss = 'href'\">click me</a>",
    "javascript:window.__xss = 'bare'",
    "\"><iframe src=\"javascript:window.__xss = 'iframe'\"></iframe>",
    "<style>body { display: none }</style>{{ 7 * 7 }} ${7*7}",
    "\u202egnp.exe \u200b zero\u200dwidth",
    "&lt;b&gt;entities stay as typed&lt;/b&gt; &amp;",
]
EVIL_FIRST = "<img src=x onerror=\"window.__xss = 'name'\">"
EVIL_LAST = "<script>window.__xss = 'last'</script>"
EVIL_FILE = "<img src=x onerror=\"window.__xss = 'file'\">.pdf"
EVIL_CAPTION = "<b onmouseover=\"window.__xss = 'caption'\">caption</b>"


def document_update(update_id: int, user_id: int) -> dict:
    update = telegram_text(update_id, user_id, "", first=EVIL_FIRST, last=EVIL_LAST, username=None)
    message = update["message"]
    del message["text"]
    message["document"] = {"file_id": "BQACAgIAAxkBAAIEvil", "file_unique_id": "AgADevil", "file_name": EVIL_FILE,
                           "mime_type": "application/pdf", "file_size": 1234}
    message["caption"] = EVIL_CAPTION
    return update


async def test_hostile_messages_names_and_file_names_render_as_text(browser, desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    await desk.operator("anna", queue_ids=[channel["queue_id"]])
    page = await sign_in(browser, desk.url, "anna")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    for n, text in enumerate(CORPUS):
        await desk.telegram_update(channel, telegram_text(5001 + n, 901, text, first=EVIL_FIRST, last=EVIL_LAST,
                                                          username=None))
    await desk.telegram_update(channel, document_update(5100, 901))

    name = f"{EVIL_FIRST} {EVIL_LAST}"
    row = page.locator(".chat-row").first
    await expect(row.locator(".chat-name")).to_have_text(name)
    await expect(row.locator(".chat-preview")).to_have_text(EVIL_CAPTION)
    await row.click()
    await expect(page.locator("#conv-name")).to_have_text(name)
    await expect(page.locator("#contact-name")).to_have_text(name)
    texts = page.locator(".msg-in .msg-text")
    await expect(texts).to_have_count(len(CORPUS) + 1)
    # textContent equals what the customer typed, character for character.
    shown = await texts.evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert shown == CORPUS + [EVIL_CAPTION]
    await expect(page.locator(".msg-in .att-name")).to_have_text(EVIL_FILE)
    await page.locator(".msg-in .msg-text").last.hover()

    # Nothing the customer sent became markup, and nothing ran.
    inside = page.locator("#message-list, #chat-list, #contact-panel, .conv-head")
    for selector in ("script", "img[src='x']", "svg circle", "iframe", "style", "b"):
        assert await inside.locator(selector).count() == 0, selector
    assert await page.locator("#message-list a[href^='javascript']").count() == 0
    assert await page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.errors == []
