"""What the built-in providers share: header lookup, JSON bodies, secret checks, checked downloads,
files opened off the loop.

Any provider may import this module (like ``providers.base`` and ``providers.netguard``); it
never imports ``desk``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import IO, Any, Final
from urllib.parse import urljoin

import aiofiles
import aiohttp

from providers.base import BadPayload, Download, FetchError
from providers.netguard import check_url

# HTTP statuses that send the client elsewhere (with a Location header).
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Downloads: bytes per chunk, hops followed, seconds to connect and between two reads.
DOWNLOAD_CHUNK: Final = 64 * 1024
MAX_REDIRECTS: Final = 5
DOWNLOAD_CONNECT_TIMEOUT: Final = 10.0
DOWNLOAD_READ_TIMEOUT: Final = 30.0

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up case-insensitively (a plain dict or aiohttp's CIMultiDict)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def load_json_object(body: bytes) -> dict[str, Any]:
    """Decode a raw webhook body into a JSON object; raise BadPayload otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadPayload("the body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise BadPayload("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadPayload("the body is not a JSON object")
    return data


def same_secret(given: str | None, expected: str | None) -> bool:
    """Compare two secrets in constant time; an empty or missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def hmac_sha256(secret: str, data: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``data`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def signature_matches(given: str | None, secret: str, body: bytes, *, prefix: str = "sha256=") -> bool:
    """Whether ``given`` is ``prefix`` + the hex HMAC-SHA256 of ``body``, compared in constant time."""
    if not secret or not given or not given.startswith(prefix):
        return False
    digest = given[len(prefix) :]
    if not _HEX_SHA256.fullmatch(digest):
        return False
    return hmac.compare_digest(digest.lower().encode("ascii"), hmac_sha256(secret, body).encode("ascii"))


def multipart_file_name(name: str) -> str:
    """Return a file name safe in a multipart part's headers: control characters become ``_``."""
    return "".join("_" if ord(char) < 32 or ord(char) == 127 else char for char in name) or "file"


async def open_file(path: str | os.PathLike[str], mode: str):
    """Open ``path`` with aiofiles (in a thread) and see the open through even if cancelled meanwhile.

    A file that a thread opens for a task that no longer waits is never closed: at shutdown the
    loop may be gone before the thread hands it back. So the open, one quick syscall, always
    completes, and a cancel that came during it closes the file and is raised afterwards. Whoever
    gets the file closes it with ``handle._file.close()`` on an error or a cancel: cancelling an
    awaited thread call withdraws it if it has not started, so a close sent to a thread may never run.
    """
    opening = asyncio.ensure_future(aiofiles.open(path, mode))
    cancelled = False
    while not opening.done():
        try:
            await asyncio.wait([opening])
        except asyncio.CancelledError:
            cancelled = True
    handle = opening.result()  # the open's own error, if it failed
    if cancelled:
        handle._file.close()  # the thread is done with it: closing directly is instant
        raise asyncio.CancelledError
    return handle


async def open_for_upload(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open the file at ``path`` off the loop, for aiohttp to stream from (it reads in its executor).

    The caller closes it with a plain ``close()`` in a ``finally``: closing a file that was only
    read does no I/O worth a thread, and a cancelled send must not leave it open.
    """
    return (await open_file(path, "rb"))._file


class LimitedChunks:
    """A download's body as an async iterator that refuses more than ``limit`` bytes.

    The response is released at the end and closed on any failure, cancellation or ``aclose``,
    so an abandoned download never holds a pooled connection.
    """

    def __init__(self, response: aiohttp.ClientResponse, limit: int, chunk_size: int = DOWNLOAD_CHUNK) -> None:
        self._response = response
        self._limit = limit
        self._received = 0
        self._iterator = response.content.iter_chunked(chunk_size)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._response.release()
            raise
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            self._response.close()
            # The error's text may quote the URL, which can carry a token: name only its kind.
            raise FetchError(f"the download broke off: {type(exc).__name__}") from None
        except BaseException:
            self._response.close()
            raise
        self._received += len(chunk)
        if self._received > self._limit:
            self._response.close()
            raise FetchError(f"the file is larger than {self._limit} bytes")
        return chunk

    async def aclose(self) -> None:
        """Stop the download and free its connection."""
        self._response.close()


async def download_checked(
    http: aiohttp.ClientSession,
    url: str,
    *,
    allowed_hosts: Iterable[str],
    configured_base: str | None,
    limit: int,
    max_redirects: int = MAX_REDIRECTS,
) -> Download:
    """Start downloading a URL that came in a webhook, checking every redirect hop with ``check_url``.

    Raise FetchError for a refused host, a bad URL, a non-200 answer or a declared size over
    ``limit``; connection errors propagate, so the caller decides whether they are retried.
    """
    hosts = tuple(allowed_hosts)
    timeout = aiohttp.ClientTimeout(total=None, connect=DOWNLOAD_CONNECT_TIMEOUT, sock_read=DOWNLOAD_READ_TIMEOUT)
    # Redirects are followed by hand so that every hop passes the same check.
    for _ in range(max_redirects + 1):
        await check_url(url, allowed_hosts=hosts, configured_base=configured_base)
        try:
            response = await http.get(url, timeout=timeout, allow_redirects=False)
        except aiohttp.InvalidURL:
            raise FetchError("the attachment's URL is not valid") from None
        if response.status in REDIRECTS and response.headers.get("Location"):
            location = response.headers["Location"]
            response.release()
            url = urljoin(url, location)
            continue
        if response.status != 200:
            response.release()
            raise FetchError(f"the file's URL answered HTTP {response.status}")
        size = response.content_length
        if size is not None and size > limit:
            response.close()
            raise FetchError(f"the file is larger than {limit} bytes")
        mime = response.content_type if "Content-Type" in response.headers else None
        return Download(chunks=LimitedChunks(response, limit), mime=mime, size=size)
    raise FetchError("too many redirects")
