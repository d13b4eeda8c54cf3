"""A thin Graph API client over an injected ``aiohttp.ClientSession``."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from providers.base import ProviderError
from providers.common import multipart_file_name, open_for_upload
from providers.facebook import const


class GraphError(ProviderError):
    """A Graph call failed: Graph's error envelope, an unusable answer, or no answer at all."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        error_subcode: int | None = None,
        is_transient: bool = False,
        status: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_subcode = error_subcode
        self.is_transient = is_transient
        self.status = status
        self.fbtrace_id = fbtrace_id

    @property
    def network(self) -> bool:
        """Whether Graph could not be reached at all (no HTTP status)."""
        return self.status is None

    @property
    def code_text(self) -> str | None:
        """Return "code/subcode" (or "code") as the desk shows it."""
        if self.code is None:
            return None
        if self.error_subcode is None:
            return str(self.code)
        return f"{self.code}/{self.error_subcode}"


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def error_from_body(status: int, body: Any) -> GraphError:
    """Build a GraphError from an HTTP status and Graph's ``{"error": {...}}`` envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(f"Graph answered HTTP {status}", status=status, is_transient=status >= 500)
    message = error.get("message")
    return GraphError(
        message if isinstance(message, str) and message else f"Graph answered HTTP {status}",
        code=_int_or_none(error.get("code")),
        error_subcode=_int_or_none(error.get("error_subcode")),
        is_transient=error.get("is_transient") is True,
        status=status,
        fbtrace_id=error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
    )


def path_segment(value: str) -> str:
    """Quote an id for use as one URL path segment."""
    return quote(value, safe="")


class GraphClient:
    """Call the Graph API with one page access token."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
        timeout: float = const.REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        """Call ``{base}{path}`` with the token; return the JSON object or raise GraphError."""
        query = dict(params or {})
        query["access_token"] = self.token
        try:
            async with self.http.request(
                method,
                self.base + path,
                params=query,
                json=json_body,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The URL carries the token: report only the kind of failure.
            raise GraphError(f"cannot reach Graph: {type(exc).__name__}", is_transient=True) from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status >= 400 or (isinstance(body, dict) and "error" in body):
            raise error_from_body(status, body)
        if not isinstance(body, dict):
            raise GraphError(f"Graph answered HTTP {status} without a JSON object", status=status)
        return body

    async def me(self) -> dict[str, Any]:
        """Return the id and name of the token's page."""
        return await self.request("GET", "/me", params={"fields": const.ME_FIELDS})

    async def subscribe(self, page_id: str, fields: tuple[str, ...]) -> dict[str, Any]:
        """Subscribe the app to the page's webhook ``fields``."""
        return await self.request(
            "POST",
            f"/{path_segment(page_id)}/subscribed_apps",
            params={"subscribed_fields": ",".join(fields)},
        )

    async def unsubscribe(self, page_id: str) -> dict[str, Any]:
        """Remove the app's subscription to the page."""
        return await self.request("DELETE", f"/{path_segment(page_id)}/subscribed_apps")

    async def subscribed_apps(self, page_id: str) -> dict[str, Any]:
        """List the apps subscribed to the page and their fields."""
        return await self.request("GET", f"/{path_segment(page_id)}/subscribed_apps")

    async def send_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one message through the Send API."""
        return await self.request("POST", "/me/messages", json_body=body)

    async def send_upload(
        self, recipient: dict[str, Any], message: dict[str, Any], path: str, file_name: str, mime: str
    ) -> dict[str, Any]:
        """Send one attachment, uploading the file at ``path`` as ``filedata``."""
        # Opened off the loop; aiohttp reads file payloads in its executor.
        handle = await open_for_upload(path)
        try:
            # Browsers send the file name as raw UTF-8; percent-quoting would show up in the name.
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("recipient", json.dumps(recipient))
            form.add_field("messaging_type", const.MESSAGING_TYPE_RESPONSE)
            form.add_field("message", json.dumps(message))
            form.add_field("filedata", handle, filename=multipart_file_name(file_name), content_type=mime)
            return await self.request("POST", "/me/messages", data=form, timeout=const.UPLOAD_TIMEOUT)
        finally:
            handle.close()  # at once: a close handed to a thread may never run if the send is cancelled

    async def profile(self, psid: str) -> dict[str, Any]:
        """Return the customer's name and picture as the User Profile API tells them."""
        return await self.request("GET", f"/{path_segment(psid)}", params={"fields": const.PROFILE_FIELDS})
