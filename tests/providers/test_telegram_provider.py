"""The Telegram provider against the fake Bot API served over local HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from providers.base import (
    CannotConnect,
    ChannelIdentity,
    FetchError,
    IncomingAttachment,
    InvalidCredentials,
    OutgoingAttachment,
    OutgoingMessage,
    SendError,
)
from providers.telegram import TelegramProvider
from providers.telegram.parse import parse_update
from tests.fakes.telegram import FakeTelegram

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
TOKEN = "7012345678:AAH-test-token"
SECRET = "Zq8_vN3-tL5wK1xR7mC2pJ9bH4dF6gS0yE-aU_oI3kT"
OLENA = "5123456789"
HOOK = "https://desk.example.com/webhooks/17"


def fixture(name: str) -> dict[str, Any]:
    with open(FIXTURES / name, "rb") as handle:
        return json.loads(handle.read())


def free_port() -> int:
    """Return a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make(fake: FakeTelegram, http: aiohttp.ClientSession, token: str = TOKEN, **config: Any) -> TelegramProvider:
    return TelegramProvider({"token": token, "api_base": fake.base_url, **config}, http, secret=SECRET)


@pytest.fixture
def provider(fake_telegram: FakeTelegram, http: aiohttp.ClientSession) -> TelegramProvider:
    return make(fake_telegram, http)


def reply(text: str, attachment: OutgoingAttachment | None = None) -> OutgoingMessage:
    return OutgoingMessage(chat_external_id=OLENA, text=text, desk_id=1, attachment=attachment)


# --- declaration ----------------------------------------------------------------------------------


def test_declares_its_settings_form_and_limits() -> None:
    assert (TelegramProvider.code, TelegramProvider.name) == ("telegram", "Telegram")
    assert [field.as_dict() for field in TelegramProvider.fields] == [
        {"name": "token", "label": "Bot token", "type": "password", "required": True, "secret": True},
        {"name": "api_base", "label": "Bot API server", "type": "url", "required": False, "secret": False},
    ]
    assert (TelegramProvider.limits.per_chat_interval, TelegramProvider.limits.per_second) == (1.0, 30.0)
    assert TelegramProvider.max_download == 20 * 1024 * 1024


# --- validate -------------------------------------------------------------------------------------


