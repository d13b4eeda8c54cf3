"""Facebook webhooks: parsing the captured payloads, bad bodies, signatures and the handshake."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from providers.base import BadPayload, BadSignature, IncomingMessage, StatusUpdate
from providers.facebook import FacebookProvider
from providers.facebook.parse import parse_body

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facebook"
VECTORS = json.loads((FIXTURES / "facebook_signature_vectors.json").read_bytes())
APP_SECRET = VECTORS["app_secret"]
PAGE_ID = "108765432109876"
PSID = "7093412865523781"


def raw(name: str) -> bytes:
    """Return a fixture's exact bytes."""
    with open(FIXTURES / name, "rb") as handle:
        return handle.read()


def body(payload: Any) -> bytes:
    """Serialise a payload as Meta would send it."""
    return json.dumps(payload).encode()


def event(**payload: Any) -> dict[str, Any]:
    """Build one messaging event from the customer PSID to the page."""
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1782900123456, **payload}


def webhook(*events: dict[str, Any]) -> bytes:
    """Build a page webhook body with one entry holding ``events``."""
    return body({"object": "page", "entry": [{"id": PAGE_ID, "time": 1782900123999, "messaging": list(events)}]})


def only_message(data: bytes) -> IncomingMessage:
    """Parse and return the single IncomingMessage."""
    items = parse_body(data).items
    assert len(items) == 1
    assert isinstance(items[0], IncomingMessage)
    return items[0]


@pytest.fixture
def provider(http: aiohttp.ClientSession) -> FacebookProvider:
    """A provider with the vectors' app secret (parsing and signatures need no network)."""
    return FacebookProvider(
        {
            "page_id": PAGE_ID,
            "page_token": "EAAG-test-page-token",
            "app_secret": APP_SECRET,
            "verify_token": "desk-verify-7f3c9a1e",
        },
        http,
    )


# --- captured payloads ------------------------------------------------------------------------


def test_text() -> None:
    parsed = parse_body(raw("facebook_webhook_text.json"))
    assert parsed.dedupe_key is None
    message = only_message(raw("facebook_webhook_text.json"))
    assert message.chat_external_id == PSID
    assert message.contact.external_id == PSID
    assert message.contact.name == ""
    assert message.external_id.startswith("m_Xk3vP8qR2tY7")
    assert message.text == "Hi, my order A-20931 hasn't arrived yet"
    assert message.attachments == []
    assert message.account_key == PAGE_ID
    assert message.sent_at == datetime(2026, 7, 1, 10, 2, 3, 456000, tzinfo=UTC)
    assert message.is_edit is False


def test_image() -> None:
    message = only_message(raw("facebook_webhook_image.json"))
    assert message.text == ""
    [attachment] = message.attachments
    assert attachment.kind == "image"
    assert attachment.ref is not None
    assert attachment.ref.startswith("https://scontent.xx.fbcdn.net/v/t1.15752-9/512345678_")
    assert "oe=68C4F2A1" in attachment.ref


def test_batched_two_pages_six_events() -> None:
    items = parse_body(raw("facebook_webhook_batched.json")).items
    assert len(items) == 6
    assert all(isinstance(item, IncomingMessage) for item in items)
    messages: list[IncomingMessage] = items  # type: ignore[assignment]
    assert [m.account_key for m in messages] == [PAGE_ID] * 4 + ["112233445566778"] * 2
    assert [m.chat_external_id for m in messages] == [PSID, PSID] + ["6847201938475562"] * 2 + ["25018473920184736"] * 2
    # A quick reply is the text as the customer typed it.
    assert messages[0].text == "Talk to a human"
    assert messages[1].text == "here is the receipt"
    [receipt] = messages[1].attachments
    assert receipt.kind == "file"
    assert receipt.file_name == "Receipt_A-20931.pdf"
    assert receipt.ref is not None and receipt.ref.startswith("https://cdn.fbsbx.com/")
    assert messages[2].text == ""
    assert [a.kind for a in messages[2].attachments] == ["audio"]
    assert messages[3].text == "Yes, that one"
    # The postback is the button the customer pressed.
    assert messages[4].text == "Get Started"
    assert messages[4].external_id.startswith("m_Ge3hK6")
    # A link share keeps the customer's text and downloads nothing.
    assert messages[5].text == "Check this out https://youtu.be/dQw4w9WgXcQ"
    assert messages[5].attachments == []
    assert len({m.external_id for m in messages}) == 6


