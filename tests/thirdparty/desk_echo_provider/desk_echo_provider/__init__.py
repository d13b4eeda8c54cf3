"""Echo: a minimal Desk provider kept outside Desk.

Webhook: POST ``{"id", "from", "name"?, "text"}`` with header ``X-Echo-Secret: <shared_secret>``.
Replies: POST ``{"to", "text", "desk_id"}`` with the same header to ``send_url``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urlsplit

import aiohttp

from providers.base import (
    BadPayload,
    BadSignature,
    ChannelIdentity,
    Download,
    FetchError,
    Field,
    IncomingAttachment,
    IncomingContact,
    IncomingMessage,
    InvalidCredentials,
    OutgoingMessage,
    ParsedRequest,
    Provider,
    Registration,
    SendError,
    SendResult,
)

SECRET_HEADER = "X-Echo-Secret"
TIMEOUT = 10.0


class EchoProvider(Provider):
    """Messages in by webhook with a shared secret; replies out by POST to a URL."""

    code: ClassVar[str] = "echo"
    name: ClassVar[str] = "Echo"
    fields: ClassVar[list[Field]] = [
        Field("send_url", "Send URL", type="url"),
        Field("shared_secret", "Shared secret", type="password", secret=True),
    ]

    @property
    def _secret(self) -> str:
        return str(self.config.get("shared_secret") or "")

    async def validate(self) -> ChannelIdentity:
        """Accept an http(s) send URL and a secret; the send URL is the unique key."""
        url = str(self.config.get("send_url") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidCredentials("an http(s) URL is needed", field="send_url")
        if not self._secret:
            raise InvalidCredentials("a secret is needed", field="shared_secret")
        return ChannelIdentity(unique_key=url, display_name=parts.hostname)

    async def register(self, webhook_url: str) -> Registration:
        """Nothing to register: the sender is told the webhook URL by hand."""
        return Registration(ok=True)

    async def unregister(self) -> Registration:
        """Nothing to undo."""
        return Registration(ok=True)

    def verify_request(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise BadSignature unless the secret header carries the shared secret."""
        given = headers.get(SECRET_HEADER) or ""
        if not self._secret or not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise BadSignature("missing or wrong secret")

    def parse(self, body: bytes) -> ParsedRequest:
        """Turn ``{"id", "from", "name"?, "text"}`` into one message."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadPayload("the body is not JSON") from exc
        if not isinstance(data, dict) or not all(isinstance(data.get(key), str) for key in ("id", "from", "text")):
            raise BadPayload("id, from and text are required strings")
        contact = IncomingContact(external_id=data["from"], name=str(data.get("name") or ""))
        return ParsedRequest(items=[IncomingMessage(data["from"], data["id"], contact, text=data["text"])])

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the reply to the send URL; 5xx and network failures are retried."""
        payload = {"to": message.chat_external_id, "text": message.text, "desk_id": message.desk_id}
        try:
            async with self.http.post(
                str(self.config["send_url"]), json=payload, headers={SECRET_HEADER: self._secret},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(f"cannot reach the send URL: {type(exc).__name__}", permanent=False) from None
        if status >= 500:
            raise SendError(f"the send URL answered HTTP {status}", permanent=False)
        if status >= 300:
            raise SendError(text or f"the send URL answered HTTP {status}", permanent=True)
        return SendResult(external_id=f"echo:{message.desk_id}")

    async def fetch_attachment(self, attachment: IncomingAttachment) -> Download:
        """Echo carries no files."""
        raise FetchError("echo carries no files")
