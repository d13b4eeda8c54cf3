"""Pure functions: a Messenger webhook body (raw bytes) -> unified items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from providers.base import (
    BadPayload,
    IncomingAttachment,
    IncomingContact,
    IncomingMessage,
    ParsedRequest,
    StatusUpdate,
)
from providers.common import load_json_object
from providers.facebook import const

# Attachment types downloaded as they are.
MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})
# Shares that carry a title and a link, not a file: shown as text.
SHARE_TYPES = frozenset({"fallback", "reel", "ig_reel", "post", "ig_post"})

Item = IncomingMessage | StatusUpdate


def parse_body(body: bytes) -> ParsedRequest:
    """Turn a raw webhook body into items; raise BadPayload for what Messenger never sends."""
    data = load_json_object(body)
    if data.get("object") != "page":
        return ParsedRequest(items=[])
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise BadPayload("entry is not a list")
    items: list[Item] = []
    for entry in entries:
        items.extend(parse_entry(entry))
    return ParsedRequest(items=items)


def parse_entry(entry: Any) -> list[Item]:
    """Turn one entry (one page's events) into items; ``standby`` events are not ours."""
    if not isinstance(entry, dict):
        raise BadPayload("an entry is not an object")
    events = entry.get("messaging")
    if events is None:
        return []
    if not isinstance(events, list):
        raise BadPayload("entry.messaging is not a list")
    page_id = _id(entry.get("id"))
    items: list[Item] = []
    for event in events:
        item = parse_event(event, page_id)
        if item is not None:
            items.append(item)
    return items


def parse_event(event: Any, page_id: str | None) -> Item | None:
    """Turn one messaging event into an item, or ``None`` for kinds the desk ignores."""
    if not isinstance(event, dict):
        raise BadPayload("a messaging event is not an object")
    sender = event.get("sender")
    sender_id = _id(sender.get("id")) if isinstance(sender, dict) else None
    if sender_id is None:
        raise BadPayload("a messaging event has no sender.id")
    recipient = event.get("recipient")
    recipient_id = _id(recipient.get("id")) if isinstance(recipient, dict) else None
    timestamp = event.get("timestamp")
    message = event.get("message")
    if isinstance(message, dict):
        if message.get("is_echo") is True:
            return parse_echo(message, recipient_id, timestamp, page_id)
        return parse_message(message, sender_id, timestamp, page_id)
    postback = event.get("postback")
    if isinstance(postback, dict):
        return parse_postback(postback, sender_id, timestamp, page_id)
    delivery = event.get("delivery")
    if isinstance(delivery, dict):
        mids = delivery.get("mids")
        return StatusUpdate(
            kind="delivered",
            chat_external_id=sender_id,
            external_ids=[mid for mid in mids if isinstance(mid, str)] if isinstance(mids, list) else [],
            watermark=ms_to_datetime(delivery.get("watermark")),
            account_key=page_id,
        )
    read = event.get("read")
    if isinstance(read, dict):
        return StatusUpdate(
            kind="read",
            chat_external_id=sender_id,
            watermark=ms_to_datetime(read.get("watermark")),
            account_key=page_id,
        )
    # reaction, optin, referral, account_linking, handover...: nothing the desk shows.
    return None


def parse_message(message: dict[str, Any], psid: str, timestamp: Any, page_id: str | None) -> IncomingMessage:
    """Turn a customer's ``message`` into an IncomingMessage."""
    text = _text(message.get("text"))
    attachments, shares, unsupported = parse_attachments(message.get("attachments"))
    if not text:
        if shares:
            text = shares[0]
        elif unsupported:
            text = const.UNSUPPORTED_TEXT
    mid = message.get("mid")
    return IncomingMessage(
        chat_external_id=psid,
        external_id=mid if isinstance(mid, str) and mid else f"message:{psid}:{timestamp}",
        contact=IncomingContact(external_id=psid),
        text=text,
        attachments=attachments,
        sent_at=ms_to_datetime(timestamp),
        account_key=page_id,
    )


def parse_attachments(raw: Any) -> tuple[list[IncomingAttachment], list[str], bool]:
    """Return the downloadable attachments, the shares as text, and whether any was unsupported."""
    attachments: list[IncomingAttachment] = []
    shares: list[str] = []
    unsupported = False
    stickers: set[str] = set()
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            unsupported = True
            continue
        kind = item.get("type")
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        url = payload.get("url") if isinstance(payload.get("url"), str) and payload.get("url") else None
        sticker_id = _id(payload.get("sticker_id"))
        if kind == "sticker" or (kind == "image" and sticker_id is not None):
            # Until Aug 2026 a sticker comes as an image and a sticker with the same sticker_id.
            key = sticker_id or url or ""
            if key in stickers:
                continue
            stickers.add(key)
            if url is None:
                unsupported = True
                continue
            meta = {"sticker_id": sticker_id} if sticker_id else {}
            attachments.append(IncomingAttachment(kind="sticker", ref=url, meta=meta))
        elif kind in MEDIA_TYPES:
            if url is None:
                unsupported = True
                continue
            file_name = file_name_from_url(url) if kind == "file" else None
            attachments.append(IncomingAttachment(kind=kind, ref=url, file_name=file_name))
        elif kind in SHARE_TYPES:
            share = "\n".join(part for part in (_text(payload.get("title")), url or "") if part)
            if share:
                shares.append(share)
            else:
                unsupported = True
        elif kind == "location":
            location = parse_location(payload)
            if location is None:
                unsupported = True
            else:
                attachments.append(location)
        else:
            unsupported = True
    return attachments, shares, unsupported


def parse_location(payload: dict[str, Any]) -> IncomingAttachment | None:
    """Turn a legacy location payload into a location attachment (nothing to download)."""
    coordinates = payload.get("coordinates")
    if not isinstance(coordinates, dict):
        return None
    lat, long = coordinates.get("lat"), coordinates.get("long")
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (lat, long)):
        return None
    return IncomingAttachment(kind="location", meta={"lat": lat, "long": long})


