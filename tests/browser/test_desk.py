"""The desk in a real browser: first run, sign-in, live chats, the agent's work, restarts."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import UI_TIMEOUT_MS, sign_in, telegram_text, wait_live
from tests.conftest import PASSWORD, eventually


async def test_first_run_setup_creates_the_admin_and_opens_the_desk(browser, desk):
    page = await browser.new_page()
    await page.goto(f"{desk.url}/")
    await expect(page).to_have_url(f"{desk.url}/setup")
    await page.fill("input[name=name]", "Maria Jensen")
    await page.fill("input[name=login]", "maria")
    await page.fill("input[name=password]", "short")
    await page.click("button[type=submit]")
    # The browser's own check (minlength) keeps the form here; nothing is created.
    await expect(page).to_have_url(f"{desk.url}/setup")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{desk.url}/")
    await wait_live(page)
    await expect(page.locator(".me-name")).to_have_text("Maria Jensen")
    await expect(page.locator("#list-empty")).to_contain_text("No messenger connected yet")
    # The first thing to do is one click away.
    await page.locator("#list-empty").get_by_role("link", name="Connect a channel").click()
    await expect(page).to_have_url(f"{desk.url}/settings#channels")
    # Once an operator exists, /setup no longer offers itself.
    await page.goto(f"{desk.url}/setup")
    await expect(page).to_have_url(f"{desk.url}/")


async def test_sign_in_with_a_wrong_then_the_right_password(browser, desk):
    await desk.operator("anna", name="Anna Berg")
    page = await browser.new_page()
    await page.goto(f"{desk.url}/")
    await expect(page).to_have_url(f"{desk.url}/login")
    await page.fill("input[name=login]", "anna")
    await page.fill("input[name=password]", "not it")
    await page.click("button[type=submit]")
    await expect(page.locator(".alert-error")).to_have_text("Wrong login or password.")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{desk.url}/")
    await wait_live(page)
    await expect(page.locator(".me-name")).to_have_text("Anna Berg")
    await page.click(".logout-form button")
    await expect(page).to_have_url(f"{desk.url}/login")


async def _telegram_desk(desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    agent, token = await desk.operator("anna", queue_ids=[channel["queue_id"]], name="Anna Berg")
    return channel, agent, token


async def test_a_telegram_message_appears_live_with_badge_and_title_count(browser, desk, fake_telegram):
    channel, _, token = await _telegram_desk(desk, fake_telegram)
    page = await sign_in(browser, desk.url, "anna")
    await expect(page).to_have_title("Desk")

    await desk.telegram_update(channel, telegram_text(1001, 501, "Hi! Where is my order?"))
    row = page.locator(".chat-row", has_text="Olena Kovalenko")
    await expect(row).to_be_visible()
    await expect(row.locator(".chat-unread")).to_have_text("1")
    await expect(row.locator(".chat-preview")).to_have_text("Hi! Where is my order?")
    await expect(page).to_have_title("(1) Desk")
    await expect(page.locator('.tab[data-tab="new"] .tab-count')).to_have_text("1")

    # Opening it marks it read; a second customer's new chat appears while it is open.
    await row.click()
    await expect(page.locator("#conv-name")).to_have_text("Olena Kovalenko")
    await expect(row.locator(".chat-unread")).to_be_hidden()
    await expect(page).to_have_title("Desk")
    assert (await desk.get("/api/unread", token)) == {"chats": 0, "messages": 0}

    await desk.telegram_update(channel, telegram_text(1002, 502, "Hello?", first="Jonas", last="Meier", username=None))
    await desk.telegram_update(channel, telegram_text(1003, 502, "Anyone there?", first="Jonas", last="Meier",
                                                      username=None))
    other = page.locator(".chat-row", has_text="Jonas Meier")
    await expect(other.locator(".chat-unread")).to_have_text("2")
    await expect(page).to_have_title("(2) Desk")
    await expect(page.locator("#conv-name")).to_have_text("Olena Kovalenko")  # still where the agent was
    assert page.errors == []


async def test_accept_reply_read_and_close(browser, desk, fake_telegram):
    channel, agent, token = await _telegram_desk(desk, fake_telegram)
    await desk.telegram_update(channel, telegram_text(2001, 601, "My parcel is late"))
    page = await sign_in(browser, desk.url, "anna")
    row = page.locator(".chat-row", has_text="Olena Kovalenko")
    await expect(row.locator(".chat-unread")).to_have_text("1")
    await row.click()
    await expect(page.locator(".msg-in .msg-text")).to_have_text("My parcel is late")
    await expect(row.locator(".chat-unread")).to_be_hidden()  # read

    await page.click('#conv-actions [data-action="accept"]')
    await expect(page.locator("#conv-sub")).to_contain_text("Assigned to you")
    await expect(page.locator('#conv-actions [data-action="accept"]')).to_have_count(0)
    await page.click('.tab[data-tab="mine"]')
    await expect(page.locator(".chat-row", has_text="Olena Kovalenko")).to_be_visible()

    box = page.locator("#composer-text")
    await box.fill("Sorry about that!")
    await box.press("Shift+Enter")
    await box.type("Checking now.")
    await box.press("Enter")
    await expect(box).to_have_value("")
    sent = page.locator(".msg-out").last
    await expect(sent.locator(".msg-text")).to_have_text("Sorry about that!\nChecking now.")
    await eventually(lambda: fake_telegram.sent_messages, timeout=10)
    assert fake_telegram.sent_messages[-1]["text"] == "Sorry about that!\nChecking now."
    await expect(sent.locator(".msg-status")).to_have_attribute("data-status", "sent", timeout=UI_TIMEOUT_MS)
    await expect(page.locator(".msg-out")).to_have_count(1)  # the optimistic bubble became the real one

    # The customer answers while the chat is open: it is read at once.
    await desk.telegram_update(channel, telegram_text(2002, 601, "Thanks!"))
    await expect(page.locator(".msg-in .msg-text").last).to_have_text("Thanks!")
    async def read():
        return (await desk.get("/api/unread", token)) == {"chats": 0, "messages": 0}
    await eventually(read)

    # A file goes out through the composer's attach button.
    await page.set_input_files("#composer-input-file", files=[
        {"name": "returns-form.txt", "mimeType": "text/plain", "buffer": b"Return form\n"}])
    await expect(page.locator("#composer-file")).to_contain_text("returns-form.txt")
    await box.press("Enter")
    await expect(page.locator(".msg-out .att-name").last).to_have_text("returns-form.txt")
    await eventually(lambda: fake_telegram.calls_of("sendDocument"), timeout=10)

    await page.click('#conv-actions [data-action="close"]')
    await expect(page.locator("#composer-hint")).to_contain_text("closed")
    await expect(page.locator("#composer-text")).to_be_disabled()
    await page.click('.tab[data-tab="closed"]')
    await expect(page.locator(".chat-row", has_text="Olena Kovalenko")).to_be_visible()
    chat = (await desk.get("/api/chats?status=closed", token))[0]
    assert chat["status"] == "closed" and chat["operator_id"] == agent["id"]
    assert page.errors == []


async def test_messages_sent_while_the_server_restarts_show_exactly_once(browser, live, fake_telegram):
    desk = await live.start()
    channel, _, _ = await _telegram_desk(desk, fake_telegram)
    await desk.telegram_update(channel, telegram_text(3001, 701, "Before the restart"))
    page = await sign_in(browser, live.url, "anna")
    await page.locator(".chat-row", has_text="Olena Kovalenko").click()
    await expect(page.locator(".msg-in .msg-text")).to_have_text(["Before the restart"])

    await live.stop()
    await expect(page.locator("#connection")).to_be_visible()
    # The new process takes messages before the desk can reach it again (another port first).
    desk = await live.start(port=0)
    for n in range(3):
        await desk.telegram_update(channel, telegram_text(3002 + n, 701, f"While away {n}"))
    await desk.telegram_update(channel, telegram_text(3010, 702, "A new customer", first="Jonas", last="Meier"))
    await live.open_port()

    await expect(page.locator("#connection")).to_be_hidden(timeout=20_000)
    texts = ["Before the restart", "While away 0", "While away 1", "While away 2"]
    await expect(page.locator(".msg-in .msg-text")).to_have_text(texts, timeout=UI_TIMEOUT_MS)
    await expect(page.locator(".chat-row", has_text="Jonas Meier")).to_have_count(1)
    # And live again afterwards, still once each.
    await desk.telegram_update(channel, telegram_text(3011, 701, "After"))
    await expect(page.locator(".msg-in .msg-text")).to_have_text(texts + ["After"])
    await page.wait_for_timeout(300)  # a late duplicate would show up now
    await expect(page.locator(".msg-in .msg-text")).to_have_text(texts + ["After"])
    await expect(page.locator(".chat-row")).to_have_count(2)
    assert page.errors == []


async def test_a_lost_event_is_replayed_from_the_gap_in_seq(browser, desk, fake_telegram):
    channel, _, _ = await _telegram_desk(desk, fake_telegram)
    context = await browser.new_context()
    page = await context.new_page()
    dropped: list[str] = []

    async def lossy(ws):
        # Forward the desk's websocket, but lose one message.created on its way.
        server = ws.connect_to_server()

        def from_server(message):
            if isinstance(message, str) and '"message.created"' in message and "Lost on the wire" in message:
                dropped.append(message)
                return
            ws.send(message)
        server.on_message(from_server)
        ws.on_message(lambda message: server.send(message))

    await page.route_web_socket(re.compile(r"/socket\.io/"), lossy)
    await page.goto(f"{desk.url}/login")
    await page.fill("input[name=login]", "anna")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{desk.url}/")
    await page.wait_for_selector('#app[data-connection="connected"]', state="attached")
    await desk.telegram_update(channel, telegram_text(6001, 951, "First"))
    row = page.locator(".chat-row", has_text="Olena Kovalenko")
    await row.click()
    await expect(page.locator(".msg-in .msg-text")).to_have_text(["First"])

    await desk.telegram_update(channel, telegram_text(6002, 951, "Lost on the wire, found by replay"))
    await expect(page.locator(".msg-in .msg-text")).to_have_text(["First", "Lost on the wire, found by replay"])
    assert len(dropped) == 1  # it never came by socket: the replay brought it


async def test_history_loads_older_pages_as_the_agent_scrolls_up(browser, desk, fake_telegram):
    channel, _, _ = await _telegram_desk(desk, fake_telegram)
    for n in range(60):
        await desk.telegram_update(channel, telegram_text(6100 + n, 961, f"Message {n:02d}"))
    page = await sign_in(browser, desk.url, "anna")
    await page.locator(".chat-row", has_text="Olena Kovalenko").click()
    texts = page.locator(".msg-in .msg-text")
    await expect(texts).to_have_count(50)
    await expect(texts.last).to_have_text("Message 59")
    await page.locator("#messages").evaluate("box => { box.scrollTop = 0 }")
    await expect(texts).to_have_count(60)
    shown = await texts.evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert shown == [f"Message {n:02d}" for n in range(60)]
    await expect(page.locator("#history-status")).to_have_text("This is the start of the conversation.")


async def test_transfer_to_a_colleague_and_set_my_status(browser, desk, fake_telegram):
    channel, _, token = await _telegram_desk(desk, fake_telegram)
    tom, tom_token = await desk.operator("tom", queue_ids=[channel["queue_id"]], name="Tom Novak")
    await desk.telegram_update(channel, telegram_text(6301, 971, "Can someone help?"))
    page = await sign_in(browser, desk.url, "anna")

    await page.select_option("#my-status", "online")
    await expect(page.locator(".status-picker")).to_have_attribute("data-status", "online")
    assert (await desk.get("/api/operators/me", token))["status"] == "online"

    await page.locator(".chat-row", has_text="Olena Kovalenko").click()
    await page.click('#conv-actions [data-action="accept"]')
    await expect(page.locator("#conv-sub")).to_contain_text("Assigned to you")
    await page.click('#conv-actions [data-action="transfer"]')
    await page.select_option("#transfer-operator", str(tom["id"]))
    await page.click("#transfer-submit")
    # The chat leaves Anna's desk and says where it went; Tom has it now.
    await expect(page.locator("#composer-hint")).to_have_text("This chat is now with Tom Novak.")
    await expect(page.locator("#composer-text")).to_be_disabled()
    await expect(page.locator(".chat-row", has_text="Olena Kovalenko")).to_have_count(0)
    chats = await desk.get("/api/chats?mine=1", tom_token)
    assert [c["contact"]["name"] for c in chats] == ["Olena Kovalenko"] and chats[0]["status"] == "active"
    assert page.errors == []
