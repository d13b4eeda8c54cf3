"""A fake Graph API and Meta CDN, served over local HTTP, speaking the real protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facebook"
GRAPH_VERSION = "v25.0"
DEFAULT_PAGE_ID = "108765432109876"
DEFAULT_PAGE_NAME = "Acme Support"
DEFAULT_PAGE_TOKEN = "EAAG-test-page-token"
# Send API: message.text must be at most 2000 characters.
MAX_TEXT = 2000


def fixture(name: str) -> Any:
    """Load a Facebook fixture file as JSON."""
    return json.loads((FIXTURES / name).read_bytes())


def graph_error(message: str, code: int, subcode: int | None = None) -> dict[str, Any]:
    """Build Graph's error envelope."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Fake"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@dataclasses.dataclass
class _Failure:
    suffix: str
    status: int
    body: Any
    times: int
    # calls that pass before this failure applies
    after: int = 0


class FakeFacebook:
    """Graph API (pages, subscribed_apps, Send API, User Profile API) and a CDN on one local server."""

    def __init__(self) -> None:
        self.base_url = ""
        self.graph_base = ""
        self.pages: dict[str, dict[str, str]] = {
            DEFAULT_PAGE_ID: {"name": DEFAULT_PAGE_NAME, "token": DEFAULT_PAGE_TOKEN}
        }
        # Every Graph call in order: (method, path, query, JSON or form body or None).
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        # Every accepted Send API body (multipart: recipient/message parsed, filedata as a dict),
        # and the message_id Graph gave each (the mid of its echo).
        self.sent: list[dict[str, Any]] = []
        self.message_ids: list[str] = []
        # Served under base_url: path -> (bytes, content type).
        self.cdn: dict[str, tuple[bytes, str]] = {}
        # CDN paths answered without Content-Length (chunked), and paths that redirect.
        self.cdn_chunked: set[str] = set()
        self.cdn_redirects: dict[str, str] = {}
        self.subscribed: set[str] = set()
        self.subscribed_fields: dict[str, list[str]] = {}
        profile = fixture("facebook_profile.json")
        self.profiles: dict[str, dict[str, Any]] = {profile["id"]: profile}
        self._failures: list[_Failure] = []
        self._message_seq = 0
        # While this event is unset, Send API answers wait for it (the message is in ``sent``
        # already): Meta's echo of a message can reach the webhook before the sender has the answer.
        self.hold_answers: asyncio.Event | None = None
        # Send API calls (counted down) that Meta accepts but whose answer never comes back: the
        # connection drops, as after a timeout or a network failure on the way back.
        self._drops: list[bool] = []

    def fail_next(self, path_suffix: str, status: int, body: Any, times: int = 1, *, after: int = 0) -> None:
        """Answer ``times`` Graph calls whose path ends with ``path_suffix`` with ``status`` and ``body``.

        The next ``after`` such calls pass first.
        """
        self._failures.append(_Failure(path_suffix, status, body, times, after))

    def drop_answers(self, times: int = 1, *, after: int = 0) -> None:
        """Accept ``times`` Send API messages (after ``after`` more), then drop the connection unanswered.

        The message is in ``sent`` (its echo may follow), but the sender gets no ``message_id``:
        with ``hold_answers`` set, the connection drops only once the event is set.
        """
        self._drops = [False] * after + [True] * times

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        prefix = f"/{GRAPH_VERSION}/"
        if not request.path.startswith(prefix):
            return await self._cdn(request)
        body = await self._body(request)
        self.calls.append((request.method, request.path, dict(request.query), body))
        failure = self._failure(request.path)
        if failure is not None:
            return failure
        page_id = self._page_of_token(request.query.get("access_token", ""))
        if page_id is None:
            return web.json_response(fixture("facebook_error_token_invalid.json"), status=400)
        parts = request.path[len(prefix) :].split("/")
        if parts == ["me"] and request.method == "GET":
            return web.json_response({"id": page_id, "name": self.pages[page_id]["name"]})
        if len(parts) == 2 and parts[1] == "messages" and request.method == "POST":
            if parts[0] not in ("me", page_id):
                return self._permission_error()
            answer = self._send(body)
            drop = self._drops.pop(0) if self._drops and answer.status == 200 else False
            if self.hold_answers is not None:
                await self.hold_answers.wait()
            if drop and request.transport is not None:
                request.transport.abort()  # no answer at all: the client sees the connection reset
            return answer
        if len(parts) == 2 and parts[1] == "subscribed_apps":
            if parts[0] != page_id:
                return self._permission_error()
            return self._subscribed_apps(request, page_id)
        if len(parts) == 1 and request.method == "GET":
            return self._node(parts[0], request.query.get("fields", ""))
        return web.json_response(graph_error("(#100) Unknown path components", 100), status=400)

    async def _body(self, request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        if request.content_type == "multipart/form-data":
            form: dict[str, Any] = {}
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.filename is not None:
                    form[part.name] = {
                        "filename": part.filename,
                        "content_type": part.headers.get("Content-Type"),
                        "data": bytes(data),
                    }
                else:
                    form[part.name] = bytes(data).decode("utf-8")
            return form
        raw = await request.read()
        if request.content_type == "application/json":
            return json.loads(raw)
        if request.content_type == "application/x-www-form-urlencoded":
            return dict(await request.post())
        return raw.decode("utf-8", "replace")

    def _failure(self, path: str) -> web.Response | None:
        for failure in self._failures:
            if path.endswith(failure.suffix):
                if failure.after > 0:
                    failure.after -= 1
                    return None
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                if isinstance(failure.body, (dict, list)):
                    return web.json_response(failure.body, status=failure.status)
                text = failure.body.decode() if isinstance(failure.body, bytes) else str(failure.body)
                return web.Response(status=failure.status, text=text, content_type="text/html")
        return None

    def _page_of_token(self, token: str) -> str | None:
        for page_id, page in self.pages.items():
            if token and page["token"] == token:
                return page_id
        return None

    @staticmethod
    def _permission_error() -> web.Response:
        return web.json_response(graph_error("(#200) Permissions error", 200), status=403)

    # Send API

    def _send(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return web.json_response(graph_error("(#100) param recipient must be non-empty.", 100), status=400)
        if "filedata" in body:
            try:
                sent = {
                    "recipient": json.loads(body.get("recipient", "null")),
                    "messaging_type": body.get("messaging_type"),
                    "message": json.loads(body.get("message", "null")),
                    "filedata": body["filedata"],
                }
            except ValueError:
                return web.json_response(graph_error("(#100) Invalid JSON in a form field", 100), status=400)
        else:
            sent = dict(body)
        recipient = sent.get("recipient")
        if not isinstance(recipient, dict) or not recipient.get("id"):
            return web.json_response(graph_error("(#100) param recipient must be non-empty.", 100), status=400)
        if sent.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return web.json_response(graph_error("(#100) param messaging_type is required", 100), status=400)
        message = sent.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return web.json_response(graph_error("(#100) param message must be non-empty.", 100), status=400)
        if len(message.get("text") or "") > MAX_TEXT:
            return web.json_response(
                graph_error("(#100) Length of param message[text] must be less than or equal to 2000", 100),
                status=400,
            )
        self.sent.append(sent)
        self._message_seq += 1
        self.message_ids.append(f"m_{self._message_seq}")
        return web.json_response({"recipient_id": str(recipient["id"]), "message_id": self.message_ids[-1]})

    # pages

    def _subscribed_apps(self, request: web.Request, page_id: str) -> web.Response:
        if request.method == "GET":
            if page_id not in self.subscribed:
                return web.json_response({"data": []})
            listing = fixture("facebook_subscribed_apps_list.json")
            if page_id in self.subscribed_fields:
                listing["data"][0]["subscribed_fields"] = self.subscribed_fields[page_id]
            return web.json_response(listing)
        if request.method == "POST":
            fields = request.query.get("subscribed_fields", "")
            if not fields:
                return web.json_response(
                    graph_error("(#100) The parameter subscribed_fields is required", 100), status=400
                )
            self.subscribed.add(page_id)
            self.subscribed_fields[page_id] = fields.split(",")
            return web.json_response(fixture("facebook_subscribed_apps_ok.json"))
        if request.method == "DELETE":
            self.subscribed.discard(page_id)
            self.subscribed_fields.pop(page_id, None)
            return web.json_response(fixture("facebook_subscribed_apps_ok.json"))
        return web.json_response(graph_error("(#100) Unsupported method", 100), status=400)

    def _node(self, node_id: str, fields: str) -> web.Response:
        if node_id in self.pages:
            return web.json_response({"id": node_id, "name": self.pages[node_id]["name"]})
        if node_id in self.profiles:
            profile = self.profiles[node_id]
            if not profile:
                return web.json_response({})
            wanted = [field for field in fields.split(",") if field] or ["id", "name"]
            answer = {key: profile[key] for key in wanted if key in profile}
            answer.setdefault("id", node_id)
            return web.json_response(answer)
        return web.json_response(
            graph_error(f"Unsupported get request. Object with ID '{node_id}' does not exist", 100, 33), status=400
        )

    # CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        if request.path in self.cdn_redirects:
            raise web.HTTPFound(self.cdn_redirects[request.path])
        if request.method != "GET" or request.path not in self.cdn:
            return web.Response(status=404, text="Not Found")
        data, content_type = self.cdn[request.path]
        if request.path not in self.cdn_chunked:
            return web.Response(body=data, headers={"Content-Type": content_type})
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 16 * 1024):
            await response.write(data[start : start + 16 * 1024])
        await response.write_eof()
        return response


@pytest.fixture
async def fake_facebook(aiohttp_server: Any) -> AsyncIterator[FakeFacebook]:
    """Serve a FakeFacebook on a local port."""
    fake = FakeFacebook()
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    fake.graph_base = f"{fake.base_url}/{GRAPH_VERSION}"
    yield fake
