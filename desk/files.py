"""Attachment storage with aiofiles: stream to disk under a safe name of our own, with a size cap."""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles.os

from providers.common import open_file


class FileTooLarge(Exception):
    """The file went over the size cap while streaming; nothing was kept."""


def safe_name(file_name: str | None, mime: str | None) -> str:
    """Return a new random relative path; only a short alphanumeric extension survives from the name."""
    ext = ""
    if file_name and "." in file_name:
        candidate = file_name.rsplit(".", 1)[1].lower()
        if candidate.isalnum() and len(candidate) <= 8:
            ext = "." + candidate
    if not ext and mime:
        ext = mimetypes.guess_extension(mime.split(";")[0].strip()) or ""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}{ext}"


async def store_stream(media_dir: Path, chunks: AsyncIterator[bytes], *, limit: int, file_name: str | None,
                       mime: str | None) -> tuple[str, int]:
    """Write ``chunks`` to a new file under ``media_dir``; return (relative path, size)."""
    relative = safe_name(file_name, mime)
    target = media_dir / relative
    await aiofiles.os.makedirs(target.parent, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    size = 0
    try:
        out = await open_file(partial, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"the file is larger than the limit of {_human(limit)}")
                await out.write(chunk)
            await out.close()
        except BaseException:
            # Closed here and now, whatever the thread got to: cancelling an awaited thread call
            # withdraws it if it has not started yet, and at shutdown nothing would close it later.
            # Closing twice is harmless; the file object's lock orders it after a write in flight.
            out._file.close()
            raise
        await aiofiles.os.replace(partial, target)
    except BaseException:
        try:
            await aiofiles.os.remove(partial)
        except OSError:
            pass
        raise
    return relative, size


def _human(size: int) -> str:
    """Return a byte count for people: 25 MB, 512 KB, 100 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} bytes"


def resolve(media_dir: Path, relative: str) -> Path:
    """Return the absolute path of a stored file, refusing anything outside ``media_dir``."""
    base = media_dir.resolve()
    path = (base / relative).resolve()
    if os.path.commonpath([base, path]) != str(base):
        raise FileNotFoundError(relative)
    return path
