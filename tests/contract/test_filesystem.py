"""The filesystem driver's background flushing of big writes: bytes stay exact across flushes, closes,
resumes and cancels that race a flush in flight."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from portside.storage.drivers.filesystem import FilesystemDriver, FilesystemParameters, _Writer

MiB = 1024 * 1024


async def test_big_writes_resumed_and_committed_across_background_flushes(tmp_path: Path) -> None:
    driver = FilesystemDriver(FilesystemParameters(rootdirectory=str(tmp_path)))
    data = os.urandom(3 * _Writer.SYNC_EVERY + 12345)
    try:
        offset = 0
        # Pieces of uneven sizes, each writer closed right after the write that starts a flush.
        for piece in (_Writer.SYNC_EVERY + 1, _Writer.SYNC_EVERY // 2, _Writer.SYNC_EVERY + 7, len(data)):
            writer = await driver.writer("/uploads/u/data", append=True)
            assert writer.size == offset
            end = min(len(data), offset + piece)
            for start in range(offset, end, MiB):
                await writer.write(data[start : min(end, start + MiB)])
            offset = end
            if offset == len(data):
                await writer.commit()
                break
            await writer.close()
        on_disk = (tmp_path / "uploads" / "u" / "data").read_bytes()
        assert hashlib.sha256(on_disk).digest() == hashlib.sha256(data).digest()
    finally:
        await driver.close()


async def test_cancel_during_a_background_flush_leaves_nothing(tmp_path: Path) -> None:
    driver = FilesystemDriver(FilesystemParameters(rootdirectory=str(tmp_path)))
    try:
        writer = await driver.writer("/uploads/c/data")
        await writer.write(os.urandom(_Writer.SYNC_EVERY))  # starts a flush
        await writer.cancel()
        assert not (tmp_path / "uploads" / "c" / "data").exists()
        # The driver's descriptors are all closed: a new writer gets a fresh file.
        again = await driver.writer("/uploads/c/data", append=True)
        assert again.size == 0
        await again.cancel()
    finally:
        await driver.close()
