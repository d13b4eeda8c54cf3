"""The Telegram provider: a bot's webhook, replies, files and profiles through the Bot API."""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import aiohttp

from providers.base import (
    BadSignature,
    CannotConnect,
    ChannelIdentity,
    Download,
    FetchError,
    Field,
    Health,
    IncomingAttachment,
    InvalidCredentials,
    OutgoingAttachment,
    OutgoingMessage,
    ParsedRequest,
    Profile,
    Provider,
    RateLimits,
    Registration,
    SendError,
    SendResult,
)
from providers.common import LimitedChunks, header, multipart_file_name, open_for_upload, same_secret
from providers.telegram.api import ApiError, ApiUnreachable, TelegramApi
from providers.telegram.const import (
    ALLOWED_UPDATES,
    CODE,
    CONF_API_BASE,
    CONF_TOKEN,
    DEFAULT_API_BASE,
    FILE_TOO_LARGE,
    HEALTH_ERROR_WINDOW,
    HEALTH_MAX_PENDING,
    MAX_CAPTION,
    MAX_CONNECTIONS,
    MAX_DOWNLOAD,
    MAX_PHOTO_UPLOAD,
    MAX_TEXT,
    NAME,
    SECRET_HEADER,
    UPLOAD_TIMEOUT,
)
from providers.telegram.parse import full_name, parse_update, timestamp, username

# What BotFather hands out: the bot id, a colon, and the secret part.
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")
# sendPhoto's 400s for an image it will not take as a photo (PHOTO_INVALID_DIMENSIONS, ...).
_PHOTO_REFUSED = re.compile(r"PHOTO_|IMAGE_PROCESS_FAILED", re.IGNORECASE)


def utf16_len(text: str) -> int:
    """Count ``text`` in UTF-16 code units, the way Telegram measures lengths."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """Return how many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split ``text`` into pieces Telegram accepts, at a line break or space where one is near the end."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = max(_prefix_within(rest, limit), 1)
        window = rest[:cut]
        # Break at the last line break, else the last space, in the second half of the window;
        # that separator is dropped (Telegram trims it anyway).
        at = window.rfind("\n")
        if at < cut // 2:
            at = max(window.rfind(" "), window.rfind("\t"))
        if at >= cut // 2 and at > 0:
            pieces.append(rest[:at])
            rest = rest[at + 1 :]
        else:
            pieces.append(window)
            rest = rest[cut:]
    pieces.append(rest)
    # Telegram refuses blank messages; a blank piece only appears between separators.
    kept = [piece for piece in pieces if piece.strip()]
    return kept or [text]


