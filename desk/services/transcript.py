"""The built-in "Send transcript" action: the chat's messages as a signed JSON POST to the admin's URL.

It is registered through the ``desk.chat_actions`` entry-point group like any plug-in. The POST is
a durable job, retried with backoff; the body is signed like the ``api`` provider's callbacks:
``X-Desk-Signature: sha256=HMAC(transcript secret, "<X-Desk-Timestamp>.<body>")``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import aiohttp

from desk.actions import ActionRun, ChatAction
from desk.services import auth
from desk.store import Setting

URL_SETTING = "transcript_url"
SECRET_SETTING = "transcript_secret"
TIMEOUT = aiohttp.ClientTimeout(total=30)


def transcript_url() -> str | None:
    """Return the URL transcripts go to, if the admin set one."""
    row = Setting.get_or_none(Setting.key == URL_SETTING)
    return row.value if row is not None and row.value else None


def transcript_secret() -> str:
    """Return the secret that signs transcripts (generated once)."""
    return auth.setting(SECRET_SETTING, lambda: secrets.token_urlsafe(32))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the ``X-Desk-Signature`` value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class SendTranscript(ChatAction):
    """Post the chat's transcript to the URL set on the settings page."""

    code = "send_transcript"
    title = "Send transcript"
    states = ("active", "closed")

    async def run(self, run: ActionRun) -> str | None:
        """Queue the transcript for delivery."""
        url = transcript_url()
        if not url:
            raise ValueError("no transcript URL is set on the settings page")
        run.later({
            "url": url,
            "transcript": {"chat": run.chat, "messages": run.messages(), "sent_by": run.operator},
        })
        return f"The transcript is on its way to {url}"

    async def deliver(self, data: dict[str, Any], http: aiohttp.ClientSession) -> str | None:
        """POST the transcript, signed; raise on anything but 2xx so that it is retried."""
        body = json.dumps({"type": "transcript", **data["transcript"]}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Desk-Timestamp": timestamp,
                   "X-Desk-Signature": sign(transcript_secret(), timestamp, body)}
        async with http.post(data["url"], data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"{data['url']} answered HTTP {response.status}")
        return f"Transcript sent to {data['url']}"
