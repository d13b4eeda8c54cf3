"""The settings page in a real browser: connect a Telegram channel against the fake Bot API (a
refused token, then the right one), its webhook and health; queues, operators and embedding."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import UI_TIMEOUT_MS, sign_in, telegram_text
from tests.conftest import PASSWORD, TELEGRAM_TOKEN


async def open_settings(page, base_url: str, section: str = "channels") -> None:
    """Go to the settings from the desk's header link and wait until the lists are loaded."""
    await page.click('.topbar a[href="/settings"]')
    await expect(page).to_have_url(f"{base_url}/settings")
    if section != "channels":
        await page.click(f'.settings-nav-link[data-section="{section}"]')
    await page.locator('#settings[data-loading="false"]').wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    await expect(page.locator(f"#section-{section}")).to_be_visible()


async def test_connect_a_telegram_channel_refused_then_registered_and_healthy(browser, desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin", name="Maria Jensen")
    page = await sign_in(browser, desk.url, "boss")
    await open_settings(page, desk.url)
    await expect(page.locator("#channel-empty")).to_be_visible()

    await page.click("#channel-add")
    await page.click('.provider-choice[data-provider="telegram"]')
    token = page.locator('input[name="config.token"]')
    await expect(token).to_have_attribute("type", "password")
    await page.fill('#channel-form input[name="name"]', "Support bot")
    await token.fill("7012345678:AAH-not-the-token")
    await page.fill('input[name="config.api_base"]', fake_telegram.base_url)
    await page.click("#channel-submit")
    # Telegram refused the token (getMe): the error shows under the token, nothing is saved.
    error = page.locator('[data-field="config.token"] .field-error')
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Unauthorized")
    assert await desk.get("/api/channels", admin_token) == []
    assert fake_telegram.calls_of("setWebhook") == []

    await token.fill(TELEGRAM_TOKEN)
    await page.click("#channel-submit")
    result = page.get_by_test_id("channel-result")
    await expect(result).to_contain_text("Support bot is connected")
    [channel] = await desk.get("/api/channels", admin_token)
    assert channel["registered"] is True and channel["name"] == "Support bot"
    await expect(page.get_by_test_id("result-webhook-url")).to_have_value(channel["webhook_url"])
    assert fake_telegram.webhook["url"] == channel["webhook_url"]
    await page.click("#channel-done")

    card = page.get_by_test_id("channel")
    await expect(card).to_have_count(1)
    await expect(card.get_by_test_id("channel-status")).to_have_text("Registered")
    await expect(card.get_by_test_id("webhook-url")).to_have_value(channel["webhook_url"])
    await expect(card.get_by_test_id("health-status")).to_have_text("Healthy")
    await expect(card.get_by_test_id("health-pending")).to_have_text("0 pending updates")
    # The panel shows what Telegram reports: a backlog and a delivery error.
    fake_telegram.webhook["pending_update_count"] = 3
    fake_telegram.webhook["last_error_message"] = "Connection refused"
    await card.get_by_role("button", name="Check health").click()
    await expect(card.get_by_test_id("health-pending")).to_have_text("3 pending updates")
    await expect(card.locator(".health")).to_contain_text("Connection refused")
    # The token is never sent back: the page does not hold it anywhere.
    assert TELEGRAM_TOKEN not in await page.content()

    # An edit sends only what changed: a new name is not a new token check.
    checks = len(fake_telegram.calls_of("getMe"))
    await card.get_by_role("button", name="Edit").click()
    await expect(token).to_have_value("")
    await expect(page.locator('input[name="config.api_base"]')).to_have_value(fake_telegram.base_url)
    await page.fill('#channel-form input[name="name"]', "Sales bot")
    await page.click("#channel-submit")
    await expect(card.locator("h2")).to_have_text("Sales bot")
    assert (await desk.get("/api/channels", admin_token))[0]["name"] == "Sales bot"
    assert len(fake_telegram.calls_of("getMe")) == checks

    # Off deregisters the webhook; on registers it again.
    await card.locator("input.switch").click()
    await expect(card.get_by_test_id("channel-status")).to_have_text("Disabled")
    assert fake_telegram.webhook["url"] == ""
    await card.locator("input.switch").click()
    await expect(card.get_by_test_id("channel-status")).to_have_text("Registered")
    assert fake_telegram.webhook["url"] == channel["webhook_url"]

    # A channel with chats cannot be deleted: the page says so and offers to disable it.
    await desk.telegram_update(channel, telegram_text(3001, 701, "Hello"))
    await card.get_by_role("button", name="Delete").click()
    await page.click("#confirm-ok")
    await expect(page.locator("#confirm-error")).to_contain_text("disable it instead")
    await page.click("#confirm-alt")
    await expect(page.locator("#confirm-dialog")).to_be_hidden()
    await expect(card.get_by_test_id("channel-status")).to_have_text("Disabled")
    assert (await desk.get("/api/channels", admin_token))[0]["enabled"] is False
    assert page.errors == []


async def test_create_a_queue_and_an_operator_and_set_a_status(browser, desk):
    _, admin_token = await desk.operator("boss", role="admin")
    page = await sign_in(browser, desk.url, "boss")
    await open_settings(page, desk.url, "queues")

    await page.click("#queue-add")
    await page.fill('#queue-form input[name="name"]', "Billing")
    await page.check('#queue-form input[name="routing"][value="round_robin"]')
    await page.uncheck('#queue-form input[name="actions"][value="close"]')
    await page.click("#queue-submit")
    await expect(page.get_by_test_id("queue").filter(has_text="Billing")).to_be_visible()
    billing = next(q for q in await desk.get("/api/queues", admin_token) if q["name"] == "Billing")
    assert billing["routing"] == "round_robin" and "close" not in billing["actions"]
    assert {"accept", "transfer"} <= set(billing["actions"])

    # A name in use is an error under the name.
    await page.click("#queue-add")
    await page.fill('#queue-form input[name="name"]', "Billing")
    await page.click("#queue-submit")
    await expect(page.locator('#queue-form [data-field="name"] .field-error')).to_be_visible()
    await page.click('#queue-dialog [data-close]')

    await page.click('.settings-nav-link[data-section="operators"]')
    await page.click("#operator-add")
    await page.fill('#operator-form input[name="name"]', "Tom Novak")
    await page.fill('#operator-form input[name="login"]', "tom")
    await page.fill('#operator-form input[name="password"]', "short")
    await page.fill('#operator-form input[name="max_chats"]', "3")
    await page.check(f'#operator-form input[name="queue_ids"][value="{billing["id"]}"]')
    await page.click("#operator-submit")
    await expect(page.locator('#operator-form [data-field="password"] .field-error')).to_contain_text("8 characters")
    await page.fill('#operator-form input[name="password"]', PASSWORD)
    await page.click("#operator-submit")
    row = page.get_by_test_id("operator").filter(has_text="Tom Novak")
    await expect(row).to_contain_text("Billing")
    tom = next(op for op in await desk.get("/api/operators", admin_token) if op["login"] == "tom")
    assert tom["queue_ids"] == [billing["id"]] and tom["max_chats"] == 3 and tom["role"] == "agent"
    # Tom signs in with the password the admin set.
    session = await desk.client.post("/api/session", json={"login": "tom", "password": PASSWORD})
    assert session.status == 200

    # A supervisor sends Tom offline, then busy.
    await row.locator("select.status-select").select_option("busy")
    await expect(row.locator(".status-picker")).to_have_attribute("data-status", "busy")
    async def tom_status():
        return next(op for op in await desk.get("/api/operators", admin_token) if op["id"] == tom["id"])["status"]
    assert await tom_status() == "busy"

    # Disabling him ends his sign-in.
    await row.get_by_role("button", name="Disable").click()
    await expect(row).to_contain_text("Disabled")
    assert (await desk.client.post("/api/session", json={"login": "tom", "password": PASSWORD})).status == 401

    # Membership is edited from the queue too.
    await page.click('.settings-nav-link[data-section="queues"]')
    card = page.get_by_test_id("queue").filter(has_text="Billing")
    await expect(card).to_contain_text("Tom Novak")
    await card.get_by_role("button", name="Edit").click()
    await page.uncheck(f'#queue-members input[value="{tom["id"]}"]')
    await page.click("#queue-submit")
    await expect(card).to_contain_text("No members")
    tom = next(op for op in await desk.get("/api/operators", admin_token) if op["id"] == tom["id"])
    assert tom["queue_ids"] == []
    assert page.errors == []


async def test_embedding_origins_and_secret_rotation(browser, desk):
    _, admin_token = await desk.operator("boss", role="admin")
    before = await desk.get("/api/settings", admin_token)
    page = await sign_in(browser, desk.url, "boss")
    await open_settings(page, desk.url, "embedding")

    await page.fill("#origin-input", "not an origin")
    await page.click("#origin-add")
    await expect(page.locator('[data-field="embed_origins"] .field-error')).to_be_visible()
    await page.fill("#origin-input", "https://intranet.example.com")
    await page.click("#origin-add")
    await page.click("#origins-save")
    await expect(page.locator("#origins-saved")).to_be_visible()
    assert (await desk.get("/api/settings", admin_token))["embed_origins"] == ["https://intranet.example.com"]
    framed = await desk.client.get("/login")
    assert "https://intranet.example.com" in framed.headers["Content-Security-Policy"]

    await expect(page.locator("#embed-secret")).to_have_value(before["embed_secret"])
    await page.click("#embed-secret-rotate")
    await page.click("#confirm-ok")
    after = await desk.get("/api/settings", admin_token)
    assert after["embed_secret"] != before["embed_secret"]
    await expect(page.locator("#embed-secret")).to_have_value(after["embed_secret"])

    await page.fill("#transcript-url", "ftp://crm.example")
    await page.click('#transcript-form button[type="submit"]')
    await expect(page.locator('[data-field="transcript_url"] .field-error')).to_be_visible()
    await page.fill("#transcript-url", "https://crm.example/transcripts")
    await page.click('#transcript-form button[type="submit"]')
    await expect(page.locator("#transcript-saved")).to_be_visible()
    assert (await desk.get("/api/settings", admin_token))["transcript_url"] == "https://crm.example/transcripts"
    assert page.errors == []


async def test_an_agent_sees_no_settings(browser, desk):
    await desk.operator("anna")
    page = await sign_in(browser, desk.url, "anna")
    await expect(page.locator('.topbar a[href="/settings"]')).to_have_count(0)
    response = await page.goto(f"{desk.url}/settings")
    assert response.status == 403
    await expect(page.locator("h1")).to_have_text("Only admins open the settings")


EVIL = "<img src=x onerror=\"window.__xss = 'settings'\">"


async def test_a_facebook_page_shows_what_to_paste_at_meta_and_names_stay_text(browser, desk, fake_facebook):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.facebook_channel(admin_token, fake_facebook)
    await desk.call("PATCH", f"/api/channels/{channel['id']}", admin_token, {"name": f"Shop {EVIL}"})
    await desk.call("POST", "/api/queues", admin_token, {"name": EVIL}, status=201)
    page = await sign_in(browser, desk.url, "boss")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    await open_settings(page, desk.url)

    card = page.get_by_test_id("channel")
    await expect(card.locator("h2")).to_have_text(f"Shop {EVIL}")
    # Meta's dashboard needs the callback URL and the verify token: both are there to copy.
    await expect(card.get_by_test_id("webhook-url")).to_have_value(channel["webhook_url"])
    await expect(card.get_by_label("Webhook verify token")).to_have_value("verify-me")
    await expect(card.get_by_test_id("health-status")).to_have_text("Healthy")
    content = await page.content()
    assert "EAAG-test-page-token" not in content and "fb-app-secret" not in content

    await page.click('.settings-nav-link[data-section="queues"]')
    await expect(page.get_by_test_id("queue").last.locator("h2")).to_have_text(EVIL)
    assert await page.evaluate("window.__xss") is None and dialogs == []
    assert page.errors == []
