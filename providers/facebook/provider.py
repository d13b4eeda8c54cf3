"""FacebookProvider: one Facebook Page on the Messenger Platform."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
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
from providers.common import download_checked, header, same_secret, signature_matches
from providers.facebook import const
from providers.facebook.api import GraphClient, GraphError
from providers.facebook.parse import parse_body


def split_text(text: str, limit: int = const.MAX_TEXT_LENGTH) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, at a line break or space when possible."""
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n"), window.rfind(" "))
        # Cut after the separator so the parts joined give the text back unchanged.
        cut = cut + 1 if cut >= limit // 2 else limit
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


def part_metadata(desk_id: int, part: int, parts: int) -> str:
    """Return the ``message.metadata`` of part ``part`` (from 0) of ``parts`` of the desk's reply ``desk_id``."""
    return f"{const.METADATA_PREFIX}{desk_id}{const.METADATA_PART_SEPARATOR}{part + 1}/{parts}"


def send_error(error: GraphError) -> SendError:
    """Turn a Graph error into a SendError: retried when transient, failed with Graph's reason otherwise."""
    rate_limited = error.code in const.RATE_LIMIT_CODES
    transient = (
        error.network
        or error.is_transient
        or error.code in const.TRANSIENT_CODES
        or (error.status is not None and error.status >= 500)
    )
    return SendError(
        error.message,
        permanent=not transient,
        retry_after=const.RATE_LIMIT_RETRY_AFTER if rate_limited else None,
        code=error.code_text,
    )


