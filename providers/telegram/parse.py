"""Pure functions from a Telegram webhook body to unified ``providers.base`` items."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from providers.base import (
    BadPayload,
    IncomingAttachment,
    IncomingContact,
    IncomingMessage,
    ParsedRequest,
    StatusUpdate,
)
from providers.common import load_json_object
from providers.telegram.const import STATUS_BLOCKED, STATUS_UNBLOCKED


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _chat_id(chat: Any) -> int | None:
    return _int(chat.get("id")) if isinstance(chat, dict) else None


def load_update(body: bytes) -> dict[str, Any]:
    """Decode the raw body into an Update object; raise BadPayload if Telegram never sends it."""
    update = load_json_object(body)
    if _int(update.get("update_id")) is None:
        raise BadPayload("update_id is missing or not an integer")
    return update


def timestamp(value: Any) -> datetime | None:
    """Turn Telegram's Unix seconds into an aware UTC datetime (``None`` when absent or absurd)."""
    seconds = _number(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def full_name(first: Any, last: Any) -> str:
    """Join a first and last name with a space, either of them possibly missing."""
    return " ".join(part.strip() for part in (first, last) if isinstance(part, str) and part.strip())


def username(value: Any) -> str | None:
    """Return a username without its leading ``@`` (``None`` when there is none)."""
    text = _str(value)
    return (text.lstrip("@") or None) if text else None


def parse_contact(message: dict[str, Any]) -> IncomingContact:
    """Return who wrote ``message``: its ``from`` user, else the chat it was sent on behalf of."""
    user = message.get("from")
    if isinstance(user, dict) and _int(user.get("id")) is not None:
        return IncomingContact(
            external_id=str(user["id"]),
            name=full_name(user.get("first_name"), user.get("last_name")),
            username=username(user.get("username")),
        )
    sender = message.get("sender_chat")
    if _chat_id(sender) is None:
        sender = message["chat"]
    name = _str(sender.get("title")) or full_name(sender.get("first_name"), sender.get("last_name"))
    return IncomingContact(external_id=str(sender["id"]), name=name, username=username(sender.get("username")))


def _file(kind: Any, media: dict[str, Any], mime: str | None, **meta: Any) -> IncomingAttachment | None:
    file_id = _str(media.get("file_id"))
    if file_id is None:
        return None
    meta = {key: value for key, value in meta.items() if value is not None}
    unique = _str(media.get("file_unique_id"))
    if unique:
        meta["file_unique_id"] = unique
    return IncomingAttachment(
        kind=kind,
        ref=file_id,
        file_name=_str(media.get("file_name")),
        mime=_str(media.get("mime_type")) or mime,
        size=_int(media.get("file_size")),
        meta=meta,
    )


def _photo(sizes: Any) -> IncomingAttachment | None:
    if not isinstance(sizes, list):
        return None
    candidates = [size for size in sizes if isinstance(size, dict) and _str(size.get("file_id"))]
    if not candidates:
        return None

    def area(size: dict[str, Any]) -> int:
        return (_int(size.get("width")) or 0) * (_int(size.get("height")) or 0)

    # Sizes come small to large; the largest area wins, the later one on ties.
    largest = max(reversed(candidates), key=area)
    # Telegram re-encodes every photo size as JPEG.
    return _file("image", largest, "image/jpeg", width=_int(largest.get("width")), height=_int(largest.get("height")))


def _sticker_mime(sticker: dict[str, Any]) -> str:
    if sticker.get("is_animated") is True:
        return "application/x-tgsticker"
    if sticker.get("is_video") is True:
        return "video/webm"
    return "image/webp"


def parse_attachments(message: dict[str, Any]) -> list[IncomingAttachment]:
    """Return the media, location or contact a message carries."""
    found: list[IncomingAttachment | None] = []
    if "photo" in message:
        found.append(_photo(message["photo"]))
    animation = _dict(message.get("animation"))
    if animation:
        # An animation message also sets ``document`` to the same file: keep only the animation.
        found.append(_file("video", animation, "video/mp4", duration=_int(animation.get("duration"))))
    else:
        found.append(_file("file", _dict(message.get("document")), None))
    audio = _dict(message.get("audio"))
    found.append(
        _file(
            "audio",
            audio,
            None,
            duration=_int(audio.get("duration")),
            performer=_str(audio.get("performer")),
            title=_str(audio.get("title")),
        )
    )
    voice = _dict(message.get("voice"))
    found.append(_file("audio", voice, "audio/ogg", duration=_int(voice.get("duration"))))
    video = _dict(message.get("video"))
    found.append(_file("video", video, "video/mp4", duration=_int(video.get("duration"))))
    note = _dict(message.get("video_note"))
    found.append(_file("video", note, "video/mp4", duration=_int(note.get("duration"))))
    sticker = _dict(message.get("sticker"))
    # A sticker has no mime_type: its format flags decide.
    found.append(_file("sticker", sticker, _sticker_mime(sticker), emoji=_str(sticker.get("emoji"))))

    location = _dict(message.get("location"))
    latitude, longitude = _number(location.get("latitude")), _number(location.get("longitude"))
    if latitude is not None and longitude is not None:
        meta: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        venue = _dict(message.get("venue"))
        for key in ("title", "address"):
            if _str(venue.get(key)):
                meta[key] = venue[key]
        found.append(IncomingAttachment(kind="location", meta=meta))

    contact = _dict(message.get("contact"))
    if _str(contact.get("phone_number")) or _str(contact.get("first_name")):
        found.append(
            IncomingAttachment(
                kind="contact",
                meta={
                    "phone_number": _str(contact.get("phone_number")),
                    "first_name": _str(contact.get("first_name")),
                    "last_name": _str(contact.get("last_name")),
                    "user_id": _int(contact.get("user_id")),
                },
            )
        )
    return [attachment for attachment in found if attachment is not None]


def parse_message(message: Any, *, is_edit: bool, update_id: int) -> IncomingMessage | None:
    """Turn a Message into an IncomingMessage; ``None`` for a message with nothing to show."""
    if not isinstance(message, dict):
        raise BadPayload("the message is not an object")
    chat = message.get("chat")
    chat_id = _chat_id(chat)
    if chat_id is None:
        raise BadPayload("the message has no chat with an integer id")
    text = message.get("text")
    if not isinstance(text, str):
        text = message.get("caption") if isinstance(message.get("caption"), str) else ""
    attachments = parse_attachments(message)
    if not text and not attachments:
        # Service messages (members joined or left, title changed, pinned...) and kinds the desk
        # cannot show.
        return None
    message_id = _int(message.get("message_id"))
    # Telegram always sends message_id; without one, the update is the only identity there is.
    local_id = str(message_id) if message_id is not None else f"update{update_id}"
    chat_type = chat.get("type")
    return IncomingMessage(
        chat_external_id=str(chat_id),
        external_id=f"{chat_id}:{local_id}",
        contact=parse_contact(message),
        text=text,
        attachments=attachments,
        sent_at=timestamp(message.get("date")),
        is_edit=is_edit,
        chat_title=_str(chat.get("title")) if chat_type != "private" else None,
    )


def parse_member_update(member_update: Any) -> StatusUpdate | None:
    """Turn a private chat's my_chat_member into ``blocked`` / ``unblocked``; ``None`` for others."""
    member_update = _dict(member_update)
    chat = _dict(member_update.get("chat"))
    chat_id = _chat_id(chat)
    if chat_id is None or chat.get("type") != "private":
        return None
    status = _dict(member_update.get("new_chat_member")).get("status")
    if status == STATUS_BLOCKED:
        return StatusUpdate(kind="blocked", chat_external_id=str(chat_id))
    if status == STATUS_UNBLOCKED:
        return StatusUpdate(kind="unblocked", chat_external_id=str(chat_id))
    return None


def parse_migration(message: Any) -> StatusUpdate | None:
    """Turn either service message of a group's upgrade to a supergroup into ``moved``; ``None`` for others.

    The old group gets one with ``migrate_to_chat_id``, the new supergroup one with
    ``migrate_from_chat_id``; both say the same, and the second finds nothing left to move.
    """
    message = _dict(message)
    chat_id = _chat_id(message.get("chat"))
    moved_to, moved_from = _int(message.get("migrate_to_chat_id")), _int(message.get("migrate_from_chat_id"))
    if chat_id is None:
        return None
    if moved_to is not None:
        return StatusUpdate(kind="moved", chat_external_id=str(chat_id), moved_to=str(moved_to))
    if moved_from is not None:
        return StatusUpdate(kind="moved", chat_external_id=str(moved_from), moved_to=str(chat_id))
    return None


def parse_update(body: bytes) -> ParsedRequest:
    """Turn one webhook body (one Update) into a ParsedRequest; raise BadPayload for garbage."""
    update = load_update(body)
    update_id = update["update_id"]
    items: list[IncomingMessage | StatusUpdate] = []
    item: IncomingMessage | StatusUpdate | None = None
    if "message" in update:
        message = update["message"]
        item = parse_migration(message) or parse_message(message, is_edit=False, update_id=update_id)
    elif "edited_message" in update:
        item = parse_message(update["edited_message"], is_edit=True, update_id=update_id)
    elif "my_chat_member" in update:
        item = parse_member_update(update["my_chat_member"])
    if item is not None:
        items.append(item)
    return ParsedRequest(items=items, dedupe_key=f"update:{update_id}")
