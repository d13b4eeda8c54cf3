"""A long conversation in a real browser: the pane keeps a bounded window of messages while the
agent scrolls through all of it, and live messages, replies and their delivery status still work;
new messages that come while the agent reads further up wait under a pill, unread."""

from __future__ import annotations

import datetime as dt

from playwright.async_api import expect

from desk.store import Message
from tests.browser.conftest import UI_TIMEOUT_MS, sign_in, telegram_text
from tests.conftest import eventually

# The pane keeps at most this many messages (static/js/conversation.js: WINDOW).
WINDOW = 150
CUSTOMER = 811
DAYS = 6  # the history spreads over this many days, 100 messages a day

# The list as the agent sees it: day separators and messages, in order.
SNAPSHOT_JS = """() => [...document.getElementById("message-list").children].map((li) =>
  li.classList.contains("day-separator") ? { sep: li.textContent }
    : { id: Number(li.dataset.id), text: li.querySelector(".msg-text").textContent,
        day: new Date(li.querySelector(".msg-time").dateTime).toDateString() })"""

# Scroll the pane to one end; return the message at the top of the viewport and where it is.
SCROLL_JS = """(end) => {
  const box = document.getElementById("messages");
  box.scrollTop = end === "top" ? 0 : box.scrollHeight;
  const top = box.getBoundingClientRect().top;
  const node = [...document.querySelectorAll("#message-list .msg")].find((n) => n.getBoundingClientRect().bottom > top);
  return { id: node.dataset.id, offset: node.getBoundingClientRect().top - top };
}"""

OFFSET_JS = """(id) => {
  const box = document.getElementById("messages");
  const node = document.querySelector(`#message-list .msg[data-id="${id}"]`);
  return node ? node.getBoundingClientRect().top - box.getBoundingClientRect().top : null;
}"""

# The most message nodes the list has held at once since this ran.
WATCH_JS = """() => {
  window.__mostMessages = 0;
  const list = document.getElementById("message-list");
  const count = () => { window.__mostMessages = Math.max(window.__mostMessages, list.querySelectorAll(".msg").length); };
  count();
  new MutationObserver(count).observe(list, { childList: true });
}"""


def number(text: str) -> int:
    return int(text.removeprefix("Message "))


def check_window(items: list[dict]) -> list[int]:
    """Assert the list is a bounded, contiguous run in order, each day under its own separator;
    return the message numbers it shows."""
    messages = [item for item in items if "id" in item]
    assert 0 < len(messages) <= WINDOW
    numbers = [number(m["text"]) for m in messages if m["text"].startswith("Message ")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)
    assert "sep" in items[0], "the window starts with its day"
    days: list[str] = []
    for item in items:
        if "sep" in item:
            days.append("")
        elif days[-1] == "":
            days[-1] = item["day"]
        else:
            assert item["day"] == days[-1], f"{item['text']} is under the separator of another day"
    assert "" not in days and len(days) == len(set(days)), days
    labels = [item["sep"] for item in items if "sep" in item]
    assert len(labels) == len(set(labels)), labels
    return numbers


