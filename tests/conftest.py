"""Shared fixtures: the real app on a temporary database, fake messengers served over local HTTP,
operators and their tokens, and a Socket.IO client."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import peewee
import playhouse.db_url
import pytest
import socketio

from desk.app import create_app
from desk.services import auth
from desk.settings import Settings
from desk.store import Channel
from tests.fakes.api_callback import fake_callback  # noqa: F401  (pytest fixture)
from tests.fakes.facebook import fake_facebook  # noqa: F401  (pytest fixture)
from tests.fakes.telegram import fake_telegram  # noqa: F401  (pytest fixture)

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "correct horse battery"
TELEGRAM_TOKEN = "7012345678:AAH-test-token"


def fixture_bytes(provider: str, name: str) -> bytes:
    """Return a captured payload's exact bytes."""
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str) -> dict:
    """Return a captured payload, parsed."""
    return json.loads(fixture_bytes(provider, name))


def database_url(tmp_path: Path) -> str:
    """Return the database the tests run on: SQLite in tmp_path, or DESK_TEST_DATABASE_URL (emptied first)."""
    url = os.environ.get("DESK_TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path / 'desk.db'}"
    reset_database(url)
    return url


def reset_database(url: str) -> None:
    """Drop every table of a server database so that each test starts from an empty schema."""
    try:
        db = playhouse.db_url.connect(url)
        db.connect()
    except peewee.OperationalError as exc:
        if os.environ.get("DESK_TEST_SERVICES") == "1":
            raise
        pytest.skip(f"PostgreSQL is not reachable at {url} ({exc}); start it or unset DESK_TEST_DATABASE_URL")
    try:
        tables = db.get_tables()
        if tables:
            db.execute_sql("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    finally:
        db.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: its own database and media folder, quick job polling."""
    return Settings(
        database_url=database_url(tmp_path),
        media_dir=tmp_path / "media",
        public_url="http://desk.test",
        job_poll=0.05,
        job_lease=5.0,
    )


@pytest.fixture
async def client(aiohttp_client, settings: Settings):
    """A test client of the real app, served on a real local port."""
    app = create_app(settings)
    return await aiohttp_client(app)


class Desk:
    """Helpers to drive the app the way its users do."""

    def __init__(self, client) -> None:
        self.client = client

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def operator(self, login: str, *, role: str = "agent", queue_ids: list[int] | None = None,
                       name: str | None = None, max_chats: int = 5) -> tuple[dict, str]:
        """Create an operator and sign in; return (operator object, bearer token)."""
        await auth.create_operator(login, name or login.title(), PASSWORD, role=role, queue_ids=queue_ids,
                                   max_chats=max_chats)
        response = await self.client.post("/api/session", json={"login": login, "password": PASSWORD})
        assert response.status == 200, await response.text()
        body = await response.json()
        return body["operator"], body["token"]

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, token: str, status: int = 200):
        response = await self.client.get(path, headers=self.headers(token))
        assert response.status == status, f"{path}: {response.status} {await response.text()}"
        return await response.json() if response.content_type == "application/json" else await response.read()

    async def call(self, method: str, path: str, token: str, body=None, status: int = 200):
        response = await self.client.request(method, path, json=body, headers=self.headers(token))
        assert response.status == status, f"{method} {path}: {response.status} {await response.text()}"
        if response.status == 204:
            return None
        return await response.json()

    async def telegram_channel(self, admin_token: str, fake, *, name: str = "Support bot", queue_id: int | None = None) -> dict:
        """Connect a Telegram channel against the fake Bot API."""
        body = {"provider": "telegram", "name": name, "config": {"token": TELEGRAM_TOKEN, "api_base": fake.base_url}}
        if queue_id is not None:
            body["queue_id"] = queue_id
        return await self.call("POST", "/api/channels", admin_token, body, status=201)

    async def facebook_channel(self, admin_token: str, fake, *, page_id: str = "108765432109876",
                               token: str = "EAAG-test-page-token", app_secret: str = "fb-app-secret") -> dict:
        """Connect a Facebook page against the fake Graph API."""
        body = {"provider": "facebook", "name": f"Page {page_id}", "config": {
            "page_id": page_id, "page_token": token, "app_secret": app_secret, "verify_token": "verify-me",
            "graph_base": fake.graph_base}}
        return await self.call("POST", "/api/channels", admin_token, body, status=201)

    def channel_secret(self, channel_id: int) -> str:
        return Channel.get_by_id(channel_id).secret

    async def telegram_update(self, channel: dict, update: dict | bytes, *, secret: str | None = None, status: int = 200):
        """Post a Telegram update to the channel's webhook, as Telegram does."""
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = {"Content-Type": "application/json",
                   "X-Telegram-Bot-Api-Secret-Token": secret if secret is not None else self.channel_secret(channel["id"])}
        response = await self.client.post(f"/webhooks/{channel['id']}", data=body, headers=headers)
        assert response.status == status, await response.text()
        return response

    async def socket(self, token: str, events: list | None = None) -> tuple[socketio.AsyncClient, list]:
        """Connect a real Socket.IO client with the token; record every event as (name, payload)."""
        received = [] if events is None else events
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("*")
        async def any_event(name, data):  # noqa: ANN001
            received.append((name, data))

        await sio.connect(self.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
        return sio, received


@pytest.fixture
def desk(client) -> Desk:
    """The helpers bound to the test's client."""
    return Desk(client)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true (for work done after an answer: pushes, sends, downloads)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