def test_echo_is_the_pages_outgoing_message_to_the_recipient() -> None:
    [item] = parse_body(raw("facebook_webhook_echo.json")).items
    assert isinstance(item, IncomingMessage) and item.outgoing is True
    assert item.chat_external_id == PSID and item.contact.external_id == PSID
    assert item.external_id == (
        "m_Tz0cF3iL6oR9uX2aD5gJ8mP1sV4yB7eH0kN3qT6wZ9cF2iL5oR8uX1aD4gJ7mP0sV3yB6eH9kN2qT5wZ8cF1iL4o"
    )
    assert item.text == "Hi! I'm checking order A-20931 for you now."
    assert item.account_key == PAGE_ID
    # "desk:out:<ULID>" is not the tag this desk puts on its sends ("desk:<message id>").
    assert item.desk_id is None


def test_echo_metadata_names_the_desks_reply() -> None:
    captured = json.loads(raw("facebook_webhook_echo.json"))
    echo = captured["entry"][0]["messaging"][0]
    # Arabic-Indic digits are digits to str.isdigit, and no id of ours; nor are 19 digits.
    cases = {"desk:42": 42, "desk:0042": 42, "desk:": None, "desk:42a": None, "desk:\u0664\u0662": None,
             "desk:" + "9" * 19: None, "shop:42": None, "": None}
    for metadata, desk_id in cases.items():
        echo["message"]["metadata"] = metadata
        [item] = parse_body(body(captured)).items
        assert item.desk_id == desk_id, metadata
    echo["message"]["metadata"] = 42
    assert parse_body(body(captured)).items[0].desk_id is None


def test_echo_metadata_names_the_part_of_the_reply() -> None:
    captured = json.loads(raw("facebook_webhook_echo.json"))
    echo = captured["entry"][0]["messaging"][0]
    # (desk id, part from 0, parts); a bare "desk:<id>" (older sends) names no part.
    cases = {"desk:42:1/1": (42, 0, 1), "desk:42:3/3": (42, 2, 3), "desk:42": (42, None, None),
             "desk:42:0/3": (None, None, None), "desk:42:4/3": (None, None, None),
             "desk:42:1": (None, None, None), "desk:42:/2": (None, None, None), "desk:42:1/2/3": (None, None, None),
             "desk:42:\u0661/2": (None, None, None), "desk:42:1/1000": (None, None, None)}
    for metadata, expected in cases.items():
        echo["message"]["metadata"] = metadata
        [item] = parse_body(body(captured)).items
        assert (item.desk_id, item.desk_part, item.desk_parts) == expected, metadata


def test_echo_with_attachments() -> None:
    captured = json.loads(raw("facebook_webhook_echo.json"))
    message = captured["entry"][0]["messaging"][0]["message"]
    del message["text"]
    image = json.loads(raw("facebook_webhook_image.json"))["entry"][0]["messaging"][0]["message"]["attachments"]
    message["attachments"] = image
    [item] = parse_body(body(captured)).items
    assert item.outgoing is True and item.text == ""
    assert [attachment.kind for attachment in item.attachments] == ["image"]
    assert item.attachments[0].ref == image[0]["payload"]["url"]


def test_read_and_delivery() -> None:
    delivered, read = parse_body(raw("facebook_webhook_read_delivery.json")).items
    assert isinstance(delivered, StatusUpdate) and isinstance(read, StatusUpdate)
    watermark = datetime(2026, 7, 1, 10, 6, 42, 311000, tzinfo=UTC)
    assert delivered.kind == "delivered"
    assert delivered.chat_external_id == PSID
    assert delivered.external_ids == [
        "m_Tz0cF3iL6oR9uX2aD5gJ8mP1sV4yB7eH0kN3qT6wZ9cF2iL5oR8uX1aD4gJ7mP0sV3yB6eH9kN2qT5wZ8cF1iL4o"
    ]
    assert delivered.watermark == watermark
    assert read.kind == "read"
    assert read.chat_external_id == PSID
    assert read.external_ids == []
    assert read.watermark == watermark


def test_delivery_without_mids() -> None:
    [item] = parse_body(webhook(event(delivery={"watermark": 1782900130000}))).items
    assert isinstance(item, StatusUpdate)
    assert item.external_ids == []
    assert item.watermark == datetime(2026, 7, 1, 10, 2, 10, tzinfo=UTC)


def test_postback() -> None:
    message = only_message(raw("facebook_webhook_postback.json"))
    assert message.text == "Track my order"
    assert message.external_id.startswith("m_Jd4gJ7")
    assert message.chat_external_id == PSID


def test_postback_without_mid() -> None:
    message = only_message(webhook(event(postback={"title": "Get Started", "payload": "GET_STARTED"})))
    assert message.external_id == f"postback:{PSID}:1782900123456"
    assert message.text == "Get Started"


def test_sticker_is_one_sticker() -> None:
    message = only_message(raw("facebook_webhook_sticker.json"))
    [sticker] = message.attachments
    assert sticker.kind == "sticker"
    assert sticker.meta == {"sticker_id": "369239263222822"}
    assert sticker.ref is not None and sticker.ref.startswith("https://scontent.xx.fbcdn.net/")


