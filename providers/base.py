"""The provider contract: what every messenger integration implements.

A provider translates between a messenger and Desk. It never imports ``desk``: it receives its
channel's config (a plain dict) and an injected ``aiohttp.ClientSession``, and returns the
dataclasses below. The core persists; the provider translates.

Mapping to Creatio's workers:
  IIncomeMessageWorker          -> verify_request + parse
  IOutcomeMessageWorker         -> send
  IMessengerRegistrationWorker  -> validate + register + unregister (+ health)
  IProfileDataProvider          -> fetch_profile
  attachment download           -> fetch_attachment
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

import aiohttp

AttachmentKind = Literal["image", "video", "audio", "file", "sticker", "location", "contact"]


# --- errors -----------------------------------------------------------------------------------


class ProviderError(Exception):
    """Base class of every error a provider raises."""


class BadSignature(ProviderError):
    """The webhook request failed its secret or signature check (answered 403)."""


class BadPayload(ProviderError):
    """The webhook body is not what the messenger sends (answered 400)."""


class InvalidCredentials(ProviderError):
    """The messenger refused the credentials; ``field`` names the config field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CannotConnect(ProviderError):
    """The messenger could not be reached or answered something unusable."""


class SendError(ProviderError):
    """A send failed.

    ``permanent`` sends end ``failed`` with ``reason`` shown to the agent; others are retried,
    after ``retry_after`` seconds when the messenger said so (a 429). ``moved_to`` is the
    conversation's new id when the messenger moved it (a Telegram group upgraded to a
    supergroup): the core re-keys the chat and sends again there.
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        code: str | None = None,
        moved_to: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code
        self.moved_to = moved_to


class FetchError(ProviderError):
    """A profile picture or attachment could not be fetched (refused host, too large, gone)."""


# --- settings form ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Field:
    """A config field the admin fills in: name, label, type, required, secret."""

    name: str
    label: str
    type: Literal["text", "password", "url"] = "text"
    required: bool = True
    secret: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the field as the JSON of ``GET /api/providers``."""
        return dataclasses.asdict(self)


# --- what comes in ----------------------------------------------------------------------------


@dataclasses.dataclass
class IncomingContact:
    """The customer who wrote: external_id (string), name, username (no @), avatar_url."""

    external_id: str
    name: str = ""
    username: str | None = None
    avatar_url: str | None = None


@dataclasses.dataclass
class IncomingAttachment:
    """A file on the messenger's side: ``ref`` is what ``fetch_attachment`` needs to download it.

    ``ref`` is ``None`` for kinds with nothing to download (location, contact): their content is
    in ``meta`` and the message text.
    """

    kind: AttachmentKind
    ref: str | None = None
    file_name: str | None = None
    mime: str | None = None
    size: int | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class IncomingMessage:
    """A customer message (or an edit of one) in one conversation.

    chat_external_id: the messenger's conversation (Telegram chat.id, Facebook PSID).
    external_id: the message's id, unique within the channel (Telegram "chat:message_id",
    Facebook mid): the dedupe key and the key an edit refers to.
    account_key: the messenger account it was sent to (Facebook page id) when one webhook URL
    serves several accounts; ``None`` means "the channel that received it".
    outgoing: the account's own message to the customer, as the messenger copies it back (a
    Facebook echo): typed by a person in the messenger's own inbox, sent by another app, or by
    the desk itself. ``contact`` is then the customer it went to. The core stores it as an
    outgoing message, unless it is the copy of the desk's own reply: ``desk_id`` (the
    ``OutgoingMessage.desk_id`` the provider put into the send, read back from the copy) or
    ``external_id`` (the ``SendResult.external_id`` of the send, or a part's id given to
    ``keep_part``) says so. Such a copy proves that the messenger took that message, even when
    the send's answer was lost: ``desk_part`` (from 0) and ``desk_parts`` say which part of the
    reply it is and how many the reply was sent as (1 for a reply in one message), when the
    provider put them into the send too; the core then counts the part as sent and, with the
    last one, the reply, so that the outbox does not send it again. Leave them ``None`` when the
    copy does not tell: it is then only recognised.
    """

    chat_external_id: str
    external_id: str
    contact: IncomingContact
    text: str = ""
    attachments: list[IncomingAttachment] = dataclasses.field(default_factory=list)
    sent_at: datetime | None = None
    is_edit: bool = False
    account_key: str | None = None
    chat_title: str | None = None
    outgoing: bool = False
    desk_id: int | None = None
    desk_part: int | None = None
    desk_parts: int | None = None


@dataclasses.dataclass
class StatusUpdate:
    """A messenger's report on our own outgoing messages.

    kind "delivered" / "read": ``external_ids`` (when given) and/or every outgoing message of the
    chat sent before ``watermark``. kind "echo": the messenger's copy of a message the account
    sent (``external_ids`` holds its id); the core ignores it (a provider that can tell what was
    sent returns an ``IncomingMessage`` with ``outgoing=True`` instead, which the core stores).
    kind "blocked": the customer blocked the account (no message; recorded as a system note).
    kind "moved": the conversation ``chat_external_id`` now has the id ``moved_to`` (a Telegram
    group upgraded to a supergroup); the core re-keys its chats, which go on as they were.
    """

    kind: Literal["delivered", "read", "echo", "blocked", "unblocked", "moved"]
    chat_external_id: str
    external_ids: list[str] = dataclasses.field(default_factory=list)
    watermark: datetime | None = None
    account_key: str | None = None
    text: str = ""
    moved_to: str | None = None


