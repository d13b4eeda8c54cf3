"""A provider from another package: installed with pip, found through the ``desk.providers`` entry
point by an app created afterwards, and carrying messages both ways with no change to Desk."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from desk.app import create_app
from desk.settings import Settings
from providers import discover
from tests.conftest import eventually

PACKAGE = Path(__file__).parent / "thirdparty" / "desk_echo_provider"
DISTRIBUTION = "desk-echo-provider"
SECRET = "echo-shared-secret"


def pip(*args: str) -> None:
    """Run pip of the interpreter running the tests (its environment is the one the app reads)."""
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def forget_echo() -> None:
    """Drop the import system's memory of the package (directory listings, the imported module)."""
    sys.modules.pop("desk_echo_provider", None)
    importlib.invalidate_caches()


def _installed() -> bool:
    try:
        distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def echo_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install the echo package into this environment for the module's tests; uninstall it after."""
    if _installed():  # left over by an interrupted run
        pip("uninstall", "--quiet", "--yes", DISTRIBUTION)
        forget_echo()
    assert discover().get("echo") is None, "the echo provider must not be found before it is installed"
    # Built from a copy: a build leaves build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("echo") / PACKAGE.name
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip("install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    forget_echo()
    try:
        yield
    finally:
        pip("uninstall", "--quiet", "--yes", DISTRIBUTION)
        forget_echo()


@pytest.fixture
async def client(echo_installed: None, aiohttp_client, settings: Settings):
    """A new app, created after the install: providers are discovered in ``create_app``."""
    return await aiohttp_client(create_app(settings))


class EchoTarget:
    """The echo messenger's side: records every reply POSTed to its send URL."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[tuple[dict[str, Any], str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.headers.get("X-Echo-Secret")))
        return web.json_response({"ok": True})


@pytest.fixture
async def echo_target(aiohttp_server) -> EchoTarget:
    """Serve an EchoTarget on a local port."""
    target = EchoTarget()
    app = web.Application()
    app.router.add_post("/send", target.handle)
    server = await aiohttp_server(app)
    target.url = f"http://{server.host}:{server.port}/send"
    return target


def test_the_package_declares_its_provider_in_the_entry_point_group(echo_installed):
    [echo] = [e for e in entry_points(group="desk.providers") if e.name == "echo"]
    assert echo.value == "desk_echo_provider:EchoProvider"
    assert echo.dist is not None and echo.dist.name == DISTRIBUTION
    # The code lives in the installed package, not in this repository.
    cls = echo.load()
    assert cls.__module__ == "desk_echo_provider"
    assert not Path(sys.modules[cls.__module__].__file__).resolve().is_relative_to(PACKAGE.resolve())
    assert distribution(DISTRIBUTION).version == "0.1.0"


async def test_the_installed_provider_is_listed_and_carries_messages_both_ways(desk, echo_target):
    _, token = await desk.operator("boss", role="admin")

    providers = {p["code"]: p for p in await desk.get("/api/providers", token)}
    assert {"echo", "api", "telegram", "facebook"} <= set(providers)
    assert providers["echo"] == {"code": "echo", "name": "Echo", "fields": [
        {"name": "send_url", "label": "Send URL", "type": "url", "required": True, "secret": False},
        {"name": "shared_secret", "label": "Shared secret", "type": "password", "required": True, "secret": True},
    ]}

    channel = await desk.call("POST", "/api/channels", token, {
        "provider": "echo", "name": "Echo", "config": {"send_url": echo_target.url, "shared_secret": SECRET}},
        status=201)
    assert channel["provider"] == "echo" and channel["registered"] is True

    webhook = f"/webhooks/{channel['id']}"
    raw = json.dumps({"id": "e-1", "from": "alice", "name": "Alice Liddell", "text": "Hello from echo"}).encode()
    refused = await desk.client.post(webhook, data=raw, headers={"X-Echo-Secret": "wrong"})
    assert refused.status == 403
    accepted = await desk.client.post(webhook, data=raw, headers={"X-Echo-Secret": SECRET})
    assert accepted.status == 200, await accepted.text()

    [chat] = await desk.get("/api/chats", token)
    assert (chat["provider"], chat["external_id"], chat["contact"]["name"]) == ("echo", "alice", "Alice Liddell")
    page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
    assert [m["text"] for m in page["messages"]] == ["Hello from echo"]

    reply = await desk.call("POST", f"/api/chats/{chat['id']}/messages", token, {"text": "Hi Alice"}, status=201)

    async def sent() -> bool:
        page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
        return page["messages"][-1]["status"] == "sent"
    await eventually(sent)
    assert echo_target.received == [({"to": "alice", "text": "Hi Alice", "desk_id": reply["id"]}, SECRET)]



async def test_the_installed_chat_action_is_offered_where_enabled_and_runs(desk, echo_target):
    _, token = await desk.operator("boss", role="admin")
    known = {a["code"] for a in await desk.get("/api/actions", token)}
    assert "echo_tag" in known
    channel = await desk.call("POST", "/api/channels", token, {
        "provider": "echo", "name": "Echo", "config": {"send_url": echo_target.url, "shared_secret": SECRET}},
        status=201)
    raw = json.dumps({"id": "e-1", "from": "alice", "name": "Alice", "text": "Hello"}).encode()
    assert (await desk.client.post(f"/webhooks/{channel['id']}", data=raw, headers={"X-Echo-Secret": SECRET})).status == 200
    [chat] = await desk.get("/api/chats", token)

    # A plug-in action is offered only on queues that enable it.
    assert "echo_tag" not in {a["code"] for a in await desk.get(f"/api/chats/{chat['id']}/actions", token)}
    queue = (await desk.get("/api/queues", token))[0]
    await desk.call("PATCH", f"/api/queues/{queue['id']}", token, {"actions": [*queue["actions"], "echo_tag"]})
    offered = await desk.get(f"/api/chats/{chat['id']}/actions", token)
    assert {"code": "echo_tag", "title": "Tag the customer"} in offered

    bad = await desk.call("POST", f"/api/chats/{chat['id']}/actions/echo_tag", token, {}, status=400)
    assert "URL" in bad["error"]["message"]
    result = await desk.call("POST", f"/api/chats/{chat['id']}/actions/echo_tag", token,
                             {"url": echo_target.url, "tag": "gold"})
    assert result["note"] == "Tagging the customer"
    await eventually(lambda: any(body.get("tag") == "gold" for body, _ in echo_target.received))
    [(body, _)] = [item for item in echo_target.received if item[0].get("tag")]
    assert body == {"tag": "gold", "chat_id": chat["id"], "contact": "alice"}

    async def noted() -> bool:
        page = await desk.get(f"/api/chats/{chat['id']}/messages", token)
        return page["messages"][-1]["text"] == "Tagged the customer gold"
    await eventually(noted)
