"""A fake system behind an API channel: a real local aiohttp server that receives the desk's signed
callbacks (checking the signature the way docs/providers.md tells a system to) and serves files."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

SECRET = "fake-callback-secret-5f2c8e1a9b7d"
CALLBACK_PATH = "/hooks/desk"
# A callback whose timestamp is further than this from the receiver's clock is refused (replay).
TOLERANCE = 300


def sign(secret: str, body: bytes) -> str:
    """Return the X-Desk-Signature a system puts on a webhook body: HMAC-SHA256 of the raw bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclasses.dataclass
class Callback:
    """One callback the fake found authentic: its JSON, raw body, headers and arrival (monotonic seconds)."""

    payload: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    at: float


@dataclasses.dataclass
class _Failure:
    status: int
    text: str
    headers: dict[str, str]
    times: int


class FakeCallback:
    """The system's side: ``url`` is the channel's callback URL, ``secret`` its hmac_secret."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.base_url = ""
        # Every authentic callback, in order, failed or not.
        self.attempts: list[Callback] = []
        # The authentic callbacks answered 2xx: what the system actually took.
        self.accepted: list[Callback] = []
        # Callbacks refused for a missing, wrong or stale signature.
        self.rejected: list[dict[str, str]] = []
        # Files served under base_url: path -> (bytes, content type); every GET is recorded.
        self.files: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[str] = []
        # Paths that answer 302 to another location.
        self.redirects: dict[str, str] = {}
        # Answer accepted messages with {"id": "ext-N"}; False answers 204 without a body.
        self.answer_ids = True
        self._failures: list[_Failure] = []

    @property
    def url(self) -> str:
        """Return the callback URL to configure on the channel."""
        return self.base_url + CALLBACK_PATH

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Return the accepted callbacks of type "message", in order."""
        return [c.payload for c in self.accepted if c.payload.get("type") == "message"]

    def fail_next(self, status: int, text: str = "", *, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` authentic callbacks with ``status``, ``text`` and ``headers``."""
        self._failures.append(_Failure(status, text, headers or {}, times))

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CALLBACK_PATH, self._callback)
        app.router.add_get("/{tail:.*}", self._file)
        return app

    def _authentic(self, request: web.Request, body: bytes) -> bool:
        stamp = request.headers.get("X-Desk-Timestamp", "")
        given = request.headers.get("X-Desk-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
            return False
        expected = sign(self.secret, stamp.encode() + b"." + body)
        return hmac.compare_digest(given.encode(), expected.encode())

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._authentic(request, body):
            self.rejected.append(dict(request.headers))
            return web.json_response({"error": "bad signature"}, status=401)
        callback = Callback(json.loads(body), body, dict(request.headers), time.monotonic())
        self.attempts.append(callback)
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            return web.Response(status=failure.status, text=failure.text, headers=failure.headers)
        self.accepted.append(callback)
        if callback.payload.get("type") != "message" or not self.answer_ids:
            return web.Response(status=204)
        return web.json_response({"id": f"ext-{len(self.accepted)}"})

    async def _file(self, request: web.Request) -> web.Response:
        self.downloads.append(request.path)
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        if request.path not in self.files:
            return web.Response(status=404, text="Not Found")
        data, content_type = self.files[request.path]
        return web.Response(body=data, headers={"Content-Type": content_type})


@pytest.fixture
async def fake_callback(aiohttp_server: Any) -> AsyncIterator[FakeCallback]:
    """Serve a fresh FakeCallback on a local port."""
    fake = FakeCallback()
    server = await aiohttp_server(fake.app())
    fake.base_url = f"http://{server.host}:{server.port}"
    yield fake
