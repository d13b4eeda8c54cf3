"""The browser pages over HTTP: first-run setup, sign in and out, security headers, embed tokens."""

from __future__ import annotations

import base64
import dataclasses
import html.parser
import json
import time

import jwt
import pytest

from desk.app import create_app
from desk.services import auth
from desk.store import Operator, Setting
from tests.conftest import PASSWORD


class PageParser(html.parser.HTMLParser):
    """Collect the scripts, the desk config and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_handlers: list[str] = []
        self.config: dict | None = None
        self._in_config = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline_handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attrs)
            self._in_config = attrs.get("id") == "desk-config"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_config = False

    def handle_data(self, data):
        if self._in_config:
            self.config = json.loads(data)
        else:
            self.text.append(data)


def parse(body: str) -> PageParser:
    parser = PageParser()
    parser.feed(body)
    return parser


def origin_of(client) -> str:
    return str(client.make_url("")).rstrip("/")


def csp(response) -> dict[str, str]:
    """Return the CSP header as {directive: sources}."""
    policy = response.headers.get("Content-Security-Policy", "")
    parts = [p.strip().split(None, 1) for p in policy.split(";") if p.strip()]
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


async def sign_in(client, login: str, password: str = PASSWORD):
    return await client.post("/login", data={"login": login, "password": password}, allow_redirects=False,
                             headers={"Origin": origin_of(client)})


async def test_setup_creates_the_first_admin_only_while_no_operator_exists(client):
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/setup"
    assert (await client.get("/login", allow_redirects=False)).headers["Location"] == "/setup"
    form = await client.get("/setup")
    assert form.status == 200 and 'action="/setup"' in await form.text()

    short = await client.post("/setup", data={"login": "root", "name": "Root", "password": "short"},
                              allow_redirects=False)
    assert short.status == 400 and "8 characters" in await short.text()
    assert Operator.select().count() == 0

    created = await client.post("/setup", data={"login": "root", "name": "Root Admin", "password": PASSWORD},
                                allow_redirects=False)
    assert created.status == 303 and created.headers["Location"] == "/"
    admin = Operator.get(Operator.login == "root")
    assert admin.role == "admin"
    desk = await client.get("/", allow_redirects=False)  # the new admin is signed in
    assert desk.status == 200 and "Root Admin" in await desk.text()

    again = await client.get("/setup", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"] == "/login"
    client.session.cookie_jar.clear()
    second = await client.post("/setup", data={"login": "intruder", "name": "X", "password": PASSWORD},
                               allow_redirects=False)
    assert second.status == 302
    assert [op.login for op in Operator.select()] == ["root"]


async def test_login_sets_an_httponly_lax_cookie_and_logout_needs_the_csrf_token(client, desk):
    await desk.operator("anna")
    wrong = await sign_in(client, "anna", "not the password")
    assert wrong.status == 401 and "Wrong login or password" in await wrong.text()
    assert "Set-Cookie" not in wrong.headers

    response = await sign_in(client, "anna")
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert cookie.startswith("desk_session=")
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # served over plain http here

    page = await client.get("/")
    assert page.status == 200
    config = parse(await page.text()).config
    assert config["mode"] == "cookie" and config["token"] is None and config["me"]["login"] == "anna"
    # The session cookie authenticates the API; reads need nothing more.
    assert (await client.get("/api/operators/me")).status == 200
    assert (await client.get("/login", allow_redirects=False)).headers["Location"] == "/"

    refused = await client.post("/logout", data={}, headers={"Origin": origin_of(client)}, allow_redirects=False)
    assert refused.status == 403
    foreign = await client.post("/logout", data={"csrf_token": config["csrf"]},
                                headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert foreign.status == 403
    assert (await client.get("/api/operators/me")).status == 200

    out = await client.post("/logout", data={"csrf_token": config["csrf"]}, headers={"Origin": origin_of(client)},
                            allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    assert (await client.get("/api/operators/me")).status == 401
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/login"


async def test_sign_in_returns_only_to_a_page_of_this_site(client, desk):
    await desk.operator("anna")
    for target, expected in (("/#chat-3", "/#chat-3"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
                             ("/\\evil.example", "/"), ("/\t/evil.example", "/")):
        response = await client.post("/login", data={"login": "anna", "password": PASSWORD, "next": target},
                                     allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == expected, target
        client.session.cookie_jar.clear()


async def test_login_from_another_site_is_refused(client, desk):
    await desk.operator("anna")
    response = await client.post("/login", data={"login": "anna", "password": PASSWORD}, allow_redirects=False,
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403 and "Set-Cookie" not in response.headers


async def test_login_is_rate_limited(client, desk):
    await desk.operator("anna")
    for _ in range(auth.MAX_FAILURES):
        assert (await sign_in(client, "anna", "wrong password")).status == 401
    blocked = await sign_in(client, "anna")  # even the right password waits now
    assert blocked.status == 429 and "Set-Cookie" not in blocked.headers


async def test_pages_carry_a_csp_without_inline_scripts(client, desk):
    await desk.operator("anna")
    await sign_in(client, "anna")
    for path in ("/login", "/"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "text/html"
        policy = csp(response)
        assert policy["script-src"] == "'self'"
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert policy["frame-ancestors"] == "'none'"
        assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        page = parse(await response.text())
        assert page.inline_handlers == []
        for script in page.scripts:  # every script is a file of the desk, or inert JSON data
            assert script.get("src", "").startswith("/static/") or script.get("type") == "application/json"
    api = await client.get("/api/operators/me")
    assert csp(api)["frame-ancestors"] == "'none'" and api.headers["X-Content-Type-Options"] == "nosniff"
    script = await client.get("/static/desk.js")
    assert script.status == 200 and script.headers["Cache-Control"] == "no-cache" and "ETag" in script.headers
    missing = await client.get("/no/such/page", headers={"Accept": "text/html"})
    assert missing.status == 404 and missing.content_type == "text/html"
    assert csp(missing)["script-src"] == "'self'" and "Page not found" in await missing.text()


@pytest.fixture
async def embed_client(aiohttp_client, settings):
    """The app with two origins allowed to frame it by flag, as ``--embed-origins`` sets them."""
    settings = dataclasses.replace(settings, embed_origins=("https://intranet.example", "http://localhost:9000"),
                                   embed_secret="embed-secret-for-tests-0123456789abcdef")
    return await aiohttp_client(create_app(settings))


async def test_frame_ancestors_come_from_the_allow_list(embed_client):
    response = await embed_client.get("/login")
    assert csp(response)["frame-ancestors"].split() == ["https://intranet.example", "http://localhost:9000"]
    assert "X-Frame-Options" not in response.headers

    # The settings page's list is added to the flag's; anything that is not an origin is dropped.
    Setting.create(key="embed_origins", value=json.dumps(
        ["https://portal.example:8443", "https://intranet.example", "https://x.example; script-src *",
         "https://y.example\n", "https://z.example/path", 42]))
    response = await embed_client.get("/login")
    assert csp(response)["frame-ancestors"].split() == [
        "https://intranet.example", "http://localhost:9000", "https://portal.example:8443"]
    assert csp(response)["script-src"] == "'self'"


def embed_token(sub: str, *, secret: str = "embed-secret-for-tests-0123456789abcdef", exp: float | None = 300,
                **claims) -> str:
    payload = {"sub": sub, **claims}
    if exp is not None:
        payload["exp"] = int(time.time() + exp)
    return jwt.encode(payload, secret, algorithm="HS256")


def unsigned_token(sub: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': sub, 'exp': int(time.time()) + 300})}."


async def test_embed_token_opens_the_desk_with_a_bearer_token_and_no_cookie(embed_client):
    await auth.create_operator("anna", "Anna Agent", PASSWORD)
    response = await embed_client.get("/embed", params={"token": embed_token("anna")})
    assert response.status == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert csp(response)["frame-ancestors"].split() == ["https://intranet.example", "http://localhost:9000"]
    config = parse(await response.text()).config
    assert config["mode"] == "token" and config["csrf"] is None
    assert config["origins"] == ["https://intranet.example", "http://localhost:9000"]
    embed_client.session.cookie_jar.clear()
    me = await embed_client.get("/api/operators/me", headers={"Authorization": f"Bearer {config['token']}"})
    assert me.status == 200 and (await me.json())["login"] == "anna"
    # A bearer request changes state without CSRF token (the embedded desk has no cookie).
    status = await embed_client.put("/api/operators/me/status", json={"status": "online"},
                                    headers={"Authorization": f"Bearer {config['token']}"})
    assert status.status == 200 and (await status.json())["status"] == "online"


@pytest.mark.parametrize("case", ["expired", "forged", "unsigned", "unknown", "no_exp", "no_token", "disabled"])
async def test_a_bad_embed_token_is_refused(embed_client, case):
    op = await auth.create_operator("anna", "Anna Agent", PASSWORD)
    token = {
        "expired": lambda: embed_token("anna", exp=-60),
        "forged": lambda: embed_token("anna", secret="someone else's secret, long enough for HS256"),
        "unsigned": lambda: unsigned_token("anna"),
        "unknown": lambda: embed_token("nobody"),
        "no_exp": lambda: embed_token("anna", exp=None),
        "no_token": lambda: "",
        "disabled": lambda: embed_token("anna"),
    }[case]()
    if case == "disabled":
        Operator.update(enabled=False).where(Operator.id == op.id).execute()
    response = await embed_client.get("/embed", params={"token": token})
    assert response.status == 403
    body = await response.text()
    assert "desk-config" not in body and "Set-Cookie" not in response.headers


async def test_names_and_form_values_are_escaped(client):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await auth.create_operator("eve", evil, PASSWORD)
    await sign_in(client, "eve")
    body = await (await client.get("/")).text()
    assert "<script>alert" not in body and "<img src=x" not in body
    page = parse(body)
    assert page.inline_handlers == []
    assert evil in "".join(page.text)  # shown as the text it is
    assert page.config["me"]["name"] == evil  # and intact in the config, as JSON

    client.session.cookie_jar.clear()
    again = await client.post("/login", data={"login": '"><script>alert(2)</script>', "password": "x"},
                              headers={"Origin": origin_of(client)})
    text = await again.text()
    assert again.status == 401 and "<script>alert(2)" not in text and "&#34;&gt;&lt;script&gt;" in text
