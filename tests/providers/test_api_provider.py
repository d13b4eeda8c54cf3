"""ApiProvider on its own: signatures both ways, parsing, and sends and downloads against a fake
system served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest

from providers.api import ApiProvider
from providers.base import (
    BadPayload,
    BadSignature,
    FetchError,
    IncomingAttachment,
    InvalidCredentials,
    OutgoingAttachment,
    OutgoingMessage,
    SendError,
)
from tests.fakes.api_callback import SECRET, FakeCallback, sign


def config(fake: FakeCallback, **overrides: str) -> dict[str, str]:
    """Return a channel config whose callback is the fake."""
    return {"callback_url": fake.url, "hmac_secret": fake.secret, **overrides}


@pytest.fixture
def provider(fake_callback: FakeCallback, http: aiohttp.ClientSession) -> ApiProvider:
    """A provider posting to the fake system."""
    return ApiProvider(config(fake_callback), http)


def closed_port() -> int:
    """Return a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def body(data: object) -> bytes:
    """Encode a webhook body as a system would."""
    return json.dumps(data).encode()


MESSAGE = {
    "id": "msg-1001",
    "conversation": "conv-42",
    "contact": {"id": "cust-7", "name": "Olena Kovalenko", "username": "@olena"},
    "text": "Hello, my order is late",
    "sent_at": "2025-11-20T10:15:00Z",
}


# --- declaration and validation -----------------------------------------------------------------


def test_fields_are_declared_for_the_settings_form():
    assert ApiProvider.code == "api"
    assert [f.as_dict() for f in ApiProvider.fields] == [
        {"name": "callback_url", "label": "Callback URL", "type": "url", "required": True, "secret": False},
        {"name": "hmac_secret", "label": "HMAC secret", "type": "password", "required": True, "secret": True},
        {"name": "account_id", "label": "Account ID", "type": "text", "required": False, "secret": False},
    ]


async def test_unique_key_is_the_account_id_or_a_hash_of_the_callback_url(fake_callback, http):
    plain = await ApiProvider(config(fake_callback), http).validate()
    same = await ApiProvider(config(fake_callback, hmac_secret="another-secret-0123456789"), http).validate()
    other = await ApiProvider(config(fake_callback, callback_url=fake_callback.url + "?shop=2"), http).validate()
    named = await ApiProvider(config(fake_callback, account_id="shop-eu"), http).validate()

    assert plain.unique_key == same.unique_key != other.unique_key
    assert plain.unique_key == "callback:" + hashlib.sha256(fake_callback.url.encode()).hexdigest()[:32]
    assert plain.display_name == "127.0.0.1"
    assert (named.unique_key, named.display_name) == ("shop-eu", "shop-eu")
    # Validation checks the settings only: the system hears nothing before registration.
    assert fake_callback.attempts == [] and fake_callback.rejected == []


@pytest.mark.parametrize("url", [
    "", "example.com/hook", "ftp://example.com/hook", "http://", "https:///path", "http://host:99999/",
    "http://user:pw@example.com/hook", "https://example.com/a b", "javascript:alert(1)",
])
async def test_a_bad_callback_url_is_refused_on_its_field(http, url):
    with pytest.raises(InvalidCredentials) as caught:
        await ApiProvider({"callback_url": url, "hmac_secret": SECRET}, http).validate()
    assert caught.value.field == "callback_url"


async def test_a_short_secret_is_refused_on_its_field(fake_callback, http):
    with pytest.raises(InvalidCredentials) as caught:
        await ApiProvider(config(fake_callback, hmac_secret="x" * 15), http).validate()
    assert caught.value.field == "hmac_secret"
    assert "16" in str(caught.value)
    await ApiProvider(config(fake_callback, hmac_secret="x" * 16), http).validate()


async def test_an_overlong_account_id_is_refused_on_its_field(fake_callback, http):
    with pytest.raises(InvalidCredentials) as caught:
        await ApiProvider(config(fake_callback, account_id="a" * 201), http).validate()
    assert caught.value.field == "account_id"


# --- registration -------------------------------------------------------------------------------


async def test_register_pings_the_callback_signed_with_the_webhook_url(provider, fake_callback):
    result = await provider.register("https://desk.example/webhooks/3")

    assert result.ok and result.error is None
    [ping] = fake_callback.accepted
    assert ping.payload == {"type": "ping", "webhook_url": "https://desk.example/webhooks/3"}
    assert (await provider.unregister()).ok


