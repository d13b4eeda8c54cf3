"""Browser tests: headless Chromium (Debian's package) driven by Playwright against the real app.

They skip when /usr/bin/chromium is missing, unless DESK_TEST_BROWSER=1 or DESK_TEST_SERVICES=1
(as CI sets), where that fails.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from desk.app import create_app
from desk.settings import Settings
from tests.conftest import PASSWORD, Desk

CHROMIUM = os.environ.get("DESK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Playwright's waits for what the desk shows; generous because a shared CI box can be slow.
UI_TIMEOUT_MS = 10_000


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
    if os.environ.get("DESK_TEST_BROWSER") == "1" or os.environ.get("DESK_TEST_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def playwright():
    """Playwright's driver (skips without Chromium)."""
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        p.selectors.set_test_id_attribute("data-testid")
        yield p


@pytest.fixture
async def browser(playwright):
    """A headless Chromium."""
    instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    await instance.close()


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """The desk served on a fixed local port, so that it can be stopped and started again."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.client: TestClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, port: int | None = None) -> Desk:
        """Start a fresh app on the database; return the API helpers bound to it."""
        server = TestServer(create_app(self.settings), host="127.0.0.1", port=self.port if port is None else port)
        self.client = TestClient(server)
        await self.client.start_server()
        return Desk(self.client)

    async def open_port(self) -> None:
        """Serve the running app on the fixed port too (after it was started on another one)."""
        assert self.client is not None
        site = web.TCPSite(self.client.server.runner, "127.0.0.1", self.port)
        await site.start()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


async def close_pages(browser) -> None:
    """Close every page of the browser, so that its connections end from its side first.

    Stopping the server while Chromium still holds keep-alive and Socket.IO connections makes the
    server close them as the desk reconnects; a connection caught in between can be left to the
    garbage collector, which pytest (filterwarnings = error) reports as an unclosed transport.
    """
    for context in list(browser.contexts):
        await context.close()


@pytest.fixture
async def desk(client, browser) -> AsyncIterator[Desk]:
    """The app on a real local port, as in tests/conftest.py; the browser's pages close before it stops."""
    yield Desk(client)
    await close_pages(browser)


@pytest.fixture
async def live(settings: Settings, browser) -> AsyncIterator[Live]:
    """A restartable desk server (the ``desk`` fixture covers the usual case)."""
    server = Live(settings, free_port())
    yield server
    await close_pages(browser)
    await server.stop()


async def sign_in(browser, base_url: str, login: str, *, viewport=None):
    """Open a browser context, sign in through the form and wait until the desk is live."""
    context = await browser.new_context(viewport=viewport or {"width": 1360, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A CSP violation means something the desk needs is blocked: count it as an error.
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{base_url}/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}/")
    await wait_live(page)
    return page


async def wait_live(where) -> None:
    """Wait until the desk (in a page or a frame locator) has loaded its lists and is connected."""
    await where.locator('#app[data-loading="false"][data-connection="connected"]').wait_for(
        state="attached", timeout=UI_TIMEOUT_MS)


def telegram_text(update_id: int, user_id: int, text: str, *, first: str = "Olena", last: str = "Kovalenko",
                  username: str | None = "olena_k", message_id: int | None = None) -> dict:
    """Return a Telegram private-chat text update."""
    person = {"id": user_id, "is_bot": False, "first_name": first, "last_name": last}
    if username:
        person["username"] = username
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id or update_id % 1000,
            "from": person,
            "chat": {**{k: v for k, v in person.items() if k != "is_bot"}, "type": "private"},
            "date": 1782900101,
            "text": text,
        },
    }


def write_chromium_preferences(profile: Path, preferences: dict) -> None:
    """Write a Chromium profile's Preferences (what a user sets in chrome://settings)."""
    (profile / "Default").mkdir(parents=True, exist_ok=True)
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
