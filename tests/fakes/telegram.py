"""A fake Telegram Bot API: a real local aiohttp server speaking the Bot API's HTTP protocol."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"

DEFAULT_TOKEN = "7012345678:AAH-test-token"
DEFAULT_BOT = {
    "id": 7012345678,
    "is_bot": True,
    "first_name": "Acme Support",
    "username": "acme_support_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
    "can_connect_to_business": False,
    "has_main_web_app": False,
}

# Limits the real Bot API enforces (sendMessage text, captions, uploads, bot downloads).
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_UPLOAD = 10 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
SEND_METHODS = {"sendmessage", "sendphoto", "senddocument"}

Params = dict[str, Any]


def load_fixture(name: str) -> Any:
    """Return a fixture file's JSON."""
    with open(FIXTURES / name, "rb") as handle:
        return json.loads(handle.read())


def fake_bytes(size: int, head: bytes = b"\xff\xd8\xff\xe0", tail: bytes = b"\xff\xd9") -> bytes:
    """Return ``size`` deterministic bytes shaped like a JPEG (start and end markers)."""
    body = bytes(index % 251 for index in range(max(size - len(head) - len(tail), 0)))
    return (head + body + tail)[:size]


def utf16_len(text: str) -> int:
    """Count ``text`` in UTF-16 code units, as Telegram does."""
    return len(text.encode("utf-16-le")) // 2