async def test_register_reports_a_refusing_or_missing_callback(provider, fake_callback, http):
    fake_callback.fail_next(503, "maintenance")
    refused = await provider.register("https://desk.example/webhooks/3")
    assert not refused.ok
    assert refused.error == "the callback URL answered HTTP 503: maintenance"

    gone = ApiProvider({"callback_url": f"http://127.0.0.1:{closed_port()}/hook", "hmac_secret": SECRET}, http)
    missing = await gone.register("https://desk.example/webhooks/3")
    assert not missing.ok and "cannot reach the callback URL" in missing.error
    assert not (await gone.health()).ok
    assert (await provider.health()).ok


# --- inbound signature --------------------------------------------------------------------------


def test_a_signed_body_passes_and_headers_match_in_any_case(provider):
    raw = body(MESSAGE)
    provider.verify_request({"X-Desk-Signature": sign(SECRET, raw)}, raw)
    provider.verify_request({"x-desk-signature": sign(SECRET, raw).upper().replace("SHA256=", "sha256=")}, raw)


@pytest.mark.parametrize("case", ["missing", "wrong secret", "one byte changed", "re-serialized", "sha1 prefix",
                                  "not hex", "empty"])
def test_a_bad_signature_is_refused_before_parsing(provider, case):
    raw = body(MESSAGE)
    headers = {
        "missing": {},
        "wrong secret": {"X-Desk-Signature": sign("another-secret-0123456789", raw)},
        "one byte changed": {"X-Desk-Signature": sign(SECRET, raw[:-2] + b"!}")},
        "re-serialized": {"X-Desk-Signature": sign(SECRET, json.dumps(MESSAGE, indent=1).encode())},
        "sha1 prefix": {"X-Desk-Signature": "sha1=" + sign(SECRET, raw)[7:]},
        "not hex": {"X-Desk-Signature": "sha256=" + "z" * 64},
        "empty": {"X-Desk-Signature": ""},
    }[case]
    with pytest.raises(BadSignature):
        provider.verify_request(headers, raw)


def test_a_channel_without_a_secret_accepts_nothing(http):
    raw = body(MESSAGE)
    with pytest.raises(BadSignature):
        ApiProvider({"callback_url": "https://example.com/hook"}, http).verify_request(
            {"X-Desk-Signature": sign("", raw)}, raw)


# --- parsing ------------------------------------------------------------------------------------


def test_one_message_becomes_one_item(provider):
    parsed = provider.parse(body({**MESSAGE, "attachments": [
        {"kind": "image", "url": "https://files.example/a.jpg", "file_name": "receipt.jpg", "mime": "image/jpeg"},
        {"url": "https://files.example/b"},
    ]}))

    assert parsed.dedupe_key is None
    [item] = parsed.items
    assert (item.external_id, item.chat_external_id, item.text) == ("msg-1001", "conv-42", "Hello, my order is late")
    assert (item.contact.external_id, item.contact.name, item.contact.username) == (
        "cust-7", "Olena Kovalenko", "olena")
    assert item.sent_at == datetime(2025, 11, 20, 10, 15, tzinfo=UTC)
    assert [(a.kind, a.ref, a.file_name, a.mime) for a in item.attachments] == [
        ("image", "https://files.example/a.jpg", "receipt.jpg", "image/jpeg"),
        ("file", "https://files.example/b", None, None),
    ]


def test_a_batch_keeps_its_order_and_integer_ids_become_strings(provider):
    parsed = provider.parse(body({"messages": [
        {"id": 1, "conversation": 900, "contact": {"id": 5}, "text": "first"},
        {"id": 2, "conversation": 900, "contact": {"id": 5}, "text": "second", "sent_at": 1763633700},
    ]}))

    assert [(i.external_id, i.chat_external_id, i.contact.external_id, i.text) for i in parsed.items] == [
        ("1", "900", "5", "first"), ("2", "900", "5", "second")]
    assert parsed.items[0].contact.name == "" and parsed.items[0].contact.username is None
    assert parsed.items[1].sent_at == datetime.fromtimestamp(1763633700, tz=UTC)
    assert provider.parse(body({"messages": []})).items == []


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (body({k: v for k, v in MESSAGE.items() if k != "id"}), "id"),
    (body({**MESSAGE, "id": True}), "id"),
    (body({**MESSAGE, "id": " "}), "id"),
    (body({**MESSAGE, "id": "x" * 201}), "longer than 200"),
    (body({k: v for k, v in MESSAGE.items() if k != "conversation"}), "conversation"),
    (body({**MESSAGE, "contact": "cust-7"}), "contact"),
    (body({**MESSAGE, "contact": {"name": "No id"}}), "contact.id"),
    (body({**MESSAGE, "text": 5}), "text"),
    (body({**MESSAGE, "text": " "}), "neither text nor attachments"),
    (body({**MESSAGE, "attachments": {"url": "x"}}), "attachments"),
    (body({**MESSAGE, "attachments": [{"kind": "image"}]}), "url"),
    (body({**MESSAGE, "attachments": [{"kind": "location", "url": "https://files.example/a"}]}), "kind"),
    (body({**MESSAGE, "sent_at": "yesterday"}), "sent_at"),
    (body({"messages": {"id": 1}}), "messages"),
    (body({"messages": [MESSAGE, {"id": 2}]}), "messages[1]"),
])
def test_a_body_outside_the_format_is_refused_with_the_reason(provider, raw, reason):
    with pytest.raises(BadPayload) as caught:
        provider.parse(raw)
    assert reason in str(caught.value)


