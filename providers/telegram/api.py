"""A thin Telegram Bot API client over an injected ``aiohttp.ClientSession``."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from providers.telegram.const import CONNECT_TIMEOUT, DEFAULT_API_BASE, READ_TIMEOUT, REQUEST_TIMEOUT


class ApiError(Exception):
    """Telegram answered ``{"ok": false, ...}``: its description, error code and parameters."""

    def __init__(
        self,
        description: str,
        error_code: int,
        *,
        retry_after: float | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.error_code = error_code
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


class ApiUnreachable(Exception):
    """Telegram could not be reached, did not answer in time, or answered no Bot API envelope."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class TelegramApi:
    """Call Bot API methods of one bot; never put its token in an error message."""

    def __init__(self, http: aiohttp.ClientSession, token: str, base: str = DEFAULT_API_BASE) -> None:
        self.http = http
        self.token = token
        self.base = (base or DEFAULT_API_BASE).rstrip("/")
        # Seconds for one call; tests may shorten it.
        self.timeout = REQUEST_TIMEOUT

    def redact(self, text: str) -> str:
        """Replace the bot token in ``text`` with a placeholder."""
        if not self.token:
            return text
        return text.replace(self.token, "<token>").replace(quote(self.token, safe=""), "<token>")

    def _url(self, prefix: str, path: str) -> str:
        return f"{self.base}/{prefix}{quote(self.token, safe=':')}/{path}"

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        form: aiohttp.FormData | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with JSON ``params`` (or a multipart ``form``) and return its ``result``."""
        client_timeout = aiohttp.ClientTimeout(total=timeout or self.timeout, sock_connect=CONNECT_TIMEOUT)
        try:
            async with self.http.post(
                self._url("bot", method),
                json=params if form is None else None,
                data=form,
                timeout=client_timeout,
            ) as response:
                status = response.status
                raw = await response.read()
        except asyncio.TimeoutError:
            raise ApiUnreachable("Telegram did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ApiUnreachable(self.redact(f"cannot reach Telegram: {str(exc) or type(exc).__name__}")) from None
        return self._result(status, raw)

    def _result(self, status: int, raw: bytes) -> Any:
        try:
            envelope = json.loads(raw)
        except (ValueError, RecursionError):
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
            raise ApiUnreachable(f"unexpected answer from Telegram (HTTP {status})", status=status)
        if envelope["ok"]:
            return envelope.get("result")
        code = envelope.get("error_code")
        if isinstance(code, bool) or not isinstance(code, int):
            code = status
        description = envelope.get("description")
        if not isinstance(description, str) or not description:
            description = f"Telegram refused the request (error {code})"
        parameters = envelope.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        migrate = parameters.get("migrate_to_chat_id")
        raise ApiError(
            self.redact(description),
            code,
            retry_after=_number(parameters.get("retry_after")),
            migrate_to_chat_id=migrate if isinstance(migrate, int) and not isinstance(migrate, bool) else None,
        )

    async def download(self, file_path: str) -> aiohttp.ClientResponse:
        """Start downloading ``file_path`` (from getFile); the caller releases the response."""
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        try:
            response = await self.http.get(self._url("file/bot", file_path.lstrip("/")), timeout=client_timeout)
        except asyncio.TimeoutError:
            raise ApiUnreachable("Telegram did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ApiUnreachable(self.redact(f"cannot reach Telegram: {str(exc) or type(exc).__name__}")) from None
        if response.status != 200:
            status = response.status
            response.release()
            raise ApiError(f"Telegram refused the download (HTTP {status})", status)
        return response
