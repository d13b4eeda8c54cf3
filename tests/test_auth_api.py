"""Authentication of the API (CONTRACT §2) and the operator's own record and status."""

from __future__ import annotations

import base64
import re

import aiohttp

from desk.services import auth
from desk.store import Operator
from tests.conftest import PASSWORD

# OWASP Password Storage Cheat Sheet: Argon2id with one of these (memory KiB, iterations), p >= 1.
OWASP_ARGON2ID = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
OPERATOR_KEYS = {"id", "login", "name", "role", "status", "max_chats", "queue_ids", "enabled"}


async def error_of(response: aiohttp.ClientResponse, status: int) -> dict:
    """Assert the status and the JSON error shape of CONTRACT §2; return the error."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def api_routes(client) -> list[tuple[str, str]]:
    """Return (method, path) of every /api/ route, with ids filled in."""
    found = []
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path") or ""
        if not template.startswith("/api/") or route.method in ("HEAD", "OPTIONS"):
            continue
        found.append((route.method, re.sub(r"\{[^}]+\}", "1", template)))
    return found


async def test_sign_in(desk):
    anna, token = await desk.operator("anna")
    assert set(anna) == OPERATOR_KEYS
    assert anna["login"] == "anna" and anna["role"] == "agent" and anna["status"] == "offline"
    me = await desk.get("/api/operators/me", token)
    assert me == anna

    # A token is a fresh one at every sign-in; each works until revoked.
    response = await desk.client.post("/api/session", json={"login": "anna", "password": PASSWORD})
    second = (await response.json())["token"]
    assert second != token
    await desk.call("DELETE", "/api/session", token, status=204)
    await error_of(await desk.client.get("/api/operators/me", headers=desk.headers(token)), 401)
    assert await desk.get("/api/operators/me", second) == anna


async def test_wrong_credentials(desk):
    await desk.operator("anna")
    wrong = await error_of(await desk.client.post("/api/session", json={"login": "anna", "password": "nope-nope"}), 401)
    unknown = await error_of(await desk.client.post("/api/session", json={"login": "nobody", "password": "nope-nope"}), 401)
    # The answer does not tell which of the two was wrong.
    assert wrong == unknown
    await error_of(await desk.client.post("/api/session", json={"login": "anna"}), 400)
    await error_of(await desk.client.post("/api/session", json={"login": "anna", "password": 12345678}), 400)


async def test_every_api_route_needs_credentials(desk):
    _, token = await desk.operator("anna")
    routes = api_routes(desk.client)
    assert ("GET", "/api/chats") in routes and ("PATCH", "/api/operators/1") in routes
    for method, path in routes:
        if (method, path) == ("POST", "/api/session"):
            continue
        for headers in ({}, {"Authorization": "Bearer " + token[::-1]}, {"Authorization": "Basic YW5uYTpwdw=="}):
            response = await desk.client.request(method, path, json={}, headers=headers)
            error = await error_of(response, 401)
            assert error["code"] == "unauthorized", (method, path)


async def test_bad_json_is_a_bad_request(desk):
    _, token = await desk.operator("anna")
    bodies = (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"')
    for body in bodies:
        response = await desk.client.post("/api/session", data=body, headers={"Content-Type": "application/json"})
        await error_of(response, 400)
        response = await desk.client.put("/api/operators/me/status", data=body,
                                         headers={**desk.headers(token), "Content-Type": "application/json"})
        await error_of(response, 400)
    assert (await desk.get("/api/operators/me", token))["status"] == "offline"


async def test_sign_in_is_throttled_after_repeated_failures(desk, monkeypatch):
    monkeypatch.setattr(auth, "MAX_FAILURES", 3)
    _, token = await desk.operator("anna")
    for _ in range(3):
        await error_of(await desk.client.post("/api/session", json={"login": "anna", "password": "guess-guess"}), 401)
    # Now even the right password is refused for a while.
    error = await error_of(await desk.client.post("/api/session", json={"login": "anna", "password": PASSWORD}), 429)
    assert error["code"] != "unauthorized"
    # Tokens already issued keep working.
    await desk.get("/api/operators/me", token)


def argon2_parameters(encoded: str) -> tuple[str, int, dict[str, int], bytes]:
    """Decode a PHC string ``$argon2id$v=19$m=...,t=...,p=...$salt$hash``."""
    _, variant, version, params, salt, _digest = encoded.split("$")
    values = {key: int(value) for key, value in (pair.split("=") for pair in params.split(","))}
    return variant, int(version.removeprefix("v=")), values, base64.b64decode(salt + "=" * (-len(salt) % 4))


def assert_owasp(encoded: str) -> None:
    variant, version, params, salt = argon2_parameters(encoded)
    assert variant == "argon2id" and version == 19
    assert any(params["m"] >= m and params["t"] >= t for m, t in OWASP_ARGON2ID), params
    assert params["p"] >= 1
    assert len(salt) >= 16


async def test_password_hashes_are_argon2id_at_owasp_strength(desk):
    admin, admin_token = await desk.operator("boss", role="admin")
    assert_owasp(Operator.get_by_id(admin["id"]).password_hash)
    created = await desk.call("POST", "/api/operators", admin_token,
                              {"login": "anna", "name": "Anna", "password": "a long password"}, status=201)
    first = Operator.get_by_id(created["id"]).password_hash
    assert_owasp(first)
    assert "a long password" not in first
    await desk.call("PATCH", f"/api/operators/{created['id']}", admin_token, {"password": "another long one"})
    second = Operator.get_by_id(created["id"]).password_hash
    assert_owasp(second)
    assert second != first


async def test_my_status(desk):
    anna, token = await desk.operator("anna")
    for status in ("online", "busy", "offline", "busy"):
        me = await desk.call("PUT", "/api/operators/me/status", token, {"status": status})
        assert me == {**anna, "status": status}
    assert (await desk.get("/api/operators/me", token))["status"] == "busy"

    for body in ({"status": "away"}, {"status": None}, {"status": 1}, {}):
        response = await desk.client.put("/api/operators/me/status", json=body, headers=desk.headers(token))
        error = await error_of(response, 400)
        assert "status" in error["fields"]
    assert (await desk.get("/api/operators/me", token))["status"] == "busy"
