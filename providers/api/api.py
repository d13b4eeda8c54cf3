"""The API channel's wire: HMAC signatures both ways, and a thin client for the callback URL."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from providers.api.const import (
    MAX_RETRY_AFTER,
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    TIMESTAMP_HEADER,
    USER_AGENT,
)
from providers.common import hmac_sha256


def body_signature(secret: str, body: bytes) -> str:
    """Return the signature header of an inbound body: ``sha256=`` + hex HMAC-SHA256 of the raw bytes."""
    return SIGNATURE_PREFIX + hmac_sha256(secret, body)


def callback_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header of a callback: HMAC-SHA256 over ``f"{timestamp}.{body}"``."""
    return body_signature(secret, timestamp.encode("ascii") + b"." + body)


def retry_after(value: str | None) -> float | None:
    """Read a Retry-After header (seconds or an HTTP date) as seconds from now; ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


class CallbackUnreachable(Exception):
    """The callback URL could not be reached or did not answer in time."""


@dataclasses.dataclass
class CallbackAnswer:
    """What the callback answered: status, headers and raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def text(self, limit: int) -> str:
        """Return the body as text, cut to ``limit`` characters."""
        text = self.body.decode("utf-8", "replace").strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"


class CallbackClient:
    """POST signed JSON bodies to one callback URL."""

    def __init__(self, http: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.http = http
        self.url = url
        self.secret = secret

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Return the headers of a callback carrying ``body``, signed now (or at ``timestamp``)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: callback_signature(self.secret, stamp, body),
        }

    async def post(self, body: bytes, *, timeout: float, headers: Mapping[str, str] | None = None) -> CallbackAnswer:
        """POST ``body`` (signed unless ``headers`` are given); raise CallbackUnreachable without an answer."""
        try:
            async with self.http.post(
                self.url,
                data=body,
                headers=dict(headers) if headers is not None else self.signed_headers(body),
                timeout=aiohttp.ClientTimeout(total=timeout),
                # A redirect would carry the signed body to a URL the admin did not set.
                allow_redirects=False,
            ) as response:
                return CallbackAnswer(response.status, response.headers, await response.read())
        except TimeoutError:
            raise CallbackUnreachable("the callback URL did not answer in time") from None
        except aiohttp.ClientConnectorError as exc:
            raise CallbackUnreachable(f"cannot reach the callback URL: {exc}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # Other errors may quote the URL, which can hold a token: name only the kind of failure.
            raise CallbackUnreachable(f"cannot reach the callback URL: {type(exc).__name__}") from None
