"""ApiProvider: any system posts customer messages as signed JSON and receives replies at a callback URL.

Like Chatwoot's API channel. The wire format is in ``docs/providers.md`` (the worked example).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from providers.api import const
from providers.api.api import (
    CallbackAnswer,
    CallbackClient,
    CallbackUnreachable,
    retry_after,
)
from providers.api.parse import parse_body
from providers.base import (
    BadSignature,
    ChannelIdentity,
    Download,
    FetchError,
    Field,
    Health,
    IncomingAttachment,
    InvalidCredentials,
    OutgoingMessage,
    ParsedRequest,
    Provider,
    Registration,
    SendError,
    SendResult,
)
from providers.common import REDIRECTS, download_checked, header, signature_matches


def url_problem(url: str) -> str | None:
    """Say what is wrong with a callback URL, or ``None`` when it is an absolute http(s) URL."""
    if not url:
        return "this field is required"
    if len(url) > const.MAX_URL_LENGTH:
        return f"the URL is longer than {const.MAX_URL_LENGTH} characters"
    if any(char.isspace() or ord(char) < 32 for char in url):
        return "the URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        return "this is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "put credentials in the path or query, not before the host"
    return None


def default_account_key(callback_url: str) -> str:
    """Return the unique key of a channel without ``account_id``: a hash of its callback URL."""
    digest = hashlib.sha256(callback_url.encode("utf-8")).hexdigest()
    return f"callback:{digest[: const.ACCOUNT_HASH_DIGITS]}"


def _reply_id(desk_id: int, answer: CallbackAnswer) -> str:
    """Return the stored external id of a sent reply: unique per reply, with the system's id when it gave one."""
    given: Any = None
    try:
        data = json.loads(answer.body) if answer.body.strip() else None
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        given = data.get("id")
    # Prefixed and keyed by the desk's id, so a reply's id can never collide with a customer
    # message's id (they share one index) nor with another reply's, whatever the system answers.
    if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given).strip():
        return f"reply:{desk_id}:{str(given).strip()[: const.MAX_ID_LENGTH]}"
    return f"reply:{desk_id}"


def send_error(answer: CallbackAnswer) -> SendError:
    """Turn a callback's non-2xx answer into a SendError: 429 and 5xx are retried, the rest fail."""
    status = answer.status
    text = answer.text(const.MAX_REASON_LENGTH)
    if status == 429:
        return SendError(
            text or "the callback URL is rate limiting (HTTP 429)",
            permanent=False,
            retry_after=retry_after(header(answer.headers, "Retry-After")),
            code="429",
        )
    if status >= 500:
        reason = f"the callback URL answered HTTP {status}" + (f": {text}" if text else "")
        return SendError(reason, permanent=False, code=str(status))
    if status in REDIRECTS:
        return SendError(
            f"the callback URL redirects (HTTP {status}); set callback_url to the URL it leads to",
            permanent=True,
            code=str(status),
        )
    return SendError(text or f"the callback URL refused the reply (HTTP {status})", permanent=True, code=str(status))


