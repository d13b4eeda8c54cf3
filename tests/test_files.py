"""Attachment storage: what lands on disk, and what is left when a download stops half-way."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import warnings
from pathlib import Path

import pytest

from desk.files import FileTooLarge, store_stream


def open_files_under(folder: Path) -> list[str]:
    """Return the files under ``folder`` that this process still holds open (Linux /proc)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def chunks_of(*parts: bytes):
    for part in parts:
        yield part


async def test_stream_is_stored_whole_under_a_name_of_our_own(tmp_path):
    relative, size = await store_stream(tmp_path, chunks_of(b"abc", b"def"), limit=100,
                                        file_name="../../etc/passwd.png", mime="image/png")
    assert size == 6
    assert (tmp_path / relative).read_bytes() == b"abcdef"
    assert relative.endswith(".png") and ".." not in relative
    assert files_under(tmp_path) == [tmp_path / relative]


async def test_stream_over_the_limit_keeps_nothing(tmp_path):
    with pytest.raises(FileTooLarge, match="larger than the limit of 4 bytes"):
        await store_stream(tmp_path, chunks_of(b"abc", b"def"), limit=4, file_name=None, mime=None)
    assert files_under(tmp_path) == []
    assert open_files_under(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see open files")
async def test_download_cancelled_half_way_closes_and_removes_its_file(tmp_path):
    started = asyncio.Event()

    async def stalls_after_one_chunk():
        yield b"first part"
        started.set()
        await asyncio.Event().wait()  # the messenger stops sending; shutdown cancels us
        yield b"never"

    download = asyncio.create_task(store_stream(tmp_path, stalls_after_one_chunk(), limit=1000,
                                                file_name="photo.jpg", mime="image/jpeg"))
    await started.wait()
    assert [path.suffix for path in files_under(tmp_path)] == [".part"]
    download.cancel()
    with pytest.raises(asyncio.CancelledError):
        await download
    # Closed at once, without another turn of the loop: a task cancelled at shutdown gets none.
    assert open_files_under(tmp_path) == []
    assert files_under(tmp_path) == []


def test_download_cancelled_at_shutdown_leaves_no_file_open(tmp_path):
    # As at the end of a run: the worker cancels a download that is under way, waits for it, and
    # the loop closes straight after. The cancel lands at a different point each round: in the
    # open, a write, the close or the rename. No file may be left open or half-written.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for round in range(120):
            loop = asyncio.new_event_loop()
            download = loop.create_task(store_stream(tmp_path, chunks_of(b"data", b"more"), limit=1000,
                                                     file_name="photo.jpg", mime="image/jpeg"))
            loop.run_until_complete(asyncio.sleep(round * 0.00001))
            download.cancel()
            loop.run_until_complete(asyncio.gather(download, return_exceptions=True))
            loop.close()
            del download
        time.sleep(0.05)  # a thread call still queued at close would have run by now
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert [path for path in files_under(tmp_path) if path.suffix == ".part"] == []
