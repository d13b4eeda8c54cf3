"""Pure functions from an API channel webhook body to unified ``providers.base`` items.

One message is ``{"id", "conversation", "contact": {"id", "name"?, "username"?}, "text"?,
"attachments"?: [{"kind"?, "url", "file_name"?, "mime"?}], "sent_at"?}``; a batch is
``{"messages": [message, ...]}``. Ids may be strings or integers; they are stored as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from providers.api.const import (
    INBOUND_KINDS,
    MAX_FILE_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_MIME_LENGTH,
    MAX_NAME_LENGTH,
    MAX_USERNAME_LENGTH,
)
from providers.base import (
    BadPayload,
    IncomingAttachment,
    IncomingContact,
    IncomingMessage,
    ParsedRequest,
)
from providers.common import load_json_object


def identifier(value: Any, where: str) -> str:
    """Return a required id (a non-empty string or an integer) as a string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadPayload(f"{where} is missing or not a string")
    text = str(value).strip()
    if not text:
        raise BadPayload(f"{where} is empty")
    if len(text) > MAX_ID_LENGTH:
        raise BadPayload(f"{where} is longer than {MAX_ID_LENGTH} characters")
    return text


def optional_text(value: Any, where: str, limit: int | None = None) -> str | None:
    """Return an optional string field, cut to ``limit`` characters; ``None`` when absent or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{where} is not a string")
    text = value.strip()
    if not text:
        return None
    return text[:limit] if limit else text


def timestamp(value: Any, where: str) -> datetime | None:
    """Return ``sent_at``, ISO 8601 (UTC when it has no offset) or Unix seconds, as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise BadPayload(f"{where} is not a time") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise BadPayload(f"{where} is not an ISO 8601 time") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise BadPayload(f"{where} is not a time")


def parse_contact(value: Any, where: str) -> IncomingContact:
    """Return the customer who wrote: ``id``, ``name`` and ``username`` (without its ``@``)."""
    if not isinstance(value, dict):
        raise BadPayload(f"{where} is missing or not an object")
    username = optional_text(value.get("username"), f"{where}.username")
    if username is not None:
        username = username.lstrip("@")[:MAX_USERNAME_LENGTH] or None
    return IncomingContact(
        external_id=identifier(value.get("id"), f"{where}.id"),
        name=optional_text(value.get("name"), f"{where}.name", MAX_NAME_LENGTH) or "",
        username=username,
    )


def parse_attachment(value: Any, where: str) -> IncomingAttachment:
    """Return one attachment: its URL (fetched later by the provider), kind, file name and MIME type."""
    if not isinstance(value, dict):
        raise BadPayload(f"{where} is not an object")
    url = optional_text(value.get("url"), f"{where}.url")
    if url is None:
        raise BadPayload(f"{where}.url is missing")
    kind = optional_text(value.get("kind"), f"{where}.kind") or "file"
    if kind not in INBOUND_KINDS:
        raise BadPayload(f"{where}.kind must be one of {', '.join(sorted(INBOUND_KINDS))}")
    mime = optional_text(value.get("mime"), f"{where}.mime")
    return IncomingAttachment(
        kind=kind,  # type: ignore[arg-type]  # checked against INBOUND_KINDS above
        ref=url,
        file_name=optional_text(value.get("file_name"), f"{where}.file_name", MAX_FILE_NAME_LENGTH),
        mime=mime if mime and len(mime) <= MAX_MIME_LENGTH else None,
    )


def parse_message(value: Any, where: str = "the message") -> IncomingMessage:
    """Turn one posted message into an IncomingMessage."""
    if not isinstance(value, dict):
        raise BadPayload(f"{where} is not an object")
    text = value.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadPayload(f"{where}.text is not a string")
    raw_attachments = value.get("attachments")
    if raw_attachments is None:
        raw_attachments = []
    if not isinstance(raw_attachments, list):
        raise BadPayload(f"{where}.attachments is not a list")
    attachments = [parse_attachment(item, f"{where}.attachments[{n}]") for n, item in enumerate(raw_attachments)]
    if not text.strip() and not attachments:
        raise BadPayload(f"{where} has neither text nor attachments")
    return IncomingMessage(
        chat_external_id=identifier(value.get("conversation"), f"{where}.conversation"),
        external_id=identifier(value.get("id"), f"{where}.id"),
        contact=parse_contact(value.get("contact"), f"{where}.contact"),
        text=text,
        attachments=attachments,
        sent_at=timestamp(value.get("sent_at"), f"{where}.sent_at"),
    )


def parse_body(body: bytes) -> ParsedRequest:
    """Turn a webhook body (one message, or ``{"messages": [...]}``) into unified items, in order."""
    data = load_json_object(body)
    if "messages" not in data:
        return ParsedRequest(items=[parse_message(data)])
    batch = data["messages"]
    if not isinstance(batch, list):
        raise BadPayload("messages is not a list")
    return ParsedRequest(items=[parse_message(item, f"messages[{n}]") for n, item in enumerate(batch)])