class ApiProvider(Provider):
    """A system of your own: signed JSON in at the webhook, signed JSON out to the callback URL."""

    code: ClassVar[str] = const.CODE
    name: ClassVar[str] = const.NAME
    fields: ClassVar[list[Field]] = [
        Field(const.CONF_CALLBACK_URL, "Callback URL", type="url"),
        Field(const.CONF_HMAC_SECRET, "HMAC secret", type="password", secret=True),
        Field(const.CONF_ACCOUNT_ID, "Account ID", required=False),
    ]

    def __init__(self, config: Mapping[str, Any], http: aiohttp.ClientSession, secret: str = "") -> None:
        super().__init__(config, http, secret)
        self.callback_url = self._conf(const.CONF_CALLBACK_URL).strip()
        self.hmac_secret = self._conf(const.CONF_HMAC_SECRET)
        self.client = CallbackClient(http, self.callback_url, self.hmac_secret)

    def _conf(self, key: str) -> str:
        value = self.config.get(key)
        return value if isinstance(value, str) else ""

    # registration

    async def validate(self) -> ChannelIdentity:
        """Check the callback URL and the secret's length; the unique key is account_id or the URL's hash."""
        problem = url_problem(self.callback_url)
        if problem:
            raise InvalidCredentials(problem, field=const.CONF_CALLBACK_URL)
        if len(self.hmac_secret) < const.MIN_SECRET_LENGTH:
            raise InvalidCredentials(
                f"the secret must be at least {const.MIN_SECRET_LENGTH} characters long", field=const.CONF_HMAC_SECRET
            )
        account = self._conf(const.CONF_ACCOUNT_ID).strip()
        if len(account) > const.MAX_ACCOUNT_ID_LENGTH:
            raise InvalidCredentials(
                f"the account id is longer than {const.MAX_ACCOUNT_ID_LENGTH} characters", field=const.CONF_ACCOUNT_ID
            )
        if account:
            return ChannelIdentity(unique_key=account, display_name=account)
        return ChannelIdentity(
            unique_key=default_account_key(self.callback_url), display_name=urlsplit(self.callback_url).hostname or ""
        )

    async def register(self, webhook_url: str) -> Registration:
        """POST a signed ping carrying the webhook URL to the callback; registered when it answers 2xx."""
        return await self._ping({"type": const.TYPE_PING, "webhook_url": webhook_url})

    async def unregister(self) -> Registration:
        """Nothing to undo at the callback: a disabled channel's webhook answers 404."""
        return Registration(ok=True)

    async def health(self) -> Health:
        """Ping the callback; healthy when it answers 2xx."""
        result = await self._ping({"type": const.TYPE_PING})
        return Health(ok=result.ok, last_error=result.error)

    async def _ping(self, payload: dict[str, Any]) -> Registration:
        body = json.dumps(payload).encode("utf-8")
        try:
            answer = await self.client.post(body, timeout=const.REQUEST_TIMEOUT)
        except CallbackUnreachable as exc:
            return Registration(ok=False, error=str(exc))
        if answer.ok:
            return Registration(ok=True)
        text = answer.text(const.MAX_REASON_LENGTH)
        error = f"the callback URL answered HTTP {answer.status}" + (f": {text}" if text else "")
        return Registration(ok=False, error=error)

    # receiving

    def verify_request(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check X-Desk-Signature against the HMAC-SHA256 of the raw body with the channel's secret."""
        if not self.hmac_secret:
            raise BadSignature("no secret configured")
        given = header(headers, const.SIGNATURE_HEADER)
        if not signature_matches(given, self.hmac_secret, body, prefix=const.SIGNATURE_PREFIX):
            raise BadSignature("missing or wrong X-Desk-Signature")

    def parse(self, body: bytes) -> ParsedRequest:
        """Turn one message, or a batch of them, into unified items."""
        return parse_body(body)

    # sending

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the reply, signed with a timestamp, to the callback URL; 429 and 5xx are retried."""
        if message.attachment is None:
            body = self._body(message)
            headers = self.client.signed_headers(body)
            timeout = const.REQUEST_TIMEOUT
        else:
            # Reading, encoding and signing up to 25 MB would hold the event loop: do it aside.
            body, headers = await asyncio.to_thread(self._signed_body, message)
            timeout = const.UPLOAD_TIMEOUT
        try:
            answer = await self.client.post(body, timeout=timeout, headers=headers)
        except CallbackUnreachable as exc:
            raise SendError(str(exc), permanent=False) from None
        if not answer.ok:
            raise send_error(answer)
        return SendResult(external_id=_reply_id(message.desk_id, answer))

    def _signed_body(self, message: OutgoingMessage) -> tuple[bytes, dict[str, str]]:
        body = self._body(message)
        return body, self.client.signed_headers(body)

    def _body(self, message: OutgoingMessage) -> bytes:
        payload: dict[str, Any] = {
            "type": const.TYPE_MESSAGE,
            "desk_id": message.desk_id,
            "conversation": message.chat_external_id,
            "text": message.text or "",
        }
        attachment = message.attachment
        if attachment is not None:
            try:
                size = os.path.getsize(attachment.path)
                if size > const.MAX_SEND_FILE:
                    raise SendError(
                        f"the file is larger than {const.MAX_SEND_FILE // (1024 * 1024)} MB, "
                        "the most the API channel sends",
                        permanent=True,
                    )
                with open(attachment.path, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise SendError(f"the attachment cannot be read: {exc.strerror or exc}", permanent=True) from None
            payload["attachment"] = {
                "kind": attachment.kind,
                "file_name": attachment.file_name,
                "mime": attachment.mime,
                "size": len(data),
                "data": base64.b64encode(data).decode("ascii"),
            }
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    # files

    async def fetch_attachment(self, attachment: IncomingAttachment) -> Download:
        """Download an attachment URL, only from the callback URL's scheme, host and port."""
        if not attachment.ref:
            raise FetchError("the attachment has nothing to download")
        # Connection errors propagate: the core retries them a few times.
        return await download_checked(
            self.http, attachment.ref, allowed_hosts=(), configured_base=self.callback_url, limit=self.max_download
        )