async def test_validate_returns_the_bot(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    assert await provider.validate() == ChannelIdentity(unique_key="7012345678", display_name="@acme_support_bot")
    assert fake_telegram.calls == [("getMe", {})]


async def test_validate_an_unknown_token_blames_the_token_field(
    fake_telegram: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    token = "7012345678:AAH-revoked"
    with pytest.raises(InvalidCredentials) as caught:
        await make(fake_telegram, http, token=token).validate()
    assert caught.value.field == "token"
    assert str(caught.value) == "Unauthorized"
    assert "AAH-revoked" not in str(caught.value)


async def test_validate_something_that_is_no_token(fake_telegram: FakeTelegram, http: aiohttp.ClientSession) -> None:
    for token in ("", "hello", "123/../x:y"):
        with pytest.raises(InvalidCredentials) as caught:
            await make(fake_telegram, http, token=token).validate()
        assert caught.value.field == "token"
    assert fake_telegram.calls == []


async def test_validate_a_404_from_telegram_blames_the_token(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next("getMe", 404, {"ok": False, "error_code": 404, "description": "Not Found"})
    with pytest.raises(InvalidCredentials) as caught:
        await provider.validate()
    assert caught.value.field == "token"


async def test_validate_when_telegram_is_down(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next("getMe", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    with pytest.raises(CannotConnect):
        await provider.validate()


async def test_validate_when_nothing_listens(http: aiohttp.ClientSession) -> None:
    provider = TelegramProvider({"token": TOKEN, "api_base": f"http://127.0.0.1:{free_port()}"}, http, secret=SECRET)
    with pytest.raises(CannotConnect) as caught:
        await provider.validate()
    assert TOKEN not in str(caught.value)


# --- webhook --------------------------------------------------------------------------------------


async def test_register_sets_the_webhook_with_the_secret(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    result = await provider.register(HOOK)
    assert (result.ok, result.error) == (True, None)
    assert fake_telegram.webhook["url"] == HOOK
    assert fake_telegram.webhook["secret_token"] == SECRET
    assert fake_telegram.webhook["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"]
    assert fake_telegram.webhook["max_connections"] == 40
    health = await provider.health()
    assert health.ok is True
    assert health.pending == 0
    assert health.detail == {"url": HOOK}


async def test_register_reports_a_refusal(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    description = "Bad Request: bad webhook: HTTPS url must be provided for webhook"
    fake_telegram.fail_next("setWebhook", 400, {"ok": False, "error_code": 400, "description": description})
    result = await provider.register("http://desk.example.com/webhooks/17")
    assert (result.ok, result.error) == (False, description)
    assert fake_telegram.webhook["url"] == ""


async def test_register_reports_an_unreachable_telegram(http: aiohttp.ClientSession) -> None:
    provider = TelegramProvider({"token": TOKEN, "api_base": f"http://127.0.0.1:{free_port()}"}, http, secret=SECRET)
    result = await provider.register(HOOK)
    assert result.ok is False
    assert result.error and TOKEN not in result.error


async def test_unregister_deletes_the_webhook(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    await provider.register(HOOK)
    result = await provider.unregister()
    assert result.ok is True
    assert fake_telegram.webhook["url"] == ""
    assert [name for name, _ in fake_telegram.calls] == ["setWebhook", "deleteWebhook"]
    assert (await provider.health()).ok is False


async def test_health_flags_a_backlog_and_recent_errors(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    await provider.register(HOOK)
    fake_telegram.webhook["pending_update_count"] = 101
    assert (await provider.health()).ok is False

    fake_telegram.webhook["pending_update_count"] = 3
    error_at = int(time.time()) - 30
    fake_telegram.webhook["last_error_date"] = error_at
    fake_telegram.webhook["last_error_message"] = "Wrong response from the webhook: 502 Bad Gateway"
    health = await provider.health()
    assert health.ok is False
    assert health.pending == 3
    assert health.last_error == "Wrong response from the webhook: 502 Bad Gateway"
    assert health.last_error_at == datetime.fromtimestamp(error_at, timezone.utc)

    # An error older than five minutes no longer counts.
    fake_telegram.webhook["last_error_date"] = int(time.time()) - 600
    assert (await provider.health()).ok is True


# --- sending text ---------------------------------------------------------------------------------


async def test_send_plain_text_exactly_as_typed(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    text = "<b>x</b> & *not bold* _nor_ [link](http://x) `code`"
    result = await provider.send(reply(text))
    [params] = fake_telegram.sent_messages
    assert params == {"chat_id": 5123456789, "text": text}
    assert "parse_mode" not in params
    message_id = fake_telegram.messages[-1]["message_id"]
    assert result.external_id == f"{OLENA}:{message_id}"


async def test_message_ids_increase(provider: TelegramProvider) -> None:
    first = await provider.send(reply("one"))
    second = await provider.send(reply("two"))
    assert int(second.external_id.split(":")[1]) == int(first.external_id.split(":")[1]) + 1


async def test_long_text_is_split_at_line_breaks(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    lines = [f"line {number}: " + "x" * 90 for number in range(100)]
    text = "\n".join(lines)
    assert len(text) > 2 * 4096
    result = await provider.send(reply(text))
    texts = [params["text"] for params in fake_telegram.sent_messages]
    assert len(texts) == 3
    assert all(len(piece) <= 4096 for piece in texts)
    assert "\n".join(texts) == text
    assert result.external_id == f"{OLENA}:{fake_telegram.messages[-1]['message_id']}"


async def test_each_part_is_kept_as_it_goes_and_a_retry_sends_only_the_rest(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    text = "\n".join(["A" * 4000, "B" * 4000, "C" * 100])
    kept: list[str] = []

    async def keep_part(part_id: str) -> None:
        kept.append(part_id)

    fake_telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, after=1)
    with pytest.raises(SendError):
        await provider.send(OutgoingMessage(OLENA, text, 1, keep_part=keep_part))
    assert kept == [f"{OLENA}:{fake_telegram.messages[0]['message_id']}"]

    result = await provider.send(OutgoingMessage(OLENA, text, 1, parts_sent=list(kept), keep_part=keep_part))
    assert [params["text"] for params in fake_telegram.sent_messages] == ["A" * 4000, "B" * 4000, "C" * 100]
    assert kept == [f"{OLENA}:{message['message_id']}" for message in fake_telegram.messages]
    assert result.external_id == kept[-1]
    # Every part already through (a crash after the last one): nothing goes again.
    again = await provider.send(OutgoingMessage(OLENA, text, 1, parts_sent=list(kept), keep_part=keep_part))
    assert again.external_id == kept[-1] and len(fake_telegram.sent_messages) == 3


async def test_long_text_without_spaces_is_cut_hard(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    text = "ab" * 5000
    await provider.send(reply(text))
    texts = [params["text"] for params in fake_telegram.sent_messages]
    assert [len(piece) for piece in texts] == [4096, 4096, 1808]
    assert "".join(texts) == text


async def test_emoji_count_twice_towards_the_limit(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    text = "😀" * 3000
    await provider.send(reply(text))
    texts = [params["text"] for params in fake_telegram.sent_messages]
    assert [len(piece) for piece in texts] == [2048, 952]
    assert "".join(texts) == text


# --- sending files --------------------------------------------------------------------------------


async def test_send_photo_uploads_the_bytes_with_the_caption(
    provider: TelegramProvider, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    path = tmp_path / "label.jpg"
    path.write_bytes(data)
    attachment = OutgoingAttachment(path=str(path), file_name="shipping label.jpg", mime="image/jpeg", kind="image")
    result = await provider.send(reply("Here is <b>your</b> label", attachment))
    [(method, params)] = fake_telegram.calls
    assert method == "sendPhoto"
    assert params == {"chat_id": OLENA, "caption": "Here is <b>your</b> label", "photo": data}
    [upload] = fake_telegram.uploads
    assert (upload["filename"], upload["content_type"]) == ("shipping label.jpg", "image/jpeg")
    assert result.external_id == f"{OLENA}:{fake_telegram.messages[-1]['message_id']}"


async def test_send_document_keeps_its_name(
    provider: TelegramProvider, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    data = b"%PDF-1.7\n" + b"0" * 100_000
    path = tmp_path / "stored-123"
    path.write_bytes(data)
    attachment = OutgoingAttachment(path=str(path), file_name="Рахунок №5.pdf", mime="application/pdf", kind="file")
    await provider.send(reply("", attachment))
    [(method, params)] = fake_telegram.calls
    assert method == "sendDocument"
    assert params == {"chat_id": OLENA, "document": data}
    assert fake_telegram.messages[-1]["document"]["file_name"] == "Рахунок №5.pdf"
    assert fake_telegram.messages[-1]["document"]["mime_type"] == "application/pdf"


async def test_a_caption_too_long_goes_as_its_own_message(
    provider: TelegramProvider, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"notes")
    text = "word " * 300
    attachment = OutgoingAttachment(path=str(path), file_name="notes.txt", mime="text/plain", kind="file")
    result = await provider.send(reply(text, attachment))
    assert [name for name, _ in fake_telegram.calls] == ["sendDocument", "sendMessage"]
    assert "caption" not in fake_telegram.calls[0][1]
    assert fake_telegram.calls[1][1] == {"chat_id": 5123456789, "text": text}
    assert result.external_id == f"{OLENA}:{fake_telegram.messages[-1]['message_id']}"


async def test_an_image_telegram_refuses_as_a_photo_goes_as_a_file(
    provider: TelegramProvider, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "panorama.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 1000)
    refusal = {"ok": False, "error_code": 400, "description": "Bad Request: PHOTO_INVALID_DIMENSIONS"}
    fake_telegram.fail_next("sendPhoto", 400, refusal)
    attachment = OutgoingAttachment(path=str(path), file_name="panorama.png", mime="image/png", kind="image")
    await provider.send(reply("wide", attachment))
    assert [name for name, _ in fake_telegram.calls] == ["sendPhoto", "sendDocument"]
    assert fake_telegram.sent_messages[0]["caption"] == "wide"
    assert fake_telegram.sent_messages[0]["document"] == path.read_bytes()


async def test_an_image_over_the_photo_limit_goes_as_a_file(
    provider: TelegramProvider, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "huge.jpg"
    # One byte over sendPhoto's 10 MB upload limit.
    path.write_bytes(b"\xff" * (10 * 1024 * 1024 + 1))
    attachment = OutgoingAttachment(path=str(path), file_name="huge.jpg", mime="image/jpeg", kind="image")
    await provider.send(reply("", attachment))
    assert [name for name, _ in fake_telegram.calls] == ["sendDocument"]
    assert len(fake_telegram.sent_messages[0]["document"]) == 10 * 1024 * 1024 + 1


async def test_a_missing_file_fails_for_good(provider: TelegramProvider, tmp_path: Path) -> None:
    attachment = OutgoingAttachment(path=str(tmp_path / "gone"), file_name="gone.pdf", mime="application/pdf")
    with pytest.raises(SendError) as caught:
        await provider.send(reply("", attachment))
    assert caught.value.permanent is True


# --- send errors ----------------------------------------------------------------------------------


async def test_429_is_retried_after_what_telegram_says(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next("sendMessage", 429, fixture("telegram_error_429.json"))
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert caught.value.permanent is False
    assert caught.value.retry_after == 23
    assert caught.value.reason == "Too Many Requests: retry after 23"
    assert fake_telegram.sent_messages == []
    # The retry goes through.
    await provider.send(reply("hello"))
    assert [params["text"] for params in fake_telegram.sent_messages] == ["hello"]


async def test_blocked_by_the_user_fails_with_the_reason(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next("sendMessage", 403, fixture("telegram_error_403_blocked.json"))
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert caught.value.permanent is True
    assert caught.value.reason == "Forbidden: bot was blocked by the user"
    assert caught.value.code == "403"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("telegram_error_400_chat_not_found.json", "400"),
        ("telegram_error_400_migrated.json", "400"),
        ("telegram_error_401_unauthorized.json", "401"),
    ],
)
async def test_refusals_are_permanent(
    provider: TelegramProvider, fake_telegram: FakeTelegram, name: str, code: str
) -> None:
    body = fixture(name)
    fake_telegram.fail_next("sendMessage", body["error_code"], body)
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert (caught.value.permanent, caught.value.code, caught.value.reason) == (True, code, body["description"])


async def test_a_group_upgraded_to_a_supergroup_names_its_new_id(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.upgrade_group(-4081234567, -1002198765432)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id="-4081234567", text="hello", desk_id=1))
    assert caught.value.moved_to == "-1002198765432"
    assert caught.value.reason == fixture("telegram_error_400_migrated.json")["description"]
    assert fake_telegram.sent_messages == []


async def test_server_errors_are_transient(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert caught.value.permanent is False
    assert caught.value.retry_after is None


async def test_a_slow_telegram_is_transient(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    fake_telegram.delay("sendMessage", 0.5)
    provider.api.timeout = 0.1
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert caught.value.permanent is False


async def test_an_unreachable_telegram_is_transient(http: aiohttp.ClientSession) -> None:
    provider = TelegramProvider({"token": TOKEN, "api_base": f"http://127.0.0.1:{free_port()}"}, http, secret=SECRET)
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert caught.value.permanent is False
    assert TOKEN not in caught.value.reason


async def test_the_real_blocked_chat_answers_403(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.blocked.add(OLENA)
    with pytest.raises(SendError) as caught:
        await provider.send(reply("hello"))
    assert (caught.value.permanent, caught.value.code) == (True, "403")


# --- files ----------------------------------------------------------------------------------------


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_fetch_attachment_downloads_through_get_file(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    with open(FIXTURES / "telegram_update_photo.json", "rb") as handle:
        [photo] = parse_update(handle.read()).items[0].attachments  # type: ignore[union-attr]
    got = fixture("telegram_getFile_ok.json")["result"]
    download = await provider.fetch_attachment(photo)
    assert await read_all(download.chunks) == fake_telegram.files[got["file_path"]]
    assert (download.mime, download.size) == ("image/jpeg", got["file_size"])
    assert fake_telegram.calls == [("getFile", {"file_id": got["file_id"]})]


async def test_fetch_attachment_takes_the_type_from_the_download(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.add_file("BQAC-doc", "documents/file_9.pdf", b"%PDF-1.4 small")
    download = await provider.fetch_attachment(IncomingAttachment(kind="file", ref="BQAC-doc"))
    assert await read_all(download.chunks) == b"%PDF-1.4 small"
    assert (download.mime, download.size) == ("application/pdf", 14)


async def test_a_download_can_be_abandoned(provider: TelegramProvider) -> None:
    photo = IncomingAttachment(kind="image", ref=fixture("telegram_getFile_ok.json")["result"]["file_id"])
    download = await provider.fetch_attachment(photo)
    first = await download.chunks.__anext__()
    assert first.startswith(b"\xff\xd8")
    await download.chunks.aclose()  # type: ignore[attr-defined]


async def test_files_over_20_mb_are_refused(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_file("BAAC-big", "videos/file_3.mp4", b"tiny", file_size=25 * 1024 * 1024)
    with pytest.raises(FetchError) as caught:
        await provider.fetch_attachment(IncomingAttachment(kind="video", ref="BAAC-big"))
    assert str(caught.value) == "file too large to download from Telegram; open it in Telegram"
    assert TOKEN not in str(caught.value)


async def test_files_telegram_reports_too_big_are_refused(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    too_big = {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}
    fake_telegram.fail_next("getFile", 400, too_big)
    with pytest.raises(FetchError, match="too large"):
        await provider.fetch_attachment(IncomingAttachment(kind="file", ref="BQAC-whatever"))


async def test_files_known_to_be_too_large_are_refused_without_asking(
    provider: TelegramProvider, fake_telegram: FakeTelegram
) -> None:
    with pytest.raises(FetchError, match="too large"):
        await provider.fetch_attachment(IncomingAttachment(kind="video", ref="BAAC-x", size=21 * 1024 * 1024))
    assert fake_telegram.calls == []


async def test_unknown_files_and_nothing_to_download(provider: TelegramProvider) -> None:
    with pytest.raises(FetchError) as caught:
        await provider.fetch_attachment(IncomingAttachment(kind="file", ref="nope"))
    assert TOKEN not in str(caught.value)
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="location", meta={"latitude": 1, "longitude": 2}))


# --- profile --------------------------------------------------------------------------------------


async def test_fetch_profile(provider: TelegramProvider, fake_telegram: FakeTelegram) -> None:
    profile = await provider.fetch_profile(OLENA, OLENA)
    assert profile is not None
    assert (profile.name, profile.username) == ("Olena Kovalenko", "olena_k")
    big_file_id = fixture("telegram_getChat_private_ok.json")["result"]["photo"]["big_file_id"]
    assert profile.avatar == IncomingAttachment(kind="image", ref=big_file_id, mime="image/jpeg")
    assert fake_telegram.calls == [("getChat", {"chat_id": 5123456789})]
    # The avatar downloads like any attachment.
    download = await provider.fetch_attachment(profile.avatar)
    assert await read_all(download.chunks) == fake_telegram.files["profile_photos/file_1.jpg"]


async def test_fetch_profile_of_an_unknown_user_is_none(provider: TelegramProvider) -> None:
    assert await provider.fetch_profile("6234567890", "-1002198765432") is None
