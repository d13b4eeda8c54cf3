"""FacebookProvider against the fake Graph API and CDN, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from providers.base import (
    CannotConnect,
    Download,
    FetchError,
    IncomingAttachment,
    InvalidCredentials,
    OutgoingAttachment,
    OutgoingMessage,
    SendError,
)
from providers.facebook import FacebookProvider
from providers.facebook.provider import split_text
from tests.fakes.facebook import FakeFacebook

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facebook"
PAGE_ID = "108765432109876"
TOKEN = "EAAG-test-page-token"
PSID = "7093412865523781"
SUBSCRIBED_FIELDS = "messages,messaging_postbacks,message_deliveries,message_reads,message_echoes"


def fixture(name: str) -> Any:
    """Load a fixture file as JSON."""
    with open(FIXTURES / name, "rb") as handle:
        return json.loads(handle.read())


def config(fake: FakeFacebook, **overrides: str) -> dict[str, str]:
    """Return a channel config pointing at the fake."""
    return {
        "page_id": PAGE_ID,
        "page_token": TOKEN,
        "app_secret": "test_app_secret_5f2c8e1a9b7d4c3e",
        "verify_token": "desk-verify-7f3c9a1e",
        "graph_base": fake.graph_base,
        **overrides,
    }


@pytest.fixture
def provider(fake_facebook: FakeFacebook, http: aiohttp.ClientSession) -> FacebookProvider:
    """The provider of the fake's default page."""
    return FacebookProvider(config(fake_facebook), http)


async def read_all(download: Download) -> bytes:
    """Collect a download's chunks."""
    return b"".join([chunk async for chunk in download.chunks])


# --- declaration ------------------------------------------------------------------------------


def test_declaration() -> None:
    assert FacebookProvider.code == "facebook"
    assert FacebookProvider.name == "Facebook Messenger"
    assert [f.as_dict() for f in FacebookProvider.fields] == [
        {"name": "page_id", "label": "Page ID", "type": "text", "required": True, "secret": False},
        {"name": "page_token", "label": "Page access token", "type": "password", "required": True, "secret": True},
        {"name": "app_secret", "label": "App secret", "type": "password", "required": True, "secret": True},
        {"name": "verify_token", "label": "Webhook verify token", "type": "text", "required": True, "secret": False},
        {"name": "graph_base", "label": "Graph API base URL", "type": "url", "required": False, "secret": False},
    ]
    assert FacebookProvider.limits.per_second == 250.0
    assert FacebookProvider.limits.per_chat_interval == 0.0
    assert FacebookProvider.max_download == 25 * 1024 * 1024