class FacebookProvider(Provider):
    """A Facebook Page: Messenger webhooks in, Send API out."""

    code: ClassVar[str] = const.CODE
    name: ClassVar[str] = const.NAME
    fields: ClassVar[list[Field]] = [
        Field(const.CONF_PAGE_ID, "Page ID"),
        Field(const.CONF_PAGE_TOKEN, "Page access token", type="password", secret=True),
        Field(const.CONF_APP_SECRET, "App secret", type="password", secret=True),
        Field(const.CONF_VERIFY_TOKEN, "Webhook verify token"),
        Field(const.CONF_GRAPH_BASE, "Graph API base URL", type="url", required=False),
    ]
    # Send API: 300 calls a second per page for text; keep a margin.
    limits: ClassVar[RateLimits] = RateLimits(per_chat_interval=0.0, per_second=250.0)
    max_download: ClassVar[int] = const.MAX_DOWNLOAD

    def __init__(self, config: Mapping[str, Any], http: aiohttp.ClientSession, secret: str = "") -> None:
        super().__init__(config, http, secret)
        self.page_id = str(self.config.get(const.CONF_PAGE_ID) or "").strip()
        self.graph_base = str(self.config.get(const.CONF_GRAPH_BASE) or const.DEFAULT_GRAPH_BASE).rstrip("/")
        self.api = GraphClient(http, self.graph_base, str(self.config.get(const.CONF_PAGE_TOKEN) or ""))

    def _conf(self, key: str) -> str:
        return str(self.config.get(key) or "")

    # registration

    async def validate(self) -> ChannelIdentity:
        """Check that the page token works and belongs to the configured page."""
        for key in (const.CONF_PAGE_ID, const.CONF_PAGE_TOKEN, const.CONF_APP_SECRET, const.CONF_VERIFY_TOKEN):
            if not self._conf(key).strip():
                raise InvalidCredentials("this field is required", field=key)
        try:
            me = await self.api.me()
        except GraphError as exc:
            if exc.network or exc.is_transient or exc.code in const.TRANSIENT_CODES or (exc.status or 0) >= 500:
                raise CannotConnect(exc.message) from exc
            raise InvalidCredentials(exc.message, field=const.CONF_PAGE_TOKEN) from exc
        page_id = str(me.get("id") or "")
        name = me.get("name") if isinstance(me.get("name"), str) else ""
        if not page_id:
            raise CannotConnect("Graph did not say whose token this is")
        if page_id != self.page_id:
            raise InvalidCredentials(
                f"the token belongs to page {page_id} ({name}), not {self.page_id}", field=const.CONF_PAGE_ID
            )
        return ChannelIdentity(unique_key=page_id, display_name=name or page_id)

    async def register(self, webhook_url: str) -> Registration:
        """Subscribe the app to the page (the callback URL itself is set in Meta's dashboard)."""
        return await self._confirmed(self.api.subscribe(self.page_id, const.SUBSCRIBED_FIELDS), "subscription")

    async def unregister(self) -> Registration:
        """Remove the app's subscription to the page."""
        return await self._confirmed(self.api.unsubscribe(self.page_id), "unsubscription")

    @staticmethod
    async def _confirmed(call: Awaitable[dict[str, Any]], what: str) -> Registration:
        try:
            answer = await call
        except GraphError as exc:
            return Registration(ok=False, error=exc.message)
        if answer.get("success") is not True:
            return Registration(ok=False, error=f"Graph did not confirm the {what}")
        return Registration(ok=True)

    async def health(self) -> Health:
        """Report whether the page still has an app subscribed (Meta unsubscribes failing webhooks)."""
        try:
            answer = await self.api.subscribed_apps(self.page_id)
        except GraphError as exc:
            return Health(ok=False, last_error=exc.message)
        apps = [app for app in answer.get("data") or [] if isinstance(app, dict)]
        subscribed = sorted({field for app in apps for field in app.get("subscribed_fields") or []})
        missing = [field for field in const.SUBSCRIBED_FIELDS if field not in subscribed]
        detail: dict[str, Any] = {
            "apps": [app.get("name") or app.get("id") for app in apps],
            "subscribed_fields": subscribed,
        }
        if not apps:
            return Health(ok=False, last_error="no app is subscribed to the page", detail=detail)
        if missing:
            detail["missing_fields"] = missing
        return Health(ok=True, detail=detail)

    # receiving

    def verify_request(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check X-Hub-Signature-256 against the HMAC-SHA256 of the raw body with the app secret."""
        secret = self._conf(const.CONF_APP_SECRET)
        if not secret:
            raise BadSignature("no app secret configured")
        given = header(headers, const.SIGNATURE_HEADER)
        if not signature_matches(given, secret, body, prefix=const.SIGNATURE_PREFIX):
            raise BadSignature("missing or wrong X-Hub-Signature-256")

    def parse(self, body: bytes) -> ParsedRequest:
        """Turn the raw webhook body into unified items."""
        return parse_body(body)

    def verification_response(self, query: Mapping[str, str]) -> str | None:
        """Return hub.challenge when the handshake carries our verify token."""
        if query.get(const.HUB_MODE) != const.HUB_MODE_SUBSCRIBE:
            return None
        if not same_secret(str(query.get(const.HUB_VERIFY_TOKEN) or ""), self._conf(const.CONF_VERIFY_TOKEN)):
            return None
        challenge = query.get(const.HUB_CHALLENGE)
        return challenge if challenge else None

    def shares_webhook_with(self, other_config: Mapping[str, Any]) -> bool:
        """Whether ``other_config`` is a page of the same app (same app secret, same callback URL)."""
        return same_secret(str(other_config.get(const.CONF_APP_SECRET) or ""), self._conf(const.CONF_APP_SECRET))

    # sending

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send the attachment (uploaded) and then the text, split into parts of 2000 characters.

        Each part is a Send API call of its own: the parts an earlier attempt got through
        (``message.parts_sent``) are skipped, and each new one is handed to ``message.keep_part``
        before the next goes. Each carries ``part_metadata``, so that its echo names the reply and
        the part even when the call's answer is lost.
        """
        recipient = {"id": message.chat_external_id}
        texts = split_text(message.text) if message.text else []
        if message.attachment is None and not texts:
            raise SendError("nothing to send", permanent=True)
        parts: list[Callable[[str], Awaitable[dict[str, Any]]]] = []
        if message.attachment is not None:
            parts.append(functools.partial(self._send_file, recipient, message.attachment))
        parts.extend(functools.partial(self._send_text, recipient, text) for text in texts)
        sent = list(message.parts_sent)
        try:
            for number in range(len(sent), len(parts)):
                answer = await parts[number](part_metadata(message.desk_id, number, len(parts)))
                sent.append(self._message_id(answer))
                await message.keep_part(sent[-1])
        except GraphError as exc:
            raise send_error(exc) from exc
        except OSError as exc:
            raise SendError(f"cannot read the attachment: {exc.strerror or exc}", permanent=True) from exc
        return SendResult(external_id=sent[-1])

    async def _send_file(
        self, recipient: dict[str, str], attachment: OutgoingAttachment, metadata: str
    ) -> dict[str, Any]:
        kind = attachment.kind if attachment.kind in const.SEND_ATTACHMENT_TYPES else "file"
        payload = {"attachment": {"type": kind, "payload": {"is_reusable": False}}, "metadata": metadata}
        return await self.api.send_upload(recipient, payload, attachment.path, attachment.file_name, attachment.mime)

    async def _send_text(self, recipient: dict[str, str], text: str, metadata: str) -> dict[str, Any]:
        return await self.api.send_message(
            {
                "recipient": recipient,
                "messaging_type": const.MESSAGING_TYPE_RESPONSE,
                "message": {"text": text, "metadata": metadata},
            }
        )

    @staticmethod
    def _message_id(answer: dict[str, Any]) -> str:
        message_id = answer.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            # Sent, but without an id we cannot match the echo; retrying would send it twice.
            return ""
        return message_id

    # profile and files

    async def fetch_profile(self, contact_external_id: str, chat_external_id: str) -> Profile | None:
        """Look the customer up with the User Profile API; ``None`` when Graph tells nothing."""
        try:
            answer = await self.api.profile(contact_external_id)
        except GraphError:
            return None
        first = answer.get("first_name") if isinstance(answer.get("first_name"), str) else ""
        last = answer.get("last_name") if isinstance(answer.get("last_name"), str) else ""
        picture = answer.get("profile_pic")
        name = " ".join(part for part in (first, last) if part)
        avatar = IncomingAttachment(kind="image", ref=picture) if isinstance(picture, str) and picture else None
        if not name and avatar is None:
            return None
        return Profile(name=name or None, avatar=avatar)

    async def fetch_attachment(self, attachment: IncomingAttachment) -> Download:
        """Start downloading a CDN URL from Meta's hosts (or the configured Graph base), up to 25 MB."""
        if not attachment.ref:
            raise FetchError("the attachment has nothing to download")
        try:
            return await download_checked(
                self.http,
                attachment.ref,
                allowed_hosts=const.CDN_HOSTS,
                configured_base=self.graph_base,
                limit=self.max_download,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A network blip: the core retries connection errors. Re-raised without the URL,
            # which is a signed CDN link.
            raise aiohttp.ClientConnectionError(f"cannot download the file: {type(exc).__name__}") from None
