"""Telegram webhook parsing: captured updates to unified items, garbage to BadPayload, the secret header."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from providers.base import BadPayload, BadSignature, IncomingMessage, StatusUpdate
from providers.telegram import TelegramProvider
from providers.telegram.parse import parse_update

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
OLENA = "5123456789"


def raw(name: str) -> bytes:
    with open(FIXTURES / name, "rb") as handle:
        return handle.read()


def fixture(name: str) -> dict[str, Any]:
    return json.loads(raw(name))


def body(update: Any) -> bytes:
    return json.dumps(update).encode()


def only_message(data: bytes) -> IncomingMessage:
    parsed = parse_update(data)
    assert len(parsed.items) == 1
    item = parsed.items[0]
    assert isinstance(item, IncomingMessage)
    return item


# --- captured updates ---------------------------------------------------------------------------


def test_text_message() -> None:
    parsed = parse_update(raw("telegram_update_text.json"))
    assert parsed.dedupe_key == "update:861234501"
    message = parsed.items[0]
    assert isinstance(message, IncomingMessage)
    assert message.chat_external_id == OLENA
    assert message.external_id == f"{OLENA}:1042"
    assert message.contact.external_id == OLENA
    assert message.contact.name == "Olena Kovalenko"
    assert message.contact.username == "olena_k"
    assert message.text == "Hi! My order #A-20931 hasn't arrived yet, can you check?"
    assert message.attachments == []
    assert message.sent_at == datetime(2026, 7, 1, 10, 1, 41, tzinfo=timezone.utc)
    assert message.is_edit is False
    assert message.chat_title is None
    assert message.account_key is None


def test_photo_takes_the_largest_size_and_the_caption() -> None:
    message = only_message(raw("telegram_update_photo.json"))
    assert message.text == "This is what I received - the box is damaged"
    assert message.external_id == f"{OLENA}:1043"
    [photo] = message.attachments
    assert photo.kind == "image"
    assert photo.ref == fixture("telegram_update_photo.json")["message"]["photo"][-1]["file_id"]
    assert photo.ref == fixture("telegram_getFile_ok.json")["result"]["file_id"]
    assert photo.mime == "image/jpeg"
    assert photo.size == 154377
    assert photo.file_name is None


def test_document_keeps_its_file_name_and_type() -> None:
    message = only_message(raw("telegram_update_document.json"))
    assert message.text == "Invoice attached"
    [document] = message.attachments
    assert document.kind == "file"
    assert document.file_name == "invoice_A-20931.pdf"
    assert document.mime == "application/pdf"
    assert document.size == 284512
    # The file itself, not its thumbnail.
    assert document.ref == fixture("telegram_update_document.json")["message"]["document"]["file_id"]


def test_voice_is_audio_without_text() -> None:
    message = only_message(raw("telegram_update_voice.json"))
    assert message.text == ""
    [voice] = message.attachments
    assert (voice.kind, voice.mime, voice.size, voice.file_name) == ("audio", "audio/ogg", 28416, None)
    assert voice.meta["duration"] == 7


def test_video_with_caption() -> None:
    message = only_message(raw("telegram_update_video.json"))
    assert message.text == "see 0:05"
    [video] = message.attachments
    assert (video.kind, video.file_name, video.mime, video.size) == ("video", "unboxing.mp4", "video/mp4", 4820145)


def test_animated_sticker() -> None:
    message = only_message(raw("telegram_update_sticker.json"))
    assert message.text == ""
    [sticker] = message.attachments
    assert sticker.kind == "sticker"
    assert sticker.mime == "application/x-tgsticker"
    assert sticker.ref == fixture("telegram_update_sticker.json")["message"]["sticker"]["file_id"]
    assert sticker.meta["emoji"] == "👍"


@pytest.mark.parametrize(
    ("flags", "mime"),
    [
        ({"is_animated": False, "is_video": True}, "video/webm"),
        ({"is_animated": False, "is_video": False}, "image/webp"),
    ],
)
def test_video_and_static_stickers(flags: dict[str, bool], mime: str) -> None:
    update = fixture("telegram_update_sticker.json")
    update["message"]["sticker"].update(flags)
    assert only_message(body(update)).attachments[0].mime == mime


def test_location_has_coordinates_and_nothing_to_download() -> None:
    message = only_message(raw("telegram_update_location.json"))
    assert message.text == ""
    [location] = message.attachments
    assert location.kind == "location"
    assert location.ref is None
    assert location.meta == {"latitude": 50.450092, "longitude": 30.523921}


def test_shared_contact() -> None:
    message = only_message(raw("telegram_update_contact.json"))
    assert message.text == ""
    [contact] = message.attachments
    assert contact.kind == "contact"
    assert contact.ref is None
    assert contact.meta == {
        "phone_number": "+380501234567",
        "first_name": "Olena",
        "last_name": "Kovalenko",
        "user_id": 5123456789,
    }


def test_edit_refers_to_the_original_message() -> None:
    original = only_message(raw("telegram_update_text.json"))
    parsed = parse_update(raw("telegram_update_edited.json"))
    assert parsed.dedupe_key == "update:861234504"
    edit = parsed.items[0]
    assert isinstance(edit, IncomingMessage)
    assert edit.is_edit is True
    assert edit.external_id == original.external_id == f"{OLENA}:1042"
    assert edit.text == "Hi! My order #A-20931 hasn't arrived yet (ordered on June 20), can you check?"
    assert edit.contact.name == "Olena Kovalenko"


def test_group_message_is_the_group_chat_written_by_a_member() -> None:
    message = only_message(raw("telegram_update_from_group.json"))
    assert message.chat_external_id == "-1002198765432"
    assert message.external_id == "-1002198765432:377"
    assert message.chat_title == "Acme Partners Support"
    assert message.contact.external_id == "6234567890"
    assert message.contact.name == "Marco"
    assert message.contact.username == "marco_rossi"
    assert message.text == "@acme_support_bot any update on the wholesale price list?"


def test_blocked_and_unblocked() -> None:
    parsed = parse_update(raw("telegram_update_my_chat_member_blocked.json"))
    assert parsed.dedupe_key == "update:861234511"
    assert parsed.items == [StatusUpdate(kind="blocked", chat_external_id=OLENA)]

    update = fixture("telegram_update_my_chat_member_blocked.json")
    update["update_id"] += 1
    change = update["my_chat_member"]
    change["old_chat_member"], change["new_chat_member"] = change["new_chat_member"], change["old_chat_member"]
    assert parse_update(body(update)).items == [StatusUpdate(kind="unblocked", chat_external_id=OLENA)]


@pytest.mark.parametrize(
    "name", ["telegram_update_migrate_to_chat_id.json", "telegram_update_migrate_from_chat_id.json"]
)
def test_either_notice_of_a_group_upgrade_moves_the_conversation(name: str) -> None:
    # One in the old group, one in the new supergroup: both say the same move, neither is a message.
    parsed = parse_update(raw(name))
    assert parsed.items == [StatusUpdate(kind="moved", chat_external_id="-4081234567", moved_to="-1002198765432")]


# --- shapes not in the captures -----------------------------------------------------------------


def message_update(**content: Any) -> dict[str, Any]:
    base = copy.deepcopy(fixture("telegram_update_text.json"))
    del base["message"]["text"]
    base["message"].update(content)
    return base


def test_animation_is_one_video_not_also_a_document() -> None:
    animation = {"file_id": "CgAC-anim", "file_unique_id": "u1", "file_name": "dance.mp4", "mime_type": "video/mp4",
                 "duration": 3, "width": 320, "height": 240, "file_size": 1000}
    message = only_message(body(message_update(animation=animation, document=dict(animation))))
    assert [(a.kind, a.ref, a.file_name) for a in message.attachments] == [("video", "CgAC-anim", "dance.mp4")]


def test_video_note_and_audio() -> None:
    note = {"file_id": "DQAC-note", "file_unique_id": "u2", "length": 240, "duration": 5}
    [video] = only_message(body(message_update(video_note=note))).attachments
    assert (video.kind, video.mime) == ("video", "video/mp4")

    audio = {"file_id": "CQAC-song", "file_unique_id": "u3", "duration": 200, "file_name": "song.mp3",
             "mime_type": "audio/mpeg", "title": "Song"}
    message = only_message(body(message_update(audio=audio, caption="listen")))
    assert message.text == "listen"
    assert [(a.kind, a.file_name, a.mime) for a in message.attachments] == [("audio", "song.mp3", "audio/mpeg")]


def test_without_from_the_sender_chat_is_the_contact() -> None:
    update = fixture("telegram_update_from_group.json")
    del update["message"]["from"]
    update["message"]["sender_chat"] = {"id": -1002198765432, "title": "Acme Partners Support", "type": "supergroup"}
    contact = only_message(body(update)).contact
    assert (contact.external_id, contact.name) == ("-1002198765432", "Acme Partners Support")


def test_text_that_looks_like_markup_is_kept_as_it_is() -> None:
    message = only_message(body(message_update(text="<b>x</b> & *y* \u202e")))
    assert message.text == "<b>x</b> & *y* \u202e"


def test_name_without_last_name_and_username_with_at() -> None:
    update = fixture("telegram_update_text.json")
    user = update["message"]["from"]
    del user["last_name"]
    user["username"] = "@olena_k"
    contact = only_message(body(update)).contact
    assert (contact.name, contact.username) == ("Olena", "olena_k")


# --- ignored updates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 7, "callback_query": {"id": "1", "from": {"id": 1, "is_bot": False, "first_name": "A"}}},
        {"update_id": 7, "message_reaction": {"chat": {"id": 1, "type": "private"}, "message_id": 3}},
        {"update_id": 7, "some_future_update": {"anything": [1, 2]}},
        {"update_id": 7},
        # The bot was removed from a group: not a customer's block.
        {"update_id": 7, "my_chat_member": {"chat": {"id": -100, "type": "group", "title": "G"},
                                            "new_chat_member": {"status": "kicked"}}},
        # A service message in a group: somebody joined.
        {"update_id": 7, "message": {"message_id": 9, "date": 1, "chat": {"id": -100, "type": "group", "title": "G"},
                                     "from": {"id": 1, "is_bot": False, "first_name": "A"},
                                     "new_chat_members": [{"id": 2, "is_bot": False, "first_name": "B"}]}},
    ],
)
def test_updates_the_desk_does_not_handle_are_acknowledged_and_ignored(update: dict[str, Any]) -> None:
    parsed = parse_update(body(update))
    assert parsed.items == []
    assert parsed.dedupe_key == "update:7"


# --- 400: what Telegram never sends ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00 not utf-8",
        b"not json",
        b"",
        b"[1, 2]",
        b'"update"',
        b"null",
        b"{}",
        b'{"update_id": "861234501"}',
        b'{"update_id": true}',
        b'{"update_id": 1.5}',
        b'{"update_id": null, "message": {}}',
        b'{"update_id": 1, "message": "hello"}',
        b'{"update_id": 1, "message": null}',
        b'{"update_id": 1, "message": {"message_id": 1, "text": "hi"}}',
        b'{"update_id": 1, "message": {"message_id": 1, "chat": 5, "text": "hi"}}',
        b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": "5"}, "text": "hi"}}',
        b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": true}, "text": "hi"}}',
        b'{"update_id": 1, "edited_message": []}',
        b'{"update_id": 1, "edited_message": {"message_id": 1, "chat": {"type": "private"}, "text": "hi"}}',
    ],
)
def test_bodies_telegram_never_sends_are_bad_payloads(data: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_update(data)


# --- the secret header ----------------------------------------------------------------------------

SECRET = "Zq8_vN3-tL5wK1xR7mC2pJ9bH4dF6gS0yE-aU_oI3kT"


@pytest.fixture
def provider(http: aiohttp.ClientSession) -> TelegramProvider:
    return TelegramProvider({"token": "7012345678:AAH-test-token"}, http, secret=SECRET)


async def test_request_fixture_passes_with_its_header(provider: TelegramProvider) -> None:
    request = fixture("telegram_webhook_request.json")
    data = raw(request["body_file"])
    provider.verify_request(CIMultiDictProxy(CIMultiDict(request["headers"])), data)
    assert provider.parse(data).dedupe_key == "update:861234501"


@pytest.mark.parametrize("name", ["X-Telegram-Bot-Api-Secret-Token", "x-telegram-bot-api-secret-token"])
async def test_right_secret_in_a_plain_dict_any_case(provider: TelegramProvider, name: str) -> None:
    provider.verify_request({name: SECRET, "Content-Type": "application/json"}, b"{}")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Telegram-Bot-Api-Secret-Token": ""},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
        {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1] + "é"},
        {"X-Hub-Signature-256": SECRET},
    ],
)
async def test_missing_or_wrong_secret_is_refused(provider: TelegramProvider, headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        provider.verify_request(headers, raw("telegram_update_text.json"))


async def test_a_channel_without_a_secret_accepts_nothing(http: aiohttp.ClientSession) -> None:
    provider = TelegramProvider({"token": "7012345678:AAH-test-token"}, http, secret="")
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
        with pytest.raises(BadSignature):
            provider.verify_request(headers, b"{}")