def test_unicode_raw() -> None:
    message = only_message(raw("facebook_webhook_text_unicode_raw.json"))
    assert message.text == "¿Tienen disponible el modelo azul? äöå 😊"


def test_fallback_without_text_shows_title_and_link() -> None:
    share = {"type": "fallback", "payload": {"title": "A page", "url": "https://l.facebook.com/l.php?u=x"}}
    message = only_message(webhook(event(message={"mid": "m_1", "attachments": [share]})))
    assert message.text == "A page\nhttps://l.facebook.com/l.php?u=x"
    assert message.attachments == []


@pytest.mark.parametrize(
    "attachments",
    [
        [{"type": "fallback"}],
        [{"type": "appointment_booking", "payload": {}}],
        [{"type": "image", "payload": {}}],
    ],
)
def test_unsupported_attachment_is_still_stored(attachments: list[dict[str, Any]]) -> None:
    message = only_message(webhook(event(message={"mid": "m_2", "attachments": attachments})))
    assert message.external_id == "m_2"
    assert message.text == "(unsupported attachment)"
    assert message.attachments == []


def test_unknown_attachment_keeps_the_text() -> None:
    attachments = [{"type": "template", "payload": {"product": {}}}]
    message = only_message(webhook(event(message={"mid": "m_3", "text": "this one", "attachments": attachments})))
    assert message.text == "this one"
    assert message.attachments == []


def test_legacy_location() -> None:
    location = {"type": "location", "payload": {"coordinates": {"lat": 52.52, "long": 13.405}}}
    message = only_message(webhook(event(message={"mid": "m_4", "attachments": [location]})))
    [attachment] = message.attachments
    assert attachment.kind == "location"
    assert attachment.ref is None
    assert attachment.meta == {"lat": 52.52, "long": 13.405}


def test_video_and_sticker_only_payload() -> None:
    attachments = [
        {"type": "video", "payload": {"url": "https://video.xx.fbcdn.net/v.mp4"}},
        {"type": "sticker", "payload": {"url": "https://scontent.xx.fbcdn.net/s.png", "sticker_id": 1}},
    ]
    message = only_message(webhook(event(message={"mid": "m_5", "attachments": attachments})))
    assert [(a.kind, a.ref) for a in message.attachments] == [
        ("video", "https://video.xx.fbcdn.net/v.mp4"),
        ("sticker", "https://scontent.xx.fbcdn.net/s.png"),
    ]


def test_text_stays_text() -> None:
    message = only_message(webhook(event(message={"mid": "m_6", "text": "<script>alert(1)</script> &amp;"})))
    assert message.text == "<script>alert(1)</script> &amp;"


@pytest.mark.parametrize(
    "payload",
    [
        event(reaction={"mid": "m_1", "action": "react", "reaction": "love"}),
        event(optin={"type": "notification_messages"}),
        event(referral={"ref": "ad", "source": "ADS", "type": "OPEN_THREAD"}),
        event(account_linking={"status": "linked"}),
    ],
)
def test_ignored_events(payload: dict[str, Any]) -> None:
    assert parse_body(webhook(payload)).items == []


def test_standby_is_ignored() -> None:
    data = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "standby": [event(message={"mid": "m_7"})]}]}
    assert parse_body(body(data)).items == []


@pytest.mark.parametrize("kind", ["instagram", "user", None])
def test_other_objects_are_ignored(kind: str | None) -> None:
    assert parse_body(body({"object": kind, "entry": "whatever"})).items == []


# --- bodies Messenger never sends ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe{}",
        "{\"object\": \"page\", \"entry\": []}".encode("utf-16"),
        b"",
        b"not json",
        b"{\"object\": \"page\",",
        b"[]",
        b"\"page\"",
        b"42",
        b"null",
        body({"object": "page"}),
        body({"object": "page", "entry": {"id": PAGE_ID}}),
        body({"object": "page", "entry": None}),
        body({"object": "page", "entry": [{"id": PAGE_ID, "messaging": {"sender": {"id": PSID}}}]}),
        body({"object": "page", "entry": [{"id": PAGE_ID, "messaging": "x"}]}),
        body({"object": "page", "entry": ["not an object"]}),
        webhook({"recipient": {"id": PAGE_ID}, "message": {"mid": "m_1", "text": "hi"}}),
        webhook({"sender": {}, "message": {"mid": "m_1", "text": "hi"}}),
        webhook({"sender": "7093412865523781", "message": {"mid": "m_1", "text": "hi"}}),
        webhook({"sender": {"id": None}, "message": {"mid": "m_1", "text": "hi"}}),
        webhook("not an event"),  # type: ignore[arg-type]
    ],
)
def test_bad_payload(data: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_body(data)


def test_empty_entry_list() -> None:
    assert parse_body(body({"object": "page", "entry": []})).items == []


async def test_provider_parse_is_parse_body(provider: FacebookProvider) -> None:
    assert provider.parse(raw("facebook_webhook_text.json")) == parse_body(raw("facebook_webhook_text.json"))


# --- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["file"])
async def test_signature_vectors_pass(provider: FacebookProvider, vector: dict[str, Any]) -> None:
    data = raw(vector["file"])
    assert len(data) == vector["bytes"]
    provider.verify_request({vector["header"]: vector["value"]}, data)
    # Header names are case-insensitive.
    provider.verify_request({"x-hub-signature-256": vector["value"]}, data)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["file"])