async def _seed_long_chat(desk, fake_telegram, count: int) -> tuple[dict, str]:
    """A customer chat of ``count`` messages, 100 a day over the last days; return (channel, agent token)."""
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    _, token = await desk.operator("anna", queue_ids=[channel["queue_id"]], name="Anna Berg")
    for n in range(1, count + 1):
        await desk.telegram_update(channel, telegram_text(10_000 + n, CUSTOMER, f"Message {n:03}", message_id=n))
    [chat] = await desk.get("/api/chats", token)
    first_day = dt.datetime.now(dt.UTC).replace(tzinfo=None, hour=8, minute=0, second=0, microsecond=0)
    first_day -= dt.timedelta(days=DAYS)
    ids = [m.id for m in Message.select(Message.id).where(Message.chat == chat["id"]).order_by(Message.id)]
    for n, message_id in enumerate(ids):
        when = first_day + dt.timedelta(days=n // 100, minutes=5 * (n % 100))
        Message.update(created_at=when).where(Message.id == message_id).execute()
    return channel, token


async def _scroll_through(page, end: str) -> set[int]:
    """Scroll to ``end`` ("top" or "bottom") page by page until the chat's own end shows; check
    every window on the way and that the message in view never moves; return the numbers seen."""
    seen: set[int] = set()
    edge = "#history-status" if end == "top" else "#history-newer"
    while True:
        seen |= set(check_window(await page.evaluate(SNAPSHOT_JS)))
        # The top's status says "start" when the chat's first message is in; the bottom's hides.
        done = await page.evaluate(
            "([end, edge]) => end === 'top' ? document.querySelector(edge).classList.contains('is-start')"
            " : document.querySelector(edge).hidden", [end, edge])
        if done:
            return seen
        ends = await page.evaluate("() => [...document.querySelectorAll('#message-list .msg')].map((n) => n.dataset.id)")
        anchor = await page.evaluate(SCROLL_JS, end)
        # The next page is in and applied (the edge's "Loading…" is gone).
        await page.wait_for_function(
            """([end, first, last, edge]) => {
              const ids = [...document.querySelectorAll('#message-list .msg')].map((n) => n.dataset.id);
              return (end === "top" ? ids[0] !== first : ids[ids.length - 1] !== last)
                && !document.querySelector(edge).textContent.startsWith("Loading");
            }""", arg=[end, ends[0], ends[-1], edge], timeout=UI_TIMEOUT_MS)
        offset = await page.evaluate(OFFSET_JS, anchor["id"])
        assert offset is not None and abs(offset - anchor["offset"]) <= 1, (anchor, offset)


async def test_a_long_chat_keeps_a_bounded_window_from_its_start_to_its_end(browser, desk, fake_telegram):
    count = 600
    channel, token = await _seed_long_chat(desk, fake_telegram, count)
    page = await sign_in(browser, desk.url, "anna")
    await page.locator(".chat-row", has_text="Olena Kovalenko").click()
    messages = page.locator("#message-list .msg")
    await expect(messages.last.locator(".msg-text")).to_have_text(f"Message {count}")
    await page.evaluate(WATCH_JS)
    # Opening the chat marks all of it read, though most of it is not loaded.
    async def read():
        return (await desk.get("/api/unread", token)) == {"chats": 0, "messages": 0}
    await eventually(read)

    seen = await _scroll_through(page, "top")
    assert seen == set(range(1, count + 1))
    await expect(messages.first.locator(".msg-text")).to_have_text("Message 001")
    await expect(page.locator("#history-status")).to_have_text("This is the start of the conversation.")
    await expect(page.locator("#history-newer")).to_be_visible()  # the newest pages were let go

    # A customer writes while the agent reads the start: it waits below, not in the window.
    await desk.telegram_update(channel, telegram_text(20_001, CUSTOMER, "Are you still there?", message_id=20_001))
    await expect(page.locator(".chat-row", has_text="Olena Kovalenko").locator(".chat-preview")).to_have_text(
        "Are you still there?")
    await expect(page.locator(".msg-text", has_text="Are you still there?")).to_have_count(0)

    seen = await _scroll_through(page, "bottom")
    assert seen >= set(range(count - 200, count + 1))
    texts = await page.locator("#message-list .msg-text").all_text_contents()
    assert texts[-2:] == [f"Message {count}", "Are you still there?"]
    assert await page.evaluate("window.__mostMessages") <= WINDOW
    assert page.errors == []


async def test_replies_and_live_messages_in_a_long_chat(browser, desk, fake_telegram):
    count = 400
    channel, _ = await _seed_long_chat(desk, fake_telegram, count)
    page = await sign_in(browser, desk.url, "anna")
    await page.locator(".chat-row", has_text="Olena Kovalenko").click()
    messages = page.locator("#message-list .msg")
    await expect(messages.last.locator(".msg-text")).to_have_text(f"Message {count}")
    await page.evaluate(WATCH_JS)
    await _scroll_through(page, "top")
    await expect(page.locator("#history-newer")).to_be_visible()

    # A reply written at the start of the history takes the agent back to the newest messages.
    fake_telegram.blocked.add(str(CUSTOMER))
    box = page.locator("#composer-text")
    await box.fill("Sorry for the wait!")
    await box.press("Enter")
    reply = page.locator(".msg-out", has_text="Sorry for the wait!")
    await expect(reply).to_have_count(1)
    await expect(page.locator("#history-newer")).to_be_hidden()
    # The newest page comes back by keyset just after the reply shows: wait for it, as the agent would.
    await expect(page.locator("#message-list .msg-text").nth(-2)).to_have_text(f"Message {count}")
    texts = await page.locator("#message-list .msg-text").all_text_contents()
    assert texts[-2:] == [f"Message {count}", "Sorry for the wait!"]
    check_window(await page.evaluate(SNAPSHOT_JS))
    # The customer blocked the bot: the reply fails, and goes out on retry once unblocked.
    await expect(reply).to_have_attribute("data-status", "failed", timeout=UI_TIMEOUT_MS)
    fake_telegram.blocked.clear()
    await reply.get_by_role("button", name="Retry").click()
    await expect(reply).to_have_attribute("data-status", "sent", timeout=UI_TIMEOUT_MS)
    await expect(reply).to_have_count(1)

    # Live messages while the agent is at the bottom: the pane follows them and lets the oldest go.
    live = WINDOW + 10
    for n in range(1, live + 1):
        await desk.telegram_update(channel, telegram_text(30_000 + n, CUSTOMER, f"Live {n}", message_id=30_000 + n))
    await expect(messages.last.locator(".msg-text")).to_have_text(f"Live {live}")
    assert await page.evaluate(
        "() => { const b = document.getElementById('messages'); return b.scrollHeight - b.scrollTop - b.clientHeight; }") < 2
    texts = await page.locator("#message-list .msg-text").all_text_contents()
    assert texts == [f"Live {n}" for n in range(live - WINDOW + 1, live + 1)]
    await expect(page.locator("#history-status")).to_have_text("")  # the start was let go
    assert await page.evaluate("window.__mostMessages") <= WINDOW
    assert page.errors == []


# Scroll the pane so that the message with this text is at its top, as the agent would (the
# desk has seen the scroll when this returns); return the message's id and offset.
SCROLL_TO_JS = """async (text) => {
  const box = document.getElementById("messages");
  const node = [...document.querySelectorAll("#message-list .msg")].find((n) => n.querySelector(".msg-text").textContent === text);
  const scrolled = new Promise((resolve) => box.addEventListener("scroll", resolve, { once: true }));
  box.scrollTop += node.getBoundingClientRect().top - box.getBoundingClientRect().top;
  await scrolled;
  return { id: node.dataset.id, offset: node.getBoundingClientRect().top - box.getBoundingClientRect().top };
}"""

# How far the pane is from its bottom.
GAP_JS = "() => { const b = document.getElementById('messages'); return b.scrollHeight - b.scrollTop - b.clientHeight; }"


async def _customer_writes(desk, channel, first: int, texts: list[str]) -> None:
    for n, text in enumerate(texts, start=first):
        await desk.telegram_update(channel, telegram_text(n, CUSTOMER, text, message_id=n))


async def _unread(desk, token: str, expected: dict) -> bool:
    return (await desk.get("/api/unread", token)) == expected


async def _settle(page) -> None:
    """Fire the timers the desk has pending (a mark-read waits on one) and return once any request
    they made has been seen: the page's clock is paused, so they fire only here, and their requests
    come before the marker request made after them."""
    await page.clock.run_for(5_000)
    async with page.expect_request("**/api/unread?marker"):
        await page.evaluate("() => fetch('/api/unread?marker')")


async def test_new_messages_wait_under_a_pill_while_the_agent_reads_up(browser, desk, fake_telegram):
    count = 80
    channel, token = await _seed_long_chat(desk, fake_telegram, count)
    page = await sign_in(browser, desk.url, "anna")
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if r.method == "POST" and r.url.endswith("/read") else None)
    row = page.locator(".chat-row", has_text="Olena Kovalenko")
    messages = page.locator("#message-list .msg")
    pill = page.locator("#new-messages")

    async def all_read():
        await eventually(lambda: _unread(desk, token, {"chats": 0, "messages": 0}))
        await expect(row.locator(".chat-unread")).to_be_hidden()

    # The agent opens the chat (that reads it) and at once scrolls up; three more arrive. They
    # wait below, counted on the pill, the message the agent reads stays put, and they stay unread.
    await page.clock.install()
    await page.clock.pause_at(dt.datetime.now() + dt.timedelta(seconds=1))
    await row.click()
    await expect(messages.last.locator(".msg-text")).to_have_text(f"Message {count:03}")
    await expect(pill).to_be_attached()
    await expect(pill).to_be_hidden()
    anchor = await page.evaluate(SCROLL_TO_JS, "Message 060")
    await _customer_writes(desk, channel, 40_001, ["One more thing", "The parcel is wet", "Photo coming"])
    await expect(pill).to_be_visible()
    await expect(pill.locator(".new-messages-count")).to_have_text("3")
    await expect(pill).to_contain_text("New messages")
    await expect(messages.last.locator(".msg-text")).to_have_text("Photo coming")
    assert abs(await page.evaluate(OFFSET_JS, anchor["id"]) - anchor["offset"]) <= 1
    await _settle(page)
    assert len(reads) == 1, reads  # the one on opening
    assert await desk.get("/api/unread", token) == {"chats": 1, "messages": 3}
    await page.clock.resume()
    await expect(row.locator(".chat-unread")).to_have_text("3")

    # Scrolling back down by hand is seeing them: the pill goes and the chat is read.
    await page.evaluate(SCROLL_JS, "bottom")
    await expect(pill).to_be_hidden()
    await all_read()

    # At the bottom the pane follows new messages, reads them, and shows no pill.
    await _customer_writes(desk, channel, 40_004, ["Hello?", "Anyone?"])
    await expect(messages.last.locator(".msg-text")).to_have_text("Anyone?")
    assert await page.evaluate(GAP_JS) < 2
    await all_read()
    await expect(pill).to_be_hidden()

    # Up again, one more arrives; the pill takes the agent down to it.
    await page.evaluate(SCROLL_TO_JS, "Message 050")
    await _customer_writes(desk, channel, 40_006, ["Here it is"])
    await expect(pill.locator(".new-messages-count")).to_have_text("1")
    await pill.click()
    await expect(pill).to_be_hidden()
    await expect(messages.last.locator(".msg-text")).to_have_text("Here it is")
    assert await page.evaluate(GAP_JS) < 2
    await all_read()
    assert page.errors == []