class BotApiError(Exception):
    """An error answer: HTTP status == error_code, with the real envelope."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            self.body["parameters"] = parameters
        self.code = code


def bad_request(description: str) -> BotApiError:
    """Return a 400 "Bad Request: ..." error."""
    return BotApiError(400, f"Bad Request: {description}")


class FakeTelegram:
    """The fake Bot API's state and scripting knobs; ``base_url`` is set once the server runs.

    valid_tokens: tokens the fake accepts (a token's bot id is the part before ':').
    calls: every ``/bot<token>/<method>`` call in order, as ``(method, params)``; file parts are bytes.
    call_times: when each of ``calls`` arrived (``time.monotonic()``), for rate-limit checks.
    uploads: every uploaded file part: ``{method, field, filename, content_type, data}``.
    files: ``file_path -> bytes`` served at ``/file/bot<token>/<file_path>``.
    file_index: ``file_id -> File`` object that getFile answers (see ``add_file``).
    webhooks: ``token -> webhook state`` (url, secret_token, allowed_updates, max_connections,
    pending_update_count, last_error_date, last_error_message); ``webhook`` is the default token's.
    profiles: ``chat id (str) -> ChatFullInfo`` that getChat answers.
    profile_photos: ``user id (str) -> list of photos (each a list of PhotoSize)`` for getUserProfilePhotos.
    blocked: chat ids (str) whose user blocked the bot: sends answer 403.
    upgraded: basic group ids (str) upgraded to a supergroup -> the supergroup's id: sends to the
    old id answer 400 with ``parameters.migrate_to_chat_id`` (see ``upgrade_group``).
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.valid_tokens: set[str] = {DEFAULT_TOKEN}
        self.bots: dict[str, dict[str, Any]] = {DEFAULT_TOKEN: dict(DEFAULT_BOT)}
        self.calls: list[tuple[str, Params]] = []
        # time.monotonic() at which each entry of ``calls`` arrived (same index).
        self.call_times: list[float] = []
        self.uploads: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self._sent: list[Params] = []
        self.files: dict[str, bytes] = {}
        self.file_index: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.profile_photos: dict[str, list[list[dict[str, Any]]]] = {}
        self.blocked: set[str] = set()
        self.upgraded: dict[str, int] = {}
        # None entries pass calls through: a failure scripted for a later call.
        self._failures: dict[str, list[tuple[int, dict[str, Any]] | None]] = {}
        self._delays: dict[str, tuple[float, int]] = {}
        self._next_message_id = 2000
        self._next_file = 100
        self._load_defaults()

    # --- scripting -------------------------------------------------------------------------

    def _load_defaults(self) -> None:
        got = load_fixture("telegram_getFile_ok.json")["result"]
        self.add_file(got["file_id"], got["file_path"], fake_bytes(got["file_size"]), unique_id=got["file_unique_id"])
        chat = load_fixture("telegram_getChat_private_ok.json")["result"]
        self.profiles[str(chat["id"])] = chat
        photo = chat["photo"]
        for size, number, length in (("big", 1, 4321), ("small", 0, 1234)):
            self.add_file(
                photo[f"{size}_file_id"],
                f"profile_photos/file_{number}.jpg",
                fake_bytes(length),
                unique_id=photo[f"{size}_file_unique_id"],
            )
        photos = load_fixture("telegram_getUserProfilePhotos_ok.json")["result"]["photos"]
        self.profile_photos[str(chat["id"])] = photos

    def add_token(self, token: str, username: str | None = None, first_name: str = "Test Bot") -> None:
        """Accept ``token``; getMe answers a bot whose id is the token's prefix."""
        bot_id = int(token.split(":", 1)[0])
        self.valid_tokens.add(token)
        self.bots[token] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username or f"bot{bot_id}_bot",
        }

    def add_file(
        self,
        file_id: str,
        file_path: str,
        data: bytes,
        *,
        file_size: int | None = None,
        unique_id: str | None = None,
    ) -> None:
        """Make ``file_id`` known to getFile and its bytes downloadable; ``file_size`` may claim more."""
        self.files[file_path] = data
        self.file_index[file_id] = {
            "file_id": file_id,
            "file_unique_id": unique_id or f"uniq-{file_id[-12:]}",
            "file_size": len(data) if file_size is None else file_size,
            "file_path": file_path,
        }

    def fail_next(self, method: str, status: int, body: dict[str, Any], times: int = 1, *, after: int = 0) -> None:
        """Answer ``times`` calls of ``method`` with HTTP ``status`` and ``body``, after ``after`` more pass."""
        self._failures.setdefault(method.lower(), []).extend([None] * after + [(status, body)] * times)

    def delay(self, method: str, seconds: float, *, after: int = 0) -> None:
        """Answer calls of ``method`` only after ``seconds``, from now on but the next ``after`` of them."""
        self._delays[method.lower()] = (seconds, len(self.calls_of(method)) + after)

    def upgrade_group(self, group_id: int, supergroup_id: int) -> None:
        """Upgrade a basic group to a supergroup, as a group admin does: the old id stops working."""
        self.upgraded[str(group_id)] = supergroup_id

    def webhook_for(self, token: str) -> dict[str, Any]:
        """Return the live webhook state of ``token``'s bot."""
        return self.webhooks.setdefault(
            token,
            {
                "url": "",
                "secret_token": None,
                "allowed_updates": None,
                "max_connections": None,
                "pending_update_count": 0,
                "last_error_date": None,
                "last_error_message": None,
            },
        )

    @property
    def webhook(self) -> dict[str, Any]:
        """The default bot's webhook state (what setWebhook set); edit it to script getWebhookInfo."""
        return self.webhook_for(DEFAULT_TOKEN)

    @property
    def sent_messages(self) -> list[Params]:
        """Params of the sendMessage/sendPhoto/sendDocument calls that Telegram accepted, in order."""
        return list(self._sent)

    def calls_of(self, method: str) -> list[Params]:
        """Params of every call of ``method`` (case-insensitive)."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    # --- the server ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """Build the aiohttp application serving the Bot API and file downloads."""
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        return app

    def _bot_of(self, token: str) -> None:
        if token in self.valid_tokens:
            return
        # Telegram answers 401 for a well-formed token it does not know, 404 for anything else.
        if re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            raise BotApiError(401, "Unauthorized")
        raise BotApiError(404, "Not Found")

    async def _read_params(self, request: web.Request) -> tuple[Params, list[dict[str, Any]]]:
        params: Params = dict(request.query)
        files: list[dict[str, Any]] = []
        if not request.can_read_body:
            return params, files
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            params.update(body)
        elif ctype == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                name = part.name or ""
                if part.filename is not None:
                    data = await part.read(decode=False)
                    params[name] = bytes(data)
                    files.append(
                        {
                            "field": name,
                            "filename": part.filename,
                            "content_type": part.headers.get("Content-Type"),
                            "data": bytes(data),
                        }
                    )
                else:
                    params[name] = await part.text()
        elif ctype == "application/x-www-form-urlencoded":
            params.update(dict(await request.post()))
        return params, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        try:
            self._bot_of(token)
            params, files = await self._read_params(request)
        except BotApiError as exc:
            return web.json_response(exc.body, status=exc.code)
        self.calls.append((method, params))
        self.call_times.append(time.monotonic())
        for upload in files:
            self.uploads.append({"method": method, **upload})
        key = method.lower()
        if key in self._delays:
            seconds, from_call = self._delays[key]
            if len(self.calls_of(method)) > from_call:
                await asyncio.sleep(seconds)
        scripted = self._failures.get(key)
        failure = scripted.pop(0) if scripted else None
        if failure is not None:
            status, body = failure
            return web.json_response(body, status=status)
        handler = self._handlers().get(key)
        try:
            if handler is None:
                raise BotApiError(404, "Not Found")
            result, description = await handler(token, params)
        except BotApiError as exc:
            return web.json_response(exc.body, status=exc.code)
        envelope: dict[str, Any] = {"ok": True, "result": result}
        if description:
            envelope["description"] = description
        if key in SEND_METHODS:
            self._sent.append(params)
            self.messages.append(result)
        return web.json_response(envelope)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.valid_tokens:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        data = self.files.get(request.match_info["file_path"])
        if data is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        mime = mimetypes.guess_type(request.match_info["file_path"])[0] or "application/octet-stream"
        return web.Response(body=data, content_type=mime)

    def _handlers(self) -> dict[str, Callable[[str, Params], Awaitable[tuple[Any, str | None]]]]:
        return {
            "getme": self._get_me,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getuserprofilephotos": self._get_user_profile_photos,
        }

    # --- methods ---------------------------------------------------------------------------

    async def _get_me(self, token: str, params: Params) -> tuple[Any, str | None]:
        bot = self.bots.get(token)
        if bot is None:
            bot_id = int(token.split(":", 1)[0])
            bot = {"id": bot_id, "is_bot": True, "first_name": "Test Bot", "username": f"bot{bot_id}_bot"}
        return bot, None

    async def _set_webhook(self, token: str, params: Params) -> tuple[Any, str | None]:
        if "url" not in params:
            raise bad_request('parameter "url" is required')
        url = str(params["url"])
        hook = self.webhook_for(token)
        if not url:
            return await self._delete_webhook(token, params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        max_connections = params.get("max_connections")
        if max_connections is not None:
            try:
                max_connections = int(max_connections)
            except (TypeError, ValueError):
                raise bad_request("bad webhook: max_connections must be an integer") from None
            if not 1 <= max_connections <= 100:
                raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            try:
                allowed = json.loads(allowed)
            except ValueError:
                raise bad_request("can't parse allowed updates") from None
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)):
            raise bad_request("can't parse allowed updates")
        hook["url"] = url
        hook["secret_token"] = None if secret is None else str(secret)
        hook["max_connections"] = max_connections or 40
        if allowed is not None:
            hook["allowed_updates"] = allowed
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            hook["pending_update_count"] = 0
        return True, "Webhook was set"

    async def _delete_webhook(self, token: str, params: Params) -> tuple[Any, str | None]:
        hook = self.webhook_for(token)
        was_set = bool(hook["url"])
        hook.update(url="", secret_token=None, max_connections=None)
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            hook["pending_update_count"] = 0
        return True, "Webhook was deleted" if was_set else "Webhook is already deleted"

    async def _get_webhook_info(self, token: str, params: Params) -> tuple[Any, str | None]:
        hook = self.webhook_for(token)
        info: dict[str, Any] = {
            "url": hook["url"],
            "has_custom_certificate": False,
            "pending_update_count": hook["pending_update_count"],
        }
        for key in ("last_error_date", "last_error_message"):
            if hook.get(key) is not None:
                info[key] = hook[key]
        if hook["url"]:
            info["max_connections"] = hook["max_connections"] or 40
            if hook["allowed_updates"] is not None:
                info["allowed_updates"] = hook["allowed_updates"]
        return info, None

    def _chat(self, params: Params) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        key = str(chat_id)
        if key in self.blocked:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        if key in self.upgraded:
            migrated = load_fixture("telegram_error_400_migrated.json")
            raise BotApiError(400, migrated["description"], {"migrate_to_chat_id": self.upgraded[key]})
        profile = self.profiles.get(key)
        if profile is not None:
            fields = ("id", "type", "title", "username", "first_name", "last_name")
            return {name: profile[name] for name in fields if name in profile}
        try:
            numeric: int | str = int(key)
        except ValueError:
            numeric = key
        return {"id": numeric, "type": "private" if isinstance(numeric, int) and numeric > 0 else "supergroup"}

    def _message(self, token: str, chat: dict[str, Any], **content: Any) -> dict[str, Any]:
        self._next_message_id += 1
        bot = self.bots.get(token) or {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "Test Bot"}
        sender = {name: bot[name] for name in ("id", "is_bot", "first_name", "username") if name in bot}
        message = {"message_id": self._next_message_id, "from": sender, "chat": chat, "date": int(time.time())}
        message.update({name: value for name, value in content.items() if value is not None})
        return message

    async def _send_message(self, token: str, params: Params) -> tuple[Any, str | None]:
        chat = self._chat(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        parse_mode = params.get("parse_mode")
        if parse_mode not in (None, "", "HTML", "Markdown", "MarkdownV2"):
            raise bad_request(f"unsupported parse_mode {parse_mode!r}")
        return self._message(token, chat, text=text.strip()), None

    def _caption(self, params: Params) -> str | None:
        caption = params.get("caption")
        if caption is None or caption == "":
            return None
        if utf16_len(str(caption)) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        return str(caption)

    def _upload(self, params: Params, field: str, limit: int) -> tuple[bytes | None, str | None]:
        value = params.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
        if value is None or value == "":
            raise bad_request(f"there is no {field} in the request")
        if isinstance(value, bytes):
            if len(value) > limit:
                raise BotApiError(413, "Request Entity Too Large")
            if not value:
                raise bad_request("file must be non-empty")
            return value, None
        # A file_id or URL: accept the file_ids the fake knows, refuse the rest.
        if str(value) in self.file_index:
            return None, str(value)
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _store_upload(self, data: bytes, folder: str, extension: str) -> dict[str, Any]:
        self._next_file += 1
        file_id = f"fake-{folder}-{self._next_file}"
        self.add_file(file_id, f"{folder}/file_{self._next_file}{extension}", data)
        return self.file_index[file_id]

    async def _send_photo(self, token: str, params: Params) -> tuple[Any, str | None]:
        chat = self._chat(params)
        caption = self._caption(params)
        data, file_id = self._upload(params, "photo", MAX_PHOTO_UPLOAD)
        stored = self._store_upload(data, "photos", ".jpg") if data is not None else self.file_index[file_id or ""]
        size = {
            "file_id": stored["file_id"],
            "file_unique_id": stored["file_unique_id"],
            "file_size": stored["file_size"],
            "width": 800,
            "height": 600,
        }
        return self._message(token, chat, photo=[size], caption=caption), None

    async def _send_document(self, token: str, params: Params) -> tuple[Any, str | None]:
        chat = self._chat(params)
        caption = self._caption(params)
        data, file_id = self._upload(params, "document", MAX_UPLOAD)
        upload = next((u for u in reversed(self.uploads) if u["field"] == "document"), None) if data else None
        stored = self._store_upload(data, "documents", "") if data is not None else self.file_index[file_id or ""]
        document: dict[str, Any] = {
            "file_id": stored["file_id"],
            "file_unique_id": stored["file_unique_id"],
            "file_size": stored["file_size"],
        }
        if upload is not None:
            document["file_name"] = upload["filename"]
            if upload["content_type"]:
                document["mime_type"] = upload["content_type"]
        return self._message(token, chat, document=document, caption=caption), None

    async def _get_file(self, token: str, params: Params) -> tuple[Any, str | None]:
        file_id = params.get("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        found = self.file_index.get(str(file_id))
        if found is None:
            raise bad_request("wrong file_id or the file is temporarily unavailable")
        if found["file_size"] > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return dict(found), None

    async def _get_chat(self, token: str, params: Params) -> tuple[Any, str | None]:
        found = self.profiles.get(str(params.get("chat_id")))
        if found is None:
            raise bad_request("chat not found")
        return found, None

    async def _get_user_profile_photos(self, token: str, params: Params) -> tuple[Any, str | None]:
        user_id = str(params.get("user_id"))
        if user_id not in self.profiles and user_id not in self.profile_photos:
            raise bad_request("user not found")
        photos = self.profile_photos.get(user_id, [])
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        return {"total_count": len(photos), "photos": photos[offset : offset + limit]}, None


@pytest.fixture
async def fake_telegram(aiohttp_server: Any) -> AsyncIterator[FakeTelegram]:
    """Serve a fresh fake Bot API on a local port; use ``base_url`` as the channel's ``api_base``."""
    fake = FakeTelegram()
    server = await aiohttp_server(fake.make_app())
    fake.base_url = f"http://{server.host}:{server.port}"
    yield fake
