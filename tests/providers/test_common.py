"""providers.common, the helpers the built-in providers share, against a local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from providers.base import BadPayload, FetchError
from providers.common import (
    download_checked,
    header,
    load_json_object,
    multipart_file_name,
    same_secret,
    signature_matches,
)

SECRET = "app-secret-0123456789"
BODY = b'{"object": "page"}'
TOKEN = "123456:AAH-secret-token"


def signed(secret: str, body: bytes) -> str:
    """Sign ``body`` as Meta and the API channel do."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_header_is_found_in_any_case_in_a_plain_dict() -> None:
    headers = {"x-hub-signature-256": "sha256=ab", "Content-Type": "application/json"}
    assert header(headers, "X-Hub-Signature-256") == "sha256=ab"
    assert header(headers, "content-type") == "application/json"
    assert header(headers, "X-Other") is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_a_body_that_is_no_json_object_is_a_bad_payload(body: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        load_json_object(body)


def test_secrets_match_only_when_equal_and_not_empty() -> None:
    assert same_secret("Zq8_vN3-tL5w", "Zq8_vN3-tL5w")
    assert same_secret("пароль", "пароль")
    assert not same_secret("Zq8_vN3-tL5w", "Zq8_vN3-tL5x")
    assert not same_secret("Zq8_vN3-tL5wé", "Zq8_vN3-tL5w")
    assert not same_secret("", "")
    assert not same_secret(None, "x")


def test_signature_matches_the_hmac_of_the_raw_body_in_either_case() -> None:
    good = signed(SECRET, BODY)
    assert signature_matches(good, SECRET, BODY)
    assert signature_matches("sha256=" + good[7:].upper(), SECRET, BODY)
    assert signature_matches("v1=" + good[7:], SECRET, BODY, prefix="v1=")


@pytest.mark.parametrize(
    ("given", "secret", "body"),
    [
        (signed(SECRET, BODY), SECRET, BODY + b" "),
        (signed("another-secret", BODY), SECRET, BODY),
        (signed(SECRET, BODY)[7:], SECRET, BODY),
        ("sha1=" + signed(SECRET, BODY)[7:], SECRET, BODY),
        (signed(SECRET, BODY)[:-1], SECRET, BODY),
        ("sha256=" + "z" * 64, SECRET, BODY),
        (None, SECRET, BODY),
        (signed("", BODY), "", BODY),
    ],
)
def test_any_other_signature_does_not_match(given: str | None, secret: str, body: bytes) -> None:
    assert not signature_matches(given, secret, body)


def test_multipart_file_names_cannot_break_the_part_headers() -> None:
    assert multipart_file_name("a.pdf\r\nX-Injected: 1") == "a.pdf__X-Injected: 1"
    assert multipart_file_name("Рахунок №5.pdf") == "Рахунок №5.pdf"
    assert multipart_file_name("") == "file"


async def broken_off(request: web.Request) -> web.StreamResponse:
    """Promise 100 000 bytes, send 1 000, and hang up."""
    response = web.StreamResponse(headers={"Content-Type": "application/pdf", "Content-Length": "100000"})
    await response.prepare(request)
    await response.write(b"%" * 1000)
    assert request.transport is not None
    request.transport.close()
    return response


async def test_a_download_that_breaks_off_names_only_the_kind_of_failure(
    aiohttp_server: Any, http: aiohttp.ClientSession
) -> None:
    app = web.Application()
    app.router.add_get(f"/file/bot{TOKEN}/doc.pdf", broken_off)
    server = await aiohttp_server(app)
    base = str(server.make_url(""))
    url = f"{base.rstrip('/')}/file/bot{TOKEN}/doc.pdf"
    download = await download_checked(http, url, allowed_hosts=(), configured_base=base, limit=1_000_000)
    assert (download.mime, download.size) == ("application/pdf", 100_000)
    with pytest.raises(FetchError) as caught:
        async for _ in download.chunks:
            pass
    assert str(caught.value).startswith("the download broke off")
    # The URL carried a token: neither the message nor a chained error may quote it.
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_download_larger_than_its_limit_is_cut_off(aiohttp_server: Any, http: aiohttp.ClientSession) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        # No Content-Length: only counting while streaming can catch the size.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 4096)
        return response

    app = web.Application()
    app.router.add_get("/big", chunked)
    server = await aiohttp_server(app)
    base = str(server.make_url(""))
    download = await download_checked(
        http, f"{base.rstrip('/')}/big", allowed_hosts=(), configured_base=base, limit=10_000
    )
    assert download.size is None
    received = 0
    with pytest.raises(FetchError, match="larger than 10000 bytes"):
        async for chunk in download.chunks:
            received += len(chunk)
    assert received <= 10_000