def test_display_text_is_cut_to_what_the_desk_stores(provider):
    [item] = provider.parse(body({**MESSAGE, "contact": {"id": "c", "name": "N" * 400, "username": "u" * 250},
                                  "attachments": [{"url": "https://f.example/x", "file_name": "f" * 400,
                                                   "mime": "m" * 200}]})).items
    assert len(item.contact.name) == 300 and len(item.contact.username) == 200
    assert len(item.attachments[0].file_name) == 300 and item.attachments[0].mime is None


# --- sending ------------------------------------------------------------------------------------


async def test_a_reply_is_posted_signed_over_timestamp_and_body(provider, fake_callback):
    result = await provider.send(OutgoingMessage("conv-42", "<b>On it</b> 👍", desk_id=77))

    [callback] = fake_callback.accepted
    assert callback.payload == {"type": "message", "desk_id": 77, "conversation": "conv-42",
                                "text": "<b>On it</b> 👍"}
    stamp = callback.headers["X-Desk-Timestamp"]
    signature = callback.headers["X-Desk-Signature"]
    # The documented scheme: HMAC-SHA256 over f"{timestamp}.{body}", not over the body alone.
    assert signature == sign(SECRET, f"{stamp}.".encode() + callback.body) != sign(SECRET, callback.body)
    assert callback.headers["Content-Type"] == "application/json"
    assert result.external_id == "reply:77:ext-1"


async def test_a_reply_without_an_id_in_the_answer_still_gets_a_unique_external_id(provider, fake_callback):
    fake_callback.answer_ids = False
    first = await provider.send(OutgoingMessage("conv-42", "one", desk_id=5))
    second = await provider.send(OutgoingMessage("conv-42", "two", desk_id=6))
    assert (first.external_id, second.external_id) == ("reply:5", "reply:6")
    assert [m["text"] for m in fake_callback.messages] == ["one", "two"]


async def test_a_file_goes_base64_in_the_signed_body(provider, fake_callback, tmp_path: Path):
    data = bytes(range(256)) * 40
    path = tmp_path / "stored-name.bin"
    path.write_bytes(data)

    await provider.send(OutgoingMessage("conv-42", "the invoice", desk_id=8, attachment=OutgoingAttachment(
        str(path), "Invoice №1.pdf", "application/pdf", kind="file")))

    [sent] = fake_callback.messages
    attachment = sent.pop("attachment")
    assert sent == {"type": "message", "desk_id": 8, "conversation": "conv-42", "text": "the invoice"}
    assert base64.b64decode(attachment.pop("data")) == data
    assert attachment == {"kind": "file", "file_name": "Invoice №1.pdf", "mime": "application/pdf",
                          "size": len(data)}


async def test_an_unreadable_file_fails_for_good(provider, fake_callback, tmp_path: Path):
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "", desk_id=9, attachment=OutgoingAttachment(
            str(tmp_path / "gone.pdf"), "gone.pdf", "application/pdf")))
    assert caught.value.permanent
    assert fake_callback.attempts == []


@pytest.mark.parametrize("retry_after", ["7", "date"])
async def test_429_is_retried_after_retry_after(provider, fake_callback, retry_after):
    value = retry_after
    if retry_after == "date":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_callback.fail_next(429, "slow down", headers={"Retry-After": value})

    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))

    error = caught.value
    assert not error.permanent and error.code == "429" and error.reason == "slow down"
    if retry_after == "7":
        assert error.retry_after == 7
    else:
        assert 20 < error.retry_after <= 30