@dataclasses.dataclass
class ParsedRequest:
    """What one webhook request carries.

    dedupe_key: the delivery's own id when the messenger has one (Telegram ``update:<update_id>``);
    the same key again is a duplicate delivery and is acknowledged without storing anything.
    Messages are also deduplicated one by one on ``IncomingMessage.external_id``.
    """

    items: list[IncomingMessage | StatusUpdate]
    dedupe_key: str | None = None


# --- what goes out ----------------------------------------------------------------------------


@dataclasses.dataclass
class OutgoingAttachment:
    """A file an agent attached: path on disk, the name and MIME type to send it under."""

    path: str
    file_name: str
    mime: str
    kind: AttachmentKind = "file"


async def _keep_no_part(part_id: str) -> None:
    return None


@dataclasses.dataclass
class OutgoingMessage:
    """An agent reply: plain text (never parsed as markup) and at most one attachment.

    ``desk_id`` is Desk's own message id, which a provider may pass as metadata so the
    messenger's echo can be matched.

    A reply the messenger takes as several messages (a text past its limit, a file and then its
    text) is sent in parts, and a send may fail or be cut off between two parts. So that a retry
    never sends a part twice: ``parts_sent`` holds the ids of the parts the messenger accepted on
    earlier attempts, in order (send only the parts after them), and the provider awaits
    ``keep_part(id)`` as soon as the messenger accepts each part, before sending the next; the
    core stores it at once, so it survives a crash, and maps every part's id to this reply.
    """

    chat_external_id: str
    text: str
    desk_id: int
    attachment: OutgoingAttachment | None = None
    parts_sent: list[str] = dataclasses.field(default_factory=list)
    keep_part: Callable[[str], Awaitable[None]] = _keep_no_part


@dataclasses.dataclass
class SendResult:
    """A send the messenger accepted: the id it gave the message (for a reply in parts, the last part's)."""

    external_id: str


@dataclasses.dataclass
class Profile:
    """A customer's profile as the messenger tells it."""

    name: str | None = None
    username: str | None = None
    # The profile picture, downloaded by the core through ``fetch_attachment`` and served by the
    # desk itself: messenger URLs expire and Telegram's embed the bot token.
    avatar: IncomingAttachment | None = None


@dataclasses.dataclass
class ChannelIdentity:
    """Who the credentials belong to: ``unique_key`` (bot id, page id) blocks duplicates."""

    unique_key: str
    display_name: str


@dataclasses.dataclass
class Registration:
    """The result of registering a webhook: ok, or the messenger's reason."""

    ok: bool
    error: str | None = None


@dataclasses.dataclass
class Health:
    """Webhook health as the messenger reports it."""

    ok: bool
    pending: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """Outbound limits the core keeps for the provider: seconds between sends to one chat, sends a second per channel."""

    per_chat_interval: float = 0.0
    per_second: float = 0.0


@dataclasses.dataclass
class Download:
    """An attachment being downloaded: its chunks, and what the messenger said of it."""

    chunks: AsyncIterator[bytes]
    mime: str | None = None
    size: int | None = None


# --- the provider -----------------------------------------------------------------------------


class Provider(abc.ABC):
    """One messenger. One instance serves one channel: ``config`` is that channel's config.

    ``secret`` is the per-channel webhook secret the core generated (Telegram sends it back in a
    header; providers whose messenger signs requests with a config secret may ignore it).
    """

    code: ClassVar[str]
    name: ClassVar[str]
    fields: ClassVar[list[Field]]
    limits: ClassVar[RateLimits] = RateLimits()
    # Largest attachment the desk downloads from this messenger (bytes).
    max_download: ClassVar[int] = 20 * 1024 * 1024

    def __init__(self, config: Mapping[str, Any], http: aiohttp.ClientSession, secret: str = "") -> None:
        self.config = dict(config)
        self.http = http
        self.secret = secret

    # registration (IMessengerRegistrationWorker)
    @abc.abstractmethod
    async def validate(self) -> ChannelIdentity:
        """Check the credentials with the messenger; raise InvalidCredentials or CannotConnect."""

    @abc.abstractmethod
    async def register(self, webhook_url: str) -> Registration:
        """Point the messenger at ``webhook_url``; report the result, never raise for a refusal."""

    @abc.abstractmethod
    async def unregister(self) -> Registration:
        """Stop the messenger's deliveries to this desk."""

    async def health(self) -> Health:
        """Report the webhook's health as the messenger sees it."""
        return Health(ok=True)

    # receiving (IIncomeMessageWorker)
    @abc.abstractmethod
    def verify_request(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise BadSignature unless the raw request is authentic; runs before any parsing."""

    @abc.abstractmethod
    def parse(self, body: bytes) -> ParsedRequest:
        """Turn the raw body into unified items; raise BadPayload for what the messenger never sends."""

    def verification_response(self, query: Mapping[str, str]) -> str | None:
        """Answer a GET handshake on the webhook URL (Facebook); ``None`` means refuse (403)."""
        return None

    def shares_webhook_with(self, other_config: Mapping[str, Any]) -> bool:
        """Whether a request checked with this channel's secret may carry items for ``other_config``'s account."""
        return False

    # sending (IOutcomeMessageWorker)
    @abc.abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver an agent reply as plain text; raise SendError with the messenger's reason."""

    # profile and files
    async def fetch_profile(self, contact_external_id: str, chat_external_id: str) -> Profile | None:
        """Look the customer up (IProfileDataProvider); ``None`` when the messenger tells nothing."""
        return None

    @abc.abstractmethod
    async def fetch_attachment(self, attachment: IncomingAttachment) -> Download:
        """Start downloading an incoming attachment or avatar; raise FetchError when it cannot be had.

        URLs that arrive in webhooks are fetched only from the messenger's own hosts (and the
        configured base URL's scheme, host and port); ``providers.netguard`` does that check.
        """