def _chat_param(chat_id: str) -> int | str:
    """Send numeric chat ids as integers and ``@channel`` names as they are."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id


def _send_error(exc: ApiError | ApiUnreachable) -> SendError:
    """Map a Bot API failure to a SendError: retry what may pass later, fail what never will."""
    if isinstance(exc, ApiUnreachable):
        return SendError(str(exc), permanent=False)
    code = exc.error_code
    if code == 429:
        return SendError(exc.description, permanent=False, retry_after=exc.retry_after, code=str(code))
    if code >= 500:
        return SendError(exc.description, permanent=False, code=str(code))
    # "group chat was upgraded to a supergroup chat": this id never works again, the new one does.
    moved_to = str(exc.migrate_to_chat_id) if exc.migrate_to_chat_id is not None else None
    return SendError(exc.description, permanent=True, code=str(code), moved_to=moved_to)


class TelegramProvider(Provider):
    """A Telegram bot: webhook with a secret header, plain-text replies, files through getFile."""

    code: ClassVar[str] = CODE
    name: ClassVar[str] = NAME
    fields: ClassVar[list[Field]] = [
        Field(CONF_TOKEN, "Bot token", type="password", secret=True),
        Field(CONF_API_BASE, "Bot API server", type="url", required=False),
    ]
    limits: ClassVar[RateLimits] = RateLimits(per_chat_interval=1.0, per_second=30.0)
    max_download: ClassVar[int] = MAX_DOWNLOAD

    def __init__(self, config: Mapping[str, Any], http: aiohttp.ClientSession, secret: str = "") -> None:
        super().__init__(config, http, secret)
        token = self.config.get(CONF_TOKEN)
        base = self.config.get(CONF_API_BASE)
        self.api = TelegramApi(
            http,
            token.strip() if isinstance(token, str) else "",
            base.strip() if isinstance(base, str) and base.strip() else DEFAULT_API_BASE,
        )

    # registration

    async def validate(self) -> ChannelIdentity:
        """Check the token with getMe; return the bot's id and @username."""
        if not TOKEN_SHAPE.fullmatch(self.api.token):
            raise InvalidCredentials(
                "This is not a bot token: BotFather gives one like 123456789:AAH...", field=CONF_TOKEN
            )
        try:
            me = await self.api.call("getMe")
        except ApiError as exc:
            if exc.error_code in (401, 404):
                raise InvalidCredentials(exc.description, field=CONF_TOKEN) from None
            raise CannotConnect(exc.description) from None
        except ApiUnreachable as exc:
            raise CannotConnect(str(exc)) from None
        if not isinstance(me, dict) or isinstance(me.get("id"), bool) or not isinstance(me.get("id"), int):
            raise CannotConnect("Telegram answered getMe without a bot")
        handle = username(me.get("username"))
        display = f"@{handle}" if handle else full_name(me.get("first_name"), me.get("last_name")) or str(me["id"])
        return ChannelIdentity(unique_key=str(me["id"]), display_name=display)

    async def register(self, webhook_url: str) -> Registration:
        """Set the bot's webhook to ``webhook_url`` with this channel's secret."""
        if not self.secret:
            return Registration(ok=False, error="the channel has no webhook secret")
        params = {
            "url": webhook_url,
            "secret_token": self.secret,
            "allowed_updates": list(ALLOWED_UPDATES),
            "max_connections": MAX_CONNECTIONS,
        }
        return await self._registration("setWebhook", params)

    async def unregister(self) -> Registration:
        """Delete the bot's webhook."""
        return await self._registration("deleteWebhook", {})

    async def _registration(self, method: str, params: dict[str, Any]) -> Registration:
        try:
            await self.api.call(method, params)
        except ApiError as exc:
            return Registration(ok=False, error=exc.description)
        except ApiUnreachable as exc:
            return Registration(ok=False, error=str(exc))
        return Registration(ok=True)

    async def health(self) -> Health:
        """Report getWebhookInfo: set, a small backlog, and no delivery error in the last minutes."""
        try:
            info = await self.api.call("getWebhookInfo")
        except ApiError as exc:
            return Health(ok=False, last_error=exc.description)
        except ApiUnreachable as exc:
            return Health(ok=False, last_error=str(exc))
        info = info if isinstance(info, dict) else {}
        url = info.get("url") if isinstance(info.get("url"), str) else ""
        pending = info.get("pending_update_count")
        pending = pending if isinstance(pending, int) and not isinstance(pending, bool) else None
        last_error = info.get("last_error_message") if isinstance(info.get("last_error_message"), str) else None
        last_error_at = timestamp(info.get("last_error_date"))
        recent_error = (
            last_error_at is not None
            and (datetime.now(timezone.utc) - last_error_at).total_seconds() < HEALTH_ERROR_WINDOW
        )
        ok = bool(url) and (pending or 0) <= HEALTH_MAX_PENDING and not recent_error
        return Health(ok=ok, pending=pending, last_error=last_error, last_error_at=last_error_at, detail={"url": url})

    # receiving

    def verify_request(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise BadSignature unless the secret header equals this channel's secret."""
        if not same_secret(header(headers, SECRET_HEADER), self.secret):
            raise BadSignature("missing or wrong secret token")

    def parse(self, body: bytes) -> ParsedRequest:
        """Turn one Update into unified items."""
        return parse_update(body)

    # sending

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send the reply as plain text (split past 4096 characters), or a file with its caption.

        Each part is a message of its own: the parts an earlier attempt got through
        (``message.parts_sent``) are skipped, and each new one is handed to ``message.keep_part``
        before the next goes.
        """
        chat_id = _chat_param(message.chat_external_id)
        text = message.text or ""
        parts: list[Callable[[], Awaitable[int]]] = []
        if message.attachment is not None:
            caption = text if text.strip() and utf16_len(text) <= MAX_CAPTION else ""
            parts.append(functools.partial(self._send_file, chat_id, message.attachment, caption))
            if caption:
                text = ""
        if text.strip() or not parts:
            parts.extend(functools.partial(self._send_text, chat_id, piece) for piece in split_text(text))
        sent = list(message.parts_sent)
        for send_part in parts[len(sent) :]:
            sent.append(f"{chat_id}:{await send_part()}")
            await message.keep_part(sent[-1])
        return SendResult(external_id=sent[-1])

    async def _send_text(self, chat_id: int | str, text: str) -> int:
        # No parse_mode: the customer gets exactly what the agent typed.
        return await self._sent("sendMessage", {"chat_id": chat_id, "text": text})

    async def _send_file(self, chat_id: int | str, attachment: OutgoingAttachment, caption: str) -> int:
        try:
            size = await asyncio.get_running_loop().run_in_executor(None, os.path.getsize, attachment.path)
        except OSError as exc:
            raise SendError(f"the attachment cannot be read: {exc.strerror or exc}", permanent=True) from None
        if attachment.kind == "image" and size <= MAX_PHOTO_UPLOAD:
            try:
                return await self._upload("sendPhoto", "photo", chat_id, attachment, caption)
            except SendError as exc:
                # Telegram refuses some images as photos (odd dimensions, formats it cannot
                # process); they still go through as files.
                if not (exc.code == "400" and _PHOTO_REFUSED.search(exc.reason)):
                    raise
        return await self._upload("sendDocument", "document", chat_id, attachment, caption)

    async def _upload(
        self, method: str, field: str, chat_id: int | str, attachment: OutgoingAttachment, caption: str
    ) -> int:
        try:
            handle = await open_for_upload(attachment.path)
        except OSError as exc:
            raise SendError(f"the attachment cannot be read: {exc.strerror or exc}", permanent=True) from None
        try:
            # Raw UTF-8 file names, as browsers send them: percent-encoding would show up in Telegram.
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("chat_id", str(chat_id))
            if caption:
                form.add_field("caption", caption)
            # The file streams from disk in aiohttp's executor, never read whole on the loop.
            form.add_field(
                field,
                handle,
                filename=multipart_file_name(attachment.file_name),
                content_type=attachment.mime or "application/octet-stream",
            )
            return await self._sent(method, form=form, timeout=UPLOAD_TIMEOUT)
        finally:
            handle.close()  # at once: a close handed to a thread may never run if the send is cancelled

    async def _sent(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        form: aiohttp.FormData | None = None,
        timeout: float | None = None,
    ) -> int:
        try:
            sent = await self.api.call(method, params, form=form, timeout=timeout)
        except (ApiError, ApiUnreachable) as exc:
            raise _send_error(exc) from None
        message_id = sent.get("message_id") if isinstance(sent, dict) else None
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise SendError(f"Telegram answered {method} without a message id", permanent=False)
        return message_id

    # profile and files

    async def fetch_profile(self, contact_external_id: str, chat_external_id: str) -> Profile | None:
        """Look the user up with getChat: name, username and profile photo."""
        try:
            chat = await self.api.call("getChat", {"chat_id": _chat_param(contact_external_id)})
        except (ApiError, ApiUnreachable):
            return None
        if not isinstance(chat, dict):
            return None
        photo = chat.get("photo") if isinstance(chat.get("photo"), dict) else {}
        big = photo.get("big_file_id")
        avatar = IncomingAttachment(kind="image", ref=big, mime="image/jpeg") if isinstance(big, str) and big else None
        name = full_name(chat.get("first_name"), chat.get("last_name"))
        if not name and isinstance(chat.get("title"), str):
            name = chat["title"]
        return Profile(name=name or None, username=username(chat.get("username")), avatar=avatar)

    async def fetch_attachment(self, attachment: IncomingAttachment) -> Download:
        """Download a file through getFile and the file URL, refusing what bots may not download."""
        if not attachment.ref:
            raise FetchError("this attachment has no file to download")
        if attachment.size is not None and attachment.size > self.max_download:
            raise FetchError(FILE_TOO_LARGE)
        try:
            file = await self.api.call("getFile", {"file_id": attachment.ref})
        except ApiError as exc:
            if "too big" in exc.description.lower():
                raise FetchError(FILE_TOO_LARGE) from None
            raise FetchError(f"Telegram refused the file: {exc.description}") from None
        except ApiUnreachable as exc:
            raise FetchError(str(exc)) from None
        file = file if isinstance(file, dict) else {}
        file_size = file.get("file_size")
        file_size = file_size if isinstance(file_size, int) and not isinstance(file_size, bool) else None
        if file_size is not None and file_size > self.max_download:
            raise FetchError(FILE_TOO_LARGE)
        file_path = file.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise FetchError("Telegram gave no download path for the file")
        try:
            response = await self.api.download(file_path)
        except ApiError as exc:
            raise FetchError(exc.description) from None
        except ApiUnreachable as exc:
            raise FetchError(str(exc)) from None
        size = response.content_length if response.content_length is not None else file_size
        if size is not None and size > self.max_download:
            response.close()
            raise FetchError(FILE_TOO_LARGE)
        mime = attachment.mime
        if not mime and "Content-Type" in response.headers:
            mime = response.content_type
        return Download(chunks=LimitedChunks(response, self.max_download), mime=mime, size=size)