async def test_5xx_and_network_failures_are_retried(provider, fake_callback, http):
    fake_callback.fail_next(502, "")
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert not caught.value.permanent and caught.value.retry_after is None
    assert caught.value.reason == "the callback URL answered HTTP 502"

    gone = ApiProvider({"callback_url": f"http://127.0.0.1:{closed_port()}/hook", "hmac_secret": SECRET}, http)
    with pytest.raises(SendError) as caught:
        await gone.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert not caught.value.permanent and "cannot reach the callback URL" in caught.value.reason


async def test_4xx_fails_for_good_with_the_answer_text_cut(provider, fake_callback):
    fake_callback.fail_next(422, "conversation conv-42 is closed on our side")
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert caught.value.permanent and caught.value.code == "422"
    assert caught.value.reason == "conversation conv-42 is closed on our side"

    fake_callback.fail_next(400, "E" * 1000)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert caught.value.permanent and len(caught.value.reason) == 300

    fake_callback.fail_next(404)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert caught.value.reason == "the callback URL refused the reply (HTTP 404)"


async def test_a_redirecting_callback_is_not_followed(provider, fake_callback):
    fake_callback.fail_next(302, headers={"Location": "http://elsewhere.example/hook"})
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert caught.value.permanent and "redirects" in caught.value.reason
    assert len(fake_callback.attempts) == 1


async def test_a_callback_checking_its_own_secret_refuses_a_desk_with_another_one(fake_callback, http):
    wrong = ApiProvider(config(fake_callback, hmac_secret="not-the-systems-secret-123"), http)
    with pytest.raises(SendError) as caught:
        await wrong.send(OutgoingMessage("conv-42", "hi", desk_id=1))
    assert caught.value.permanent
    assert len(fake_callback.rejected) == 1 and fake_callback.accepted == []


# --- attachments in -----------------------------------------------------------------------------


async def read_all(provider: ApiProvider, url: str) -> bytes:
    """Download ``url`` through the provider."""
    download = await provider.fetch_attachment(IncomingAttachment(kind="image", ref=url))
    return b"".join([chunk async for chunk in download.chunks])


async def test_files_come_from_the_callback_urls_origin(provider, fake_callback):
    fake_callback.files["/files/a.jpg"] = (b"\xff\xd8jpeg\xff\xd9", "image/jpeg")
    fake_callback.redirects["/files/latest"] = "/files/a.jpg"

    url = fake_callback.base_url + "/files/a.jpg"
    download = await provider.fetch_attachment(IncomingAttachment(kind="image", ref=url))
    assert download.mime == "image/jpeg" and download.size == 8
    assert b"".join([chunk async for chunk in download.chunks]) == b"\xff\xd8jpeg\xff\xd9"
    assert await read_all(provider, fake_callback.base_url + "/files/latest") == b"\xff\xd8jpeg\xff\xd9"


@pytest.mark.parametrize("where", ["another port", "another scheme", "a public host", "a redirect away"])
async def test_files_elsewhere_are_refused(provider, fake_callback, where):
    port = int(fake_callback.base_url.rsplit(":", 1)[1])
    fake_callback.redirects["/files/away"] = f"http://127.0.0.1:{closed_port()}/a.jpg"
    url = {
        "another port": f"http://127.0.0.1:{closed_port()}/files/a.jpg",
        "another scheme": f"https://127.0.0.1:{port}/files/a.jpg",
        # No messenger hosts are trusted for this channel, not even public https ones.
        "a public host": "https://example.com/a.jpg",
        "a redirect away": fake_callback.base_url + "/files/away",
    }[where]
    with pytest.raises(FetchError):
        await read_all(provider, url)


async def test_a_missing_file_is_a_fetch_error(provider, fake_callback):
    with pytest.raises(FetchError) as caught:
        await read_all(provider, fake_callback.base_url + "/files/none.jpg")
    assert "404" in str(caught.value)
    assert fake_callback.downloads == ["/files/none.jpg"]


async def test_a_file_over_the_limit_is_refused(provider, fake_callback, monkeypatch):
    monkeypatch.setattr(ApiProvider, "max_download", 10)
    fake_callback.files["/files/big.bin"] = (b"x" * 11, "application/octet-stream")
    with pytest.raises(FetchError):
        await read_all(provider, fake_callback.base_url + "/files/big.bin")

