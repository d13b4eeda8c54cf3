"""A reply someone typed in Meta's Page inbox shows in the desk as the page's own message."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import fixture_bytes
from tests.test_webhooks_facebook import deliver

ANSWER = "Hi! I'm checking order A-20931 for you now."


async def test_a_reply_from_the_page_inbox_is_a_bubble_on_our_side_with_the_pages_name(browser, desk, fake_facebook):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.facebook_channel(admin_token, fake_facebook)
    await desk.operator("anna", queue_ids=[channel["queue_id"]])
    page = await sign_in(browser, desk.url, "anna")

    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_text.json"))
    row = page.locator(".chat-row").first
    await row.click()
    await expect(page.locator(".msg-in")).to_have_count(1)
    # The captured echo: a reply typed in Meta's inbox, arriving live while the chat is open.
    await deliver(desk, channel["id"], fixture_bytes("facebook", "facebook_webhook_echo.json"))

    bubble = page.locator("#message-list .msg-out")
    await expect(bubble).to_have_count(1)
    await expect(bubble.locator(".msg-text")).to_have_text(ANSWER)
    await expect(bubble.locator(".msg-author")).to_have_text(channel["name"])
    await expect(bubble.locator(".msg-author")).to_be_visible()
    assert await page.locator("#message-list .msg-system").count() == 0
    # The chat list says who wrote last: the page, not "You".
    await expect(row.locator(".chat-preview")).to_have_text(f"{channel['name']}: {ANSWER}")
    assert page.errors == []