def parse_echo(
    message: dict[str, Any], recipient_id: str | None, timestamp: Any, page_id: str | None
) -> IncomingMessage | None:
    """Turn the page's own message (sent by the desk, another app or a person) into an outgoing item.

    The conversation is the recipient's. ``desk_id`` comes from the ``metadata`` the desk puts on
    its sends: it recognises the echo of the desk's own reply even before the Send API's answer
    (with the ``mid``) is stored, and for every part of a reply sent in several messages. The part
    it names (``desk_part`` of ``desk_parts``) lets the echo confirm a send whose answer was lost.
    """
    if recipient_id is None:
        return None
    item = parse_message(message, recipient_id, timestamp, page_id)
    item.outgoing = True
    item.desk_id, item.desk_part, item.desk_parts = desk_reply_from_metadata(message.get("metadata"))
    return item


def desk_reply_from_metadata(metadata: Any) -> tuple[int | None, int | None, int | None]:
    """Return (desk message id, part from 0, parts) of ``desk:<id>:<part>/<parts>`` metadata.

    A bare ``desk:<id>`` gives the id alone (parts ``None``); another sender's metadata gives
    ``(None, None, None)``.
    """
    nothing = (None, None, None)
    if not isinstance(metadata, str) or not metadata.startswith(const.METADATA_PREFIX):
        return nothing
    digits, separator, part = metadata[len(const.METADATA_PREFIX) :].partition(const.METADATA_PART_SEPARATOR)
    if not _digits(digits, const.METADATA_ID_MAX_DIGITS):
        return nothing
    if not separator:
        return int(digits), None, None
    number, _, count = part.partition("/")
    if not (_digits(number, const.METADATA_PART_MAX_DIGITS) and _digits(count, const.METADATA_PART_MAX_DIGITS)):
        return nothing
    if not 1 <= int(number) <= int(count):
        return nothing
    return int(digits), int(number) - 1, int(count)


def _digits(text: str, most: int) -> bool:
    # str.isdigit alone takes other scripts' digits (Arabic-Indic), which are no id of ours.
    return text.isascii() and text.isdigit() and len(text) <= most


def parse_postback(postback: dict[str, Any], psid: str, timestamp: Any, page_id: str | None) -> IncomingMessage:
    """Turn a button press into a message whose text is the button's title."""
    mid = postback.get("mid")
    text = _text(postback.get("title")) or _text(postback.get("payload"))
    return IncomingMessage(
        chat_external_id=psid,
        external_id=mid if isinstance(mid, str) and mid else f"postback:{psid}:{timestamp}",
        contact=IncomingContact(external_id=psid),
        text=text,
        sent_at=ms_to_datetime(timestamp),
        account_key=page_id,
    )


def ms_to_datetime(value: Any) -> datetime | None:
    """Convert epoch milliseconds to an aware UTC datetime; ``None`` when absent or invalid."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def file_name_from_url(url: str) -> str | None:
    """Return the file's name as the CDN URL's last path segment carries it."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or None


def _id(value: Any) -> str | None:
    """Return an id as a string (Graph ids are strings; tolerate numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def _text(value: Any) -> str:
    """Return a string field, with lone surrogates (from a bad \\u escape) replaced."""
    if not isinstance(value, str):
        return ""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value
