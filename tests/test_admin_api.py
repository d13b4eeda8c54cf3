"""The admin API (CONTRACT §5): providers, channels, queues, operators; agents read, never write."""

from __future__ import annotations

import aiohttp
import pytest

from desk.services.assignment import BUILTIN_ACTIONS
from tests.conftest import PASSWORD, TELEGRAM_TOKEN

CHANNEL_KEYS = {"id", "provider", "name", "enabled", "queue_id", "webhook_url", "registered", "registration_error"}
OPERATOR_KEYS = {"id", "login", "name", "role", "status", "max_chats", "queue_ids", "enabled"}
OTHER_TOKEN = "7099999999:AAH-second-bot"


async def error_of(response: aiohttp.ClientResponse, status: int) -> dict:
    """Assert the status and the JSON error shape; return the error."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


def telegram_body(fake, token: str = TELEGRAM_TOKEN, name: str = "Support bot") -> dict:
    return {"provider": "telegram", "name": name, "config": {"token": token, "api_base": fake.base_url}}


def text_update(update_id: int, chat_id: int = 6300001) -> dict:
    person = {"id": chat_id, "is_bot": False, "first_name": "Ivan"}
    return {"update_id": update_id, "message": {"message_id": update_id, "from": person,
                                                "chat": {**person, "type": "private"}, "date": 1782900101, "text": "hi"}}


@pytest.fixture
async def admin_token(desk) -> str:
    _, token = await desk.operator("boss", role="admin")
    return token


# --- providers and channels -------------------------------------------------------------------------


async def test_providers_list_their_fields(desk):
    _, token = await desk.operator("anna")
    providers = {p["code"]: p for p in await desk.get("/api/providers", token)}
    assert {"telegram", "facebook"} <= set(providers)
    for provider in providers.values():
        assert isinstance(provider["name"], str) and provider["name"]
        for field in provider["fields"]:
            assert set(field) >= {"name", "label", "type", "required", "secret"}
    fields = {code: {f["name"]: f for f in p["fields"]} for code, p in providers.items()}
    assert set(fields["telegram"]) == {"token", "api_base"}
    assert {"page_id", "page_token", "app_secret", "verify_token", "graph_base"} == set(fields["facebook"])
    for code, name in (("telegram", "token"), ("facebook", "page_token"), ("facebook", "app_secret")):
        assert fields[code][name]["secret"] is True and fields[code][name]["required"] is True
    for code, name in (("telegram", "api_base"), ("facebook", "page_id"), ("facebook", "graph_base")):
        assert fields[code][name]["secret"] is False
    assert fields["telegram"]["api_base"]["required"] is False


async def test_channel_with_a_bad_token_is_refused(desk, admin_token, fake_telegram):
    for token in ("7012345678:AAH-not-known", "not a token", ""):
        response = await desk.client.post("/api/channels", json=telegram_body(fake_telegram, token),
                                          headers=desk.headers(admin_token))
        error = await error_of(response, 400)
        assert "config.token" in error["fields"], error
    assert await desk.get("/api/channels", admin_token) == []
    assert fake_telegram.calls_of("setWebhook") == []


async def test_the_same_bot_twice_is_a_conflict(desk, admin_token, fake_telegram):
    first = await desk.call("POST", "/api/channels", admin_token, telegram_body(fake_telegram), status=201)
    response = await desk.client.post("/api/channels", json=telegram_body(fake_telegram, name="Again"),
                                      headers=desk.headers(admin_token))
    await error_of(response, 409)
    assert await desk.get("/api/channels", admin_token) == [first]


async def test_channel_json_never_shows_secrets(desk, admin_token, fake_telegram, fake_facebook):
    telegram = await desk.telegram_channel(admin_token, fake_telegram)
    facebook = await desk.facebook_channel(admin_token, fake_facebook)
    assert telegram["registered"] is True and telegram["registration_error"] is None
    assert telegram["webhook_url"] == f"http://desk.test/webhooks/{telegram['id']}"
    # Registered with the messenger under the channel's own secret.
    assert fake_telegram.webhook["url"] == telegram["webhook_url"]
    assert fake_telegram.webhook["secret_token"] == desk.channel_secret(telegram["id"])
    _, agent_token = await desk.operator("anna")

    secrets = [TELEGRAM_TOKEN, "EAAG-test-page-token", "fb-app-secret",
               desk.channel_secret(telegram["id"]), desk.channel_secret(facebook["id"])]
    bodies = []
    for token in (admin_token, agent_token):
        response = await desk.client.get("/api/channels", headers=desk.headers(token))
        bodies.append(await response.text())
        listed = await response.json()
        assert [set(c) for c in listed] == [CHANNEL_KEYS, CHANNEL_KEYS]
    for method, path, body in (("PATCH", f"/api/channels/{telegram['id']}", {"name": "Renamed"}),
                               ("POST", f"/api/channels/{telegram['id']}/register", None),
                               ("PATCH", f"/api/channels/{facebook['id']}", {"config": {"verify_token": "v2"}})):
        response = await desk.client.request(method, path, json=body, headers=desk.headers(admin_token))
        assert response.status == 200, await response.text()
        bodies.append(await response.text())
    for body in bodies:
        for secret in secrets:
            assert secret not in body


async def test_patch_and_delete_channel(desk, admin_token, fake_telegram):
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    url = f"/api/channels/{channel['id']}"

    renamed = await desk.call("PATCH", url, admin_token, {"name": "Sales bot", "queue_id": queue["id"]})
    assert renamed == {**channel, "name": "Sales bot", "queue_id": queue["id"]}

    disabled = await desk.call("PATCH", url, admin_token, {"enabled": False})
    assert disabled["enabled"] is False and disabled["registered"] is False
    assert fake_telegram.webhook["url"] == ""
    await desk.telegram_update(channel, text_update(1), status=404)

    enabled = await desk.call("PATCH", url, admin_token, {"enabled": True})
    assert enabled["enabled"] is True and enabled["registered"] is True
    assert fake_telegram.webhook["url"] == channel["webhook_url"]
    await desk.telegram_update(channel, text_update(2))
    [chat] = await desk.get("/api/chats", admin_token)
    assert chat["queue_id"] == queue["id"]

    await error_of(await desk.client.patch(url, json={"name": ""}, headers=desk.headers(admin_token)), 400)
    await error_of(await desk.client.patch("/api/channels/999", json={"name": "x"}, headers=desk.headers(admin_token)), 404)
    assert (await desk.call("POST", f"{url}/register", admin_token))["registered"] is True

    # A channel with chats stays (disable it instead); one without chats goes, webhook and all.
    await error_of(await desk.client.delete(url, headers=desk.headers(admin_token)), 409)
    assert [c["id"] for c in await desk.get("/api/channels", admin_token)] == [channel["id"]]
    fake_telegram.add_token(OTHER_TOKEN)
    other = await desk.call("POST", "/api/channels", admin_token, telegram_body(fake_telegram, OTHER_TOKEN, "Other"),
                            status=201)
    assert fake_telegram.webhook_for(OTHER_TOKEN)["url"] == other["webhook_url"]
    await desk.call("DELETE", f"/api/channels/{other['id']}", admin_token, status=204)
    assert [c["id"] for c in await desk.get("/api/channels", admin_token)] == [channel["id"]]
    assert fake_telegram.webhook_for(OTHER_TOKEN)["url"] == ""
    await error_of(await desk.client.delete(f"/api/channels/{other['id']}", headers=desk.headers(admin_token)), 404)


# --- queues -----------------------------------------------------------------------------------------


async def test_queues_crud(desk, admin_token):
    created = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    assert set(created) == {"id", "name", "routing", "actions"}
    assert created["name"] == "Billing" and created["routing"] in ("manual", "round_robin", "least_busy")
    assert set(created["actions"]) == set(BUILTIN_ACTIONS) | {"send_transcript"}
    robin = await desk.call("POST", "/api/queues", admin_token, {"name": "Sales", "routing": "round_robin"}, status=201)
    assert robin["routing"] == "round_robin"
    assert created in await desk.get("/api/queues", admin_token)

    for body, field in (({"name": ""}, "name"), ({}, "name"), ({"name": "X", "routing": "random"}, "routing"),
                        ({"name": "Y", "actions": ["explode"]}, "actions")):
        response = await desk.client.post("/api/queues", json=body, headers=desk.headers(admin_token))
        assert field in (await error_of(response, 400))["fields"]
    await error_of(await desk.client.post("/api/queues", json={"name": "Billing"}, headers=desk.headers(admin_token)), 409)

    url = f"/api/queues/{created['id']}"
    changed = await desk.call("PATCH", url, admin_token, {"name": "Invoices", "routing": "least_busy", "actions": ["close"]})
    assert changed == {"id": created["id"], "name": "Invoices", "routing": "least_busy", "actions": ["close"]}
    await error_of(await desk.client.patch(url, json={"routing": "random"}, headers=desk.headers(admin_token)), 400)
    await error_of(await desk.client.patch(url, json={"name": "Sales"}, headers=desk.headers(admin_token)), 409)
    assert changed in await desk.get("/api/queues", admin_token)

    await desk.call("DELETE", url, admin_token, status=204)
    assert created["id"] not in [q["id"] for q in await desk.get("/api/queues", admin_token)]
    await error_of(await desk.client.delete(url, headers=desk.headers(admin_token)), 404)
    await error_of(await desk.client.patch(url, json={"name": "Z"}, headers=desk.headers(admin_token)), 404)


# --- operators ---------------------------------------------------------------------------------------


async def sign_in(desk, login: str, password: str) -> aiohttp.ClientResponse:
    return await desk.client.post("/api/session", json={"login": login, "password": password})


async def test_operators_crud(desk, admin_token):
    queues = [q["id"] for q in await desk.get("/api/queues", admin_token)]
    extra = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    created = await desk.call("POST", "/api/operators", admin_token,
                              {"login": "anna", "name": "Anna", "password": "first password", "queue_ids": queues},
                              status=201)
    assert set(created) == OPERATOR_KEYS
    assert created["role"] == "agent" and created["status"] == "offline" and created["enabled"] is True
    assert created["queue_ids"] == queues and isinstance(created["max_chats"], int)
    assert created in await desk.get("/api/operators", admin_token)

    for body, field in (({"login": "bo", "name": "Bo", "password": "short"}, "password"),
                        ({"login": "bo", "name": "Bo", "password": "long enough", "role": "root"}, "role"),
                        ({"login": "bo", "name": "Bo", "password": "long enough", "queue_ids": [999]}, "queue_ids"),
                        ({"login": "", "name": "Bo", "password": "long enough"}, "login")):
        response = await desk.client.post("/api/operators", json=body, headers=desk.headers(admin_token))
        assert field in (await error_of(response, 400))["fields"]
    response = await desk.client.post("/api/operators", json={"login": "anna", "name": "A", "password": "long enough"},
                                      headers=desk.headers(admin_token))
    await error_of(response, 409)

    response = await sign_in(desk, "anna", "first password")
    token = (await response.json())["token"]
    url = f"/api/operators/{created['id']}"
    changed = await desk.call("PATCH", url, admin_token, {"name": "Anna K.", "role": "admin", "max_chats": 9,
                                                          "queue_ids": [extra["id"]], "status": "busy"})
    assert changed == {**created, "name": "Anna K.", "role": "admin", "max_chats": 9, "queue_ids": [extra["id"]],
                       "status": "busy"}
    assert await desk.get("/api/operators/me", token) == changed
    response = await desk.client.patch(url, json={"status": "away", "max_chats": -1}, headers=desk.headers(admin_token))
    assert {"status", "max_chats"} <= set((await error_of(response, 400))["fields"])

    await desk.call("PATCH", url, admin_token, {"password": "second password"})
    await error_of(await sign_in(desk, "anna", "first password"), 401)
    response = await sign_in(desk, "anna", "second password")
    assert response.status == 200
    token = (await response.json())["token"]

    # A disabled operator's token stops working, and they cannot sign in.
    disabled = await desk.call("PATCH", url, admin_token, {"enabled": False})
    assert disabled["enabled"] is False
    await error_of(await desk.client.get("/api/operators/me", headers=desk.headers(token)), 401)
    await error_of(await sign_in(desk, "anna", "second password"), 401)
    await desk.call("PATCH", url, admin_token, {"enabled": True})
    assert (await sign_in(desk, "anna", "second password")).status == 200

    await desk.call("DELETE", url, admin_token, status=204)
    assert created["id"] not in [op["id"] for op in await desk.get("/api/operators", admin_token)]
    await error_of(await sign_in(desk, "anna", "second password"), 401)
    await error_of(await desk.client.delete(url, headers=desk.headers(admin_token)), 404)


# --- agents -------------------------------------------------------------------------------------------


async def test_agents_read_lists_but_cannot_write(desk, admin_token, fake_telegram):
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    agent, token = await desk.operator("anna", queue_ids=[queue["id"]])
    lists = ("/api/providers", "/api/channels", "/api/queues", "/api/operators")

    async def state() -> list:
        return [await desk.get(path, admin_token) for path in lists] + [len(fake_telegram.calls)]

    before = await state()
    for path in lists:
        assert await desk.get(path, token) == await desk.get(path, admin_token)

    admin_id = next(op["id"] for op in before[3] if op["role"] == "admin")
    writes = [
        ("POST", "/api/channels", telegram_body(fake_telegram, name="Mine")),
        ("PATCH", f"/api/channels/{channel['id']}", {"enabled": False}),
        ("POST", f"/api/channels/{channel['id']}/register", None),
        ("DELETE", f"/api/channels/{channel['id']}", None),
        ("POST", "/api/queues", {"name": "Mine"}),
        ("PATCH", f"/api/queues/{queue['id']}", {"name": "Mine"}),
        ("DELETE", f"/api/queues/{queue['id']}", None),
        ("POST", "/api/operators", {"login": "eve", "name": "Eve", "password": PASSWORD}),
        ("PATCH", f"/api/operators/{agent['id']}", {"role": "admin"}),
        ("PATCH", f"/api/operators/{admin_id}", {"password": "taken over!"}),
        ("DELETE", f"/api/operators/{admin_id}", None),
    ]
    for method, path, body in writes:
        response = await desk.client.request(method, path, json=body, headers=desk.headers(token))
        error = await error_of(response, 403)
        assert error["code"] == "forbidden", (method, path)
    assert await state() == before
    assert (await desk.get("/api/operators/me", token))["role"] == "agent"