async def test_the_pill_fetches_the_newest_messages_when_the_window_moved_away(browser, desk, fake_telegram):
    count = 300
    channel, token = await _seed_long_chat(desk, fake_telegram, count)
    page = await sign_in(browser, desk.url, "anna")
    row = page.locator(".chat-row", has_text="Olena Kovalenko")
    await row.click()
    messages = page.locator("#message-list .msg")
    await expect(messages.last.locator(".msg-text")).to_have_text(f"Message {count}")
    await _scroll_through(page, "top")
    await expect(page.locator("#history-newer")).to_be_visible()  # the newest pages were let go

    await _customer_writes(desk, channel, 50_001, ["Still there?", "Hello?"])
    pill = page.locator("#new-messages")
    await expect(pill.locator(".new-messages-count")).to_have_text("2")
    await expect(row.locator(".chat-unread")).to_have_text("2")
    await expect(page.locator(".msg-text", has_text="Hello?")).to_have_count(0)
    await expect(messages.first.locator(".msg-text")).to_have_text("Message 001")

    await pill.click()
    await expect(pill).to_be_hidden()
    await expect(messages.last.locator(".msg-text")).to_have_text("Hello?")
    await expect(page.locator("#history-newer")).to_be_hidden()
    texts = await page.locator("#message-list .msg-text").all_text_contents()
    assert texts[-3:] == [f"Message {count}", "Still there?", "Hello?"]
    check_window(await page.evaluate(SNAPSHOT_JS))
    assert await page.evaluate(GAP_JS) < 2
    await eventually(lambda: _unread(desk, token, {"chats": 0, "messages": 0}))
    await expect(row.locator(".chat-unread")).to_be_hidden()
    assert page.errors == []
