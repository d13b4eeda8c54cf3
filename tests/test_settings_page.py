"""The settings page over HTTP (CONTRACT §5): who may open it, its headers, what its HTML holds
and does not hold, and the read-only routes its script uses (actions, a channel's settings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from desk.services.assignment import BUILTIN_ACTIONS
from tests.conftest import TELEGRAM_TOKEN
from tests.test_pages import csp, origin_of, parse, sign_in

STATIC = Path(__file__).resolve().parents[1] / "static"
IMPORT = re.compile(r'^import\s[^;]*?from\s+"([^"]+)";', re.MULTILINE | re.DOTALL)


async def test_anonymous_visitors_are_sent_to_sign_in_and_come_back(client, desk):
    await desk.operator("boss", role="admin")
    response = await client.get("/settings", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login?next=/settings"
    # A bearer token is for the API: pages go by the session cookie only.
    _, token = await desk.operator("root", role="admin")
    bearer = await client.get("/settings", headers=desk.headers(token), allow_redirects=False)
    assert bearer.status == 302 and bearer.headers["Location"].startswith("/login")

    form = await client.get("/login?next=/settings")
    assert 'name="next" value="/settings"' in await form.text()
    signed = await client.post("/login", data={"login": "boss", "password": "correct horse battery", "next": "/settings"},
                               headers={"Origin": origin_of(client)}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/settings"
    assert (await client.get("/settings")).status == 200


async def test_an_agent_gets_a_403_page_and_no_link(client, desk):
    await desk.operator("anna")
    await sign_in(client, "anna")
    response = await client.get("/settings", headers={"Accept": "text/html"})
    assert response.status == 403 and response.content_type == "text/html"
    body = await response.text()
    assert "Only admins open the settings" in body and 'id="settings-config"' not in body
    assert csp(response)["script-src"] == "'self'"
    desk_page = await (await client.get("/")).text()
    assert 'href="/settings"' not in desk_page


async def test_an_admin_gets_the_page_with_its_script_and_csp(client, desk):
    admin, _ = await desk.operator("boss", role="admin", name="Maria Jensen")
    await sign_in(client, "boss")
    response = await client.get("/settings")
    assert response.status == 200 and response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    policy = csp(response)
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert policy["frame-ancestors"] == "'none'"
    page = parse(await response.text())
    assert page.inline_handlers == []
    sources = [s.get("src") for s in page.scripts if s.get("src")]
    assert sources == ["/static/js/settings.js"]
    assert all(s.get("src", "").startswith("/static/") or s.get("type") == "application/json" for s in page.scripts)
    text = " ".join(page.text)
    for section in ("Channels", "Operators", "Queues", "Embedding & transcript"):
        assert section in text
    # The page's script needs the CSRF token for its writes, and who is signed in.
    body = await response.text()
    config = re.search(r'<script type="application/json" id="settings-config">(.*?)</script>', body, re.DOTALL)
    assert config is not None
    data = json.loads(config.group(1))
    assert data["mode"] == "cookie" and data["csrf"] and data["me"]["id"] == admin["id"]
    # The desk links here for admins.
    assert 'href="/settings"' in await (await client.get("/")).text()


async def test_every_module_the_page_imports_is_served(client, desk):
    await desk.operator("boss", role="admin")
    await sign_in(client, "boss")
    seen: set[str] = set()
    pending = ["/static/js/settings.js", "/static/settings.css"]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(path)
        assert response.status == 200, path
        if path.endswith(".js"):
            assert response.content_type in ("application/javascript", "text/javascript"), path
            base = path.rsplit("/", 1)[0]
            for target in IMPORT.findall(await response.text()):
                parts = (base + "/" + target).split("/")
                resolved: list[str] = []
                for part in parts:
                    if part == "..":
                        resolved.pop()
                    elif part not in (".", ""):
                        resolved.append(part)
                pending.append("/" + "/".join(resolved))
    assert "/static/js/settings/channels.js" in seen and "/static/js/api.js" in seen


async def test_no_secret_is_in_the_html(client, desk, fake_telegram, fake_facebook):
    _, token = await desk.operator("boss", role="admin")
    telegram = await desk.telegram_channel(token, fake_telegram)
    facebook = await desk.facebook_channel(token, fake_facebook)
    settings = await desk.get("/api/settings", token)
    await sign_in(client, "boss")
    body = await (await client.get("/settings")).text()
    secrets = [TELEGRAM_TOKEN, "EAAG-test-page-token", "fb-app-secret", settings["embed_secret"],
               settings["transcript_secret"], desk.channel_secret(telegram["id"]), desk.channel_secret(facebook["id"])]
    for secret in secrets:
        assert secret not in body
    # The session token itself is in the HttpOnly cookie, never in the page.
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["desk_session"].value
    assert session not in body


async def test_actions_route_lists_every_action_for_admins_only(desk):
    _, admin_token = await desk.operator("boss", role="admin")
    _, agent_token = await desk.operator("anna")
    actions = await desk.get("/api/actions", admin_token)
    codes = [a["code"] for a in actions]
    assert codes[:3] == list(BUILTIN_ACTIONS)
    assert all(isinstance(a["title"], str) and a["title"] for a in actions)
    # The ones ticked for a new queue are the ones a new queue gets.
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    assert [a["code"] for a in actions if a["default"]] == queue["actions"]
    await desk.get("/api/actions", agent_token, status=403)


async def test_channel_config_shows_only_fields_that_are_not_secret(desk, fake_telegram, fake_facebook):
    _, admin_token = await desk.operator("boss", role="admin")
    _, agent_token = await desk.operator("anna")
    telegram = await desk.telegram_channel(admin_token, fake_telegram)
    facebook = await desk.facebook_channel(admin_token, fake_facebook)
    assert await desk.get(f"/api/channels/{telegram['id']}/config", admin_token) == {"api_base": fake_telegram.base_url}
    assert await desk.get(f"/api/channels/{facebook['id']}/config", admin_token) == {
        "page_id": "108765432109876", "verify_token": "verify-me", "graph_base": fake_facebook.graph_base}
    await desk.get(f"/api/channels/{telegram['id']}/config", agent_token, status=403)
    await desk.get("/api/channels/999/config", admin_token, status=404)