async def test_flipped_byte_fails(provider: FacebookProvider, vector: dict[str, Any]) -> None:
    data = bytearray(raw(vector["file"]))
    data[len(data) // 2] ^= 0x01
    with pytest.raises(BadSignature):
        provider.verify_request({vector["header"]: vector["value"]}, bytes(data))


async def test_negative_vector_fails(provider: FacebookProvider) -> None:
    data = raw("facebook_webhook_text_unicode_raw.json")
    with pytest.raises(BadSignature):
        provider.verify_request({"X-Hub-Signature-256": VECTORS["negative_example"]["value"]}, data)


async def test_reserialized_json_fails(provider: FacebookProvider) -> None:
    vector = next(v for v in VECTORS["vectors"] if v["file"] == "facebook_webhook_text_unicode_raw.json")
    data = raw(vector["file"])
    reserialized = json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ":")).encode()
    assert reserialized != data
    with pytest.raises(BadSignature):
        provider.verify_request({"X-Hub-Signature-256": vector["value"]}, reserialized)
    # What we would compute over the re-serialised body is exactly the documented negative example.
    digest = hmac.new(APP_SECRET.encode(), reserialized, hashlib.sha256).hexdigest()
    assert f"sha256={digest}" == VECTORS["negative_example"]["value"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "0a13a6639d38853a9b293dd79d64eee6d650eb3965a37fee2c9e0d4939eee951"},
        {"X-Hub-Signature-256": "sha1=0a13a6639d38853a9b293dd79d64eee6d650eb3965a37fee2c9e0d4939eee951"},
        {"X-Hub-Signature-256": "sha256="},
        {"X-Hub-Signature-256": "sha256=zz13a6639d38853a9b293dd79d64eee6d650eb3965a37fee2c9e0d4939eee951"},
        {"X-Hub-Signature-256": "sha256=0a13a6639d38853a9b293dd79d64eee6d650eb3965a37fee2c9e0d4939eee9"},
        {"X-Hub-Signature-256": "sha256=ä13a6639d38853a9b293dd79d64eee6d650eb3965a37fee2c9e0d4939eee951"},
    ],
)
async def test_missing_or_malformed_signature_fails(provider: FacebookProvider, headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        provider.verify_request(headers, raw("facebook_webhook_text.json"))


async def test_signature_with_another_secret_fails(http: aiohttp.ClientSession) -> None:
    data = raw("facebook_webhook_text.json")
    vector = VECTORS["vectors"][0]
    other = FacebookProvider({"app_secret": "another-secret"}, http)
    with pytest.raises(BadSignature):
        other.verify_request({"X-Hub-Signature-256": vector["value"]}, data)
    unset = FacebookProvider({}, http)
    with pytest.raises(BadSignature):
        unset.verify_request({"X-Hub-Signature-256": vector["value"]}, data)


# --- verification handshake and routing ----------------------------------------------------------


async def test_verification_handshake(provider: FacebookProvider) -> None:
    case = json.loads(raw("facebook_webhook_verification_request.json"))
    assert provider.verification_response(case["query"]) == case["expected_response"]["body"]


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "wrong"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": ""},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1158201444", "hub.verify_token": "desk-verify-7f3c9a1e"},
        {"hub.challenge": "1158201444", "hub.verify_token": "desk-verify-7f3c9a1e"},
        {"hub.mode": "subscribe", "hub.verify_token": "desk-verify-7f3c9a1e"},
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "desk-verify-7f3c9a1e-ä"},
    ],
)
async def test_verification_refused(provider: FacebookProvider, query: dict[str, str]) -> None:
    assert provider.verification_response(query) is None


async def test_shares_webhook_with_pages_of_the_same_app(provider: FacebookProvider) -> None:
    assert provider.shares_webhook_with({"page_id": "112233445566778", "app_secret": APP_SECRET})
    assert not provider.shares_webhook_with({"page_id": "112233445566778", "app_secret": "other"})
    assert not provider.shares_webhook_with({"token": "123:abc"})