async def test_default_graph_base(http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider({"page_id": PAGE_ID, "page_token": TOKEN}, http)
    assert provider.graph_base == "https://graph.facebook.com/v25.0"


# --- validate ---------------------------------------------------------------------------------


async def test_validate(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    identity = await provider.validate()
    assert identity.unique_key == PAGE_ID
    assert identity.display_name == "Acme Support"
    method, path, query, _ = fake_facebook.calls[-1]
    assert (method, path) == ("GET", "/v25.0/me")
    assert query == {"fields": "id,name", "access_token": TOKEN}


async def test_validate_wrong_token(fake_facebook: FakeFacebook, http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider(config(fake_facebook, page_token="EAAG-wrong"), http)
    with pytest.raises(InvalidCredentials) as caught:
        await provider.validate()
    assert caught.value.field == "page_token"
    assert "session is invalid" in str(caught.value)


async def test_validate_token_of_another_page(fake_facebook: FakeFacebook, http: aiohttp.ClientSession) -> None:
    fake_facebook.pages["112233445566778"] = {"name": "Acme Outlet", "token": "EAAG-outlet"}
    provider = FacebookProvider(config(fake_facebook, page_token="EAAG-outlet"), http)
    with pytest.raises(InvalidCredentials) as caught:
        await provider.validate()
    assert caught.value.field == "page_id"
    assert "the token belongs to page 112233445566778" in str(caught.value)


async def test_validate_missing_field(fake_facebook: FakeFacebook, http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider(config(fake_facebook, app_secret=""), http)
    with pytest.raises(InvalidCredentials) as caught:
        await provider.validate()
    assert caught.value.field == "app_secret"
    assert fake_facebook.calls == []


async def test_validate_graph_down(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/me", 502, "<html>Bad Gateway</html>")
    with pytest.raises(CannotConnect):
        await provider.validate()


async def test_validate_unreachable(http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider(
        {"page_id": PAGE_ID, "page_token": TOKEN, "app_secret": "s", "verify_token": "v", "graph_base": "http://127.0.0.1:1/v25.0"},
        http,
    )
    with pytest.raises(CannotConnect) as caught:
        await provider.validate()
    assert TOKEN not in str(caught.value)


# --- register, unregister, health ---------------------------------------------------------------


async def test_register_and_unregister(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    health = await provider.health()
    assert health.ok is False

    registration = await provider.register("https://desk.example.com/webhooks/18")
    assert registration.ok is True and registration.error is None
    assert fake_facebook.subscribed == {PAGE_ID}
    method, path, query, _ = fake_facebook.calls[-1]
    assert (method, path) == ("POST", f"/v25.0/{PAGE_ID}/subscribed_apps")
    assert query == {"subscribed_fields": SUBSCRIBED_FIELDS, "access_token": TOKEN}
    # The callback URL lives in Meta's dashboard: the desk never sends it.
    assert "desk.example.com" not in json.dumps(fake_facebook.calls)

    health = await provider.health()
    assert health.ok is True
    assert health.detail["subscribed_fields"] == sorted(SUBSCRIBED_FIELDS.split(","))
    assert health.detail["apps"] == ["Acme Desk"]
    assert "missing_fields" not in health.detail

    unregistration = await provider.unregister()
    assert unregistration.ok is True
    assert fake_facebook.subscribed == set()
    assert fake_facebook.calls[-1][:2] == ("DELETE", f"/v25.0/{PAGE_ID}/subscribed_apps")
    assert (await provider.health()).ok is False


async def test_register_refused_does_not_raise(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/subscribed_apps", 400, fixture("facebook_error_token_invalid.json"))
    registration = await provider.register("https://desk.example.com/webhooks/18")
    assert registration.ok is False
    assert registration.error == fixture("facebook_error_token_invalid.json")["error"]["message"]
    assert fake_facebook.subscribed == set()


async def test_register_unreachable_does_not_raise(http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider({"page_id": PAGE_ID, "page_token": TOKEN, "graph_base": "http://127.0.0.1:1/v25.0"}, http)
    assert (await provider.register("https://desk.example.com/webhooks/18")).ok is False
    assert (await provider.unregister()).ok is False
    assert (await provider.health()).ok is False


async def test_health_reports_graph_error(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/subscribed_apps", 400, fixture("facebook_error_token_invalid.json"))
    health = await provider.health()
    assert health.ok is False
    assert health.last_error is not None and "session is invalid" in health.last_error


# --- send -------------------------------------------------------------------------------------


async def test_send_text(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    text = "Hi! I'm checking order A-20931 for you now. <script>alert(1)</script> &amp; *bold*"
    result = await provider.send(OutgoingMessage(chat_external_id=PSID, text=text, desk_id=42))
    assert result.external_id == "m_1"
    assert fake_facebook.sent == [
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": text, "metadata": "desk:42:1/1"},
        }
    ]
    method, path, query, _ = fake_facebook.calls[-1]
    assert (method, path, query) == ("POST", "/v25.0/me/messages", {"access_token": TOKEN})


async def test_send_request_shape_matches_fixture(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    expected = fixture("facebook_send_request_text.json")
    await provider.send(OutgoingMessage(chat_external_id=PSID, text=expected["message"]["text"], desk_id=7))
    [sent] = fake_facebook.sent
    assert sent.keys() == expected.keys()
    assert sent["message"].keys() == expected["message"].keys()


async def test_send_long_text_is_split(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    text = ("word " * 900).strip() + "\n" + "x" * 2500
    result = await provider.send(OutgoingMessage(chat_external_id=PSID, text=text, desk_id=5))
    parts = [sent["message"]["text"] for sent in fake_facebook.sent]
    assert len(parts) == 4
    assert all(len(part) <= 2000 for part in parts)
    assert "".join(parts) == text
    assert result.external_id == "m_4"
    # Each part names the reply and its place in it, so that its echo confirms that very part.
    assert [sent["message"]["metadata"] for sent in fake_facebook.sent] == [f"desk:5:{n}/4" for n in range(1, 5)]


def test_split_text() -> None:
    assert split_text("") == [""]
    assert split_text("a" * 2000) == ["a" * 2000]
    assert split_text("a" * 2001) == ["a" * 2000, "a"]
    assert split_text("ab cd", limit=3) == ["ab ", "cd"]
    assert split_text("😊" * 2001) == ["😊" * 2000, "😊"]


async def test_send_file(provider: FacebookProvider, fake_facebook: FakeFacebook, tmp_path: Path) -> None:
    content = b"%PDF-1.4 label\x00\xff" * 1000
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    name = 'label "A-20931" ñ.pdf'
    attachment = OutgoingAttachment(path=str(path), file_name=name, mime="application/pdf", kind="file")
    result = await provider.send(
        OutgoingMessage(chat_external_id=PSID, text="Your label", desk_id=9, attachment=attachment)
    )
    upload, text = fake_facebook.sent
    assert upload["recipient"] == {"id": PSID}
    assert upload["messaging_type"] == "RESPONSE"
    assert upload["message"]["attachment"] == {"type": "file", "payload": {"is_reusable": False}}
    assert upload["filedata"] == {"filename": name, "content_type": "application/pdf", "data": content}
    assert upload["message"]["metadata"] == "desk:9:1/2"
    assert text["message"] == {"text": "Your label", "metadata": "desk:9:2/2"}
    assert result.external_id == "m_2"


async def test_each_part_is_kept_as_it_goes_and_a_retry_sends_only_the_rest(
    provider: FacebookProvider, fake_facebook: FakeFacebook
) -> None:
    text = "A" * 2000 + "B" * 2000 + "C" * 100
    kept: list[str] = []

    async def keep_part(part_id: str) -> None:
        kept.append(part_id)

    fake_facebook.fail_next("/me/messages", 500, "<html>oops</html>", after=1)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(PSID, text, 3, keep_part=keep_part))
    assert caught.value.permanent is False
    assert kept == ["m_1"]

    result = await provider.send(OutgoingMessage(PSID, text, 3, parts_sent=list(kept), keep_part=keep_part))
    assert [sent["message"]["text"] for sent in fake_facebook.sent] == ["A" * 2000, "B" * 2000, "C" * 100]
    assert [sent["message"]["metadata"] for sent in fake_facebook.sent] == ["desk:3:1/3", "desk:3:2/3", "desk:3:3/3"]
    assert kept == fake_facebook.message_ids == ["m_1", "m_2", "m_3"]
    assert result.external_id == "m_3"
    # Every part already through (a crash after the last one): nothing goes again.
    again = await provider.send(OutgoingMessage(PSID, text, 3, parts_sent=list(kept), keep_part=keep_part))
    assert again.external_id == "m_3" and len(fake_facebook.sent) == 3


async def test_a_file_sent_before_a_failure_is_not_uploaded_again(
    provider: FacebookProvider, fake_facebook: FakeFacebook, tmp_path: Path
) -> None:
    path = tmp_path / "label.pdf"
    path.write_bytes(b"%PDF-1.4 label")
    attachment = OutgoingAttachment(path=str(path), file_name="label.pdf", mime="application/pdf", kind="file")
    kept: list[str] = []

    async def keep_part(part_id: str) -> None:
        kept.append(part_id)

    fake_facebook.fail_next("/me/messages", 500, "<html>oops</html>", after=1)
    with pytest.raises(SendError):
        await provider.send(OutgoingMessage(PSID, "Your label", 9, attachment, keep_part=keep_part))
    assert kept == ["m_1"]
    path.unlink()  # not read again: the file went with the first attempt

    result = await provider.send(OutgoingMessage(PSID, "Your label", 9, attachment, list(kept), keep_part))
    upload, text = fake_facebook.sent
    assert upload["filedata"]["data"] == b"%PDF-1.4 label"
    assert text["message"] == {"text": "Your label", "metadata": "desk:9:2/2"}
    assert kept == ["m_1", "m_2"] and result.external_id == "m_2"


async def test_send_image_without_text(provider: FacebookProvider, fake_facebook: FakeFacebook, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0jpeg")
    attachment = OutgoingAttachment(path=str(path), file_name="photo.jpg", mime="image/jpeg", kind="image")
    result = await provider.send(OutgoingMessage(chat_external_id=PSID, text="", desk_id=10, attachment=attachment))
    [upload] = fake_facebook.sent
    assert upload["message"]["attachment"]["type"] == "image"
    assert upload["filedata"]["data"] == b"\xff\xd8\xff\xe0jpeg"
    assert result.external_id == "m_1"


async def test_send_file_name_cannot_break_headers(
    provider: FacebookProvider, fake_facebook: FakeFacebook, tmp_path: Path
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"data")
    name = "a.pdf\r\nX-Injected: 1"
    attachment = OutgoingAttachment(path=str(path), file_name=name, mime="application/pdf", kind="file")
    await provider.send(OutgoingMessage(chat_external_id=PSID, text="", desk_id=12, attachment=attachment))
    [upload] = fake_facebook.sent
    assert upload["filedata"]["filename"] == "a.pdf__X-Injected: 1"
    assert upload["filedata"]["data"] == b"data"


async def test_send_missing_file_is_permanent(provider: FacebookProvider, tmp_path: Path) -> None:
    attachment = OutgoingAttachment(path=str(tmp_path / "gone.pdf"), file_name="gone.pdf", mime="application/pdf")
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="", desk_id=11, attachment=attachment))
    assert caught.value.permanent is True


async def test_send_rate_limited_is_transient(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/me/messages", 400, fixture("facebook_error_rate_limit.json"))
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is False
    assert caught.value.retry_after == 60
    assert caught.value.code == "613/2534040"
    # The next attempt goes through.
    assert (await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))).external_id == "m_1"


async def test_send_app_limit_is_transient(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/me/messages", 400, fixture("facebook_error_app_limit.json"))
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is False
    assert caught.value.retry_after == 60


async def test_send_server_error_is_transient(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.fail_next("/me/messages", 500, "<html>oops</html>")
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is False
    assert caught.value.retry_after is None


async def test_send_unreachable_is_transient(http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider({"page_id": PAGE_ID, "page_token": TOKEN, "graph_base": "http://127.0.0.1:1/v25.0"}, http)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is False
    assert TOKEN not in caught.value.reason


async def test_send_outside_window_is_permanent(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    body = fixture("facebook_error_outside_window.json")
    fake_facebook.fail_next("/me/messages", 400, body)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is True
    assert caught.value.reason == body["error"]["message"]
    assert caught.value.code == "10/2018278"
    assert fake_facebook.sent == []


@pytest.mark.parametrize(
    ("name", "code"),
    [("facebook_error_user_unavailable.json", "551/1545041"), ("facebook_error_token_invalid.json", "190/460")],
)
async def test_send_permanent_errors(
    provider: FacebookProvider, fake_facebook: FakeFacebook, name: str, code: str
) -> None:
    fake_facebook.fail_next("/me/messages", 400, fixture(name))
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is True
    assert caught.value.code == code


async def test_send_with_wrong_token_is_permanent(fake_facebook: FakeFacebook, http: aiohttp.ClientSession) -> None:
    provider = FacebookProvider(config(fake_facebook, page_token="EAAG-revoked"), http)
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="hello", desk_id=1))
    assert caught.value.permanent is True
    assert caught.value.code == "190/460"


async def test_send_nothing_is_refused(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    with pytest.raises(SendError) as caught:
        await provider.send(OutgoingMessage(chat_external_id=PSID, text="", desk_id=1))
    assert caught.value.permanent is True
    assert fake_facebook.calls == []


# --- fetch_attachment -------------------------------------------------------------------------


async def test_fetch_attachment_from_fake_cdn(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    content = bytes(range(256)) * 1024
    fake_facebook.cdn["/v/t1.15752-9/photo_n.jpg"] = (content, "image/jpeg")
    url = f"{fake_facebook.base_url}/v/t1.15752-9/photo_n.jpg?_nc_cat=105&oh=03_Q7&oe=68C4F2A1"
    download = await provider.fetch_attachment(IncomingAttachment(kind="image", ref=url))
    assert download.mime == "image/jpeg"
    assert download.size == len(content)
    assert await read_all(download) == content
    # The CDN is not the Graph API: no token goes there.
    assert fake_facebook.calls == []


async def test_fetch_attachment_follows_a_checked_redirect(
    provider: FacebookProvider, fake_facebook: FakeFacebook
) -> None:
    fake_facebook.cdn["/scontent/pic.jpg"] = (b"picture", "image/jpeg")
    fake_facebook.cdn_redirects["/platform/profilepic/"] = f"{fake_facebook.base_url}/scontent/pic.jpg"
    download = await provider.fetch_attachment(
        IncomingAttachment(kind="image", ref=f"{fake_facebook.base_url}/platform/profilepic/?psid={PSID}")
    )
    assert await read_all(download) == b"picture"


async def test_fetch_attachment_redirect_elsewhere_refused(
    provider: FacebookProvider, fake_facebook: FakeFacebook
) -> None:
    fake_facebook.cdn_redirects["/platform/profilepic/"] = "http://127.0.0.1:1/internal"
    with pytest.raises(FetchError):
        await provider.fetch_attachment(
            IncomingAttachment(kind="image", ref=f"{fake_facebook.base_url}/platform/profilepic/")
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/x",
        "http://127.0.0.1:1/x",
        "http://scontent.xx.fbcdn.net/x.jpg",
        "https://fbcdn.net.evil.example/x.jpg",
        "file:///etc/passwd",
    ],
)
async def test_fetch_attachment_other_hosts_refused(http: aiohttp.ClientSession, url: str) -> None:
    provider = FacebookProvider({"page_id": PAGE_ID, "page_token": TOKEN}, http)
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="image", ref=url))


async def test_fetch_attachment_other_port_refused(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    port = int(fake_facebook.base_url.rsplit(":", 1)[1])
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="image", ref=f"http://127.0.0.1:{port + 1}/x"))


async def test_fetch_attachment_without_ref(provider: FacebookProvider) -> None:
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="location", meta={"lat": 1, "long": 2}))


async def test_fetch_attachment_too_large_by_length(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    provider.max_download = 1000  # type: ignore[misc]
    fake_facebook.cdn["/big.bin"] = (b"x" * 1001, "application/octet-stream")
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="file", ref=f"{fake_facebook.base_url}/big.bin"))


async def test_fetch_attachment_too_large_while_streaming(
    provider: FacebookProvider, fake_facebook: FakeFacebook
) -> None:
    provider.max_download = 100_000  # type: ignore[misc]
    fake_facebook.cdn["/stream.bin"] = (b"y" * 200_000, "application/octet-stream")
    fake_facebook.cdn_chunked.add("/stream.bin")
    download = await provider.fetch_attachment(
        IncomingAttachment(kind="file", ref=f"{fake_facebook.base_url}/stream.bin")
    )
    assert download.size is None
    with pytest.raises(FetchError):
        await read_all(download)


async def test_fetch_attachment_real_limit_by_length(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.cdn["/huge.mp4"] = (b"\x00" * (25 * 1024 * 1024 + 1), "video/mp4")
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="video", ref=f"{fake_facebook.base_url}/huge.mp4"))


async def test_fetch_attachment_gone(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    with pytest.raises(FetchError):
        await provider.fetch_attachment(IncomingAttachment(kind="file", ref=f"{fake_facebook.base_url}/expired.pdf"))


async def test_fetch_attachment_closed_early(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.cdn["/a.bin"] = (b"z" * 300_000, "application/octet-stream")
    download = await provider.fetch_attachment(IncomingAttachment(kind="file", ref=f"{fake_facebook.base_url}/a.bin"))
    first = await download.chunks.__anext__()
    assert first
    await download.chunks.aclose()  # type: ignore[attr-defined]


# --- fetch_profile ----------------------------------------------------------------------------


async def test_fetch_profile(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    profile = await provider.fetch_profile(PSID, PSID)
    assert profile is not None
    assert profile.name == "Lucía Fernández"
    assert profile.avatar is not None
    assert profile.avatar.kind == "image"
    assert profile.avatar.ref == fixture("facebook_profile.json")["profile_pic"]
    method, path, query, _ = fake_facebook.calls[-1]
    assert (method, path) == ("GET", f"/v25.0/{PSID}")
    assert query == {"fields": "first_name,last_name,profile_pic", "access_token": TOKEN}


async def test_fetch_profile_avatar_downloads(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.profiles["123"] = {"first_name": "Ana", "profile_pic": f"{fake_facebook.base_url}/pic.jpg"}
    fake_facebook.cdn["/pic.jpg"] = (b"jpeg", "image/jpeg")
    profile = await provider.fetch_profile("123", "123")
    assert profile is not None and profile.name == "Ana" and profile.avatar is not None
    assert await read_all(await provider.fetch_attachment(profile.avatar)) == b"jpeg"


async def test_fetch_profile_empty(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    fake_facebook.profiles["555"] = {}
    assert await provider.fetch_profile("555", "555") is None


async def test_fetch_profile_error(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    assert await provider.fetch_profile("999", "999") is None
    fake_facebook.fail_next(f"/{PSID}", 400, {"error": {"message": "No profile", "code": 2018218, "type": "OAuthException"}})
    assert await provider.fetch_profile(PSID, PSID) is None


async def test_fetch_profile_path_is_quoted(provider: FacebookProvider, fake_facebook: FakeFacebook) -> None:
    assert await provider.fetch_profile("../me", "x") is None
    # The id stays one path segment: Graph is not asked for /me.
    method, path, query, _ = fake_facebook.calls[-1]
    assert query["fields"] == "first_name,last_name,profile_pic"
    assert ("GET", "/v25.0/me") not in [call[:2] for call in fake_facebook.calls]
