"""The local file system driver: blobs as plain files under a root directory, served with sendfile."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from stat import S_ISDIR
from typing import Any, TypeVar

from pydantic import Field

from portside.storage import factory
from portside.storage.driver import (
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    StagedContent,
    StorageDriver,
)
from portside.storage.parameters import DriverParameters

T = TypeVar("T")


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> int:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    return len(data)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Reader(FileReader):
    def __init__(self, driver: FilesystemDriver, fd: int) -> None:
        self._driver = driver
        self._fd = fd

    async def read(self, size: int) -> bytes:
        return await self._driver.run(os.read, self._fd, size)

    async def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class _Writer(FileWriter):
    """Appends to a file; every `SYNC_EVERY` bytes it starts flushing them to disk in the background.

    Without that, a big upload's bytes would all reach the disk during the fsync of `commit` (the kernel starts
    writing back dirty pages only after a delay or beyond a share of memory), so the client would wait for the
    whole flush after sending its last byte. Flushing as the bytes arrive leaves `commit` only the tail.
    """

    SYNC_EVERY = 8 * 1024 * 1024

    def __init__(self, driver: FilesystemDriver, path: str, fd: int, size: int) -> None:
        self._driver = driver
        self._path = path
        self._fd = fd
        self._size = size
        self._unsynced = 0
        self._syncing: asyncio.Future[None] | None = None

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        written = await self._driver.run(_write_all, self._fd, data)
        self._size += written
        self._unsynced += written
        if self._unsynced >= self.SYNC_EVERY and (self._syncing is None or self._syncing.done()):
            await self._settle()  # surfaces an error of the previous flush
            self._unsynced = 0
            self._syncing = asyncio.ensure_future(self._driver.run(os.fdatasync, self._fd))
        return written

    async def _settle(self) -> None:
        """Wait for the background flush; its error is raised (the kernel reports a write-back error once)."""
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            await syncing

    async def commit(self) -> None:
        await self._settle()
        await self._driver.run(os.fsync, self._fd)
        await self.close()

    async def cancel(self) -> None:
        await self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    async def close(self) -> None:
        # The descriptor stays open until a background flush on it is over: closing it earlier could let the
        # flush run on a descriptor number already reused for another file.
        with contextlib.suppress(OSError):
            await self._settle()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


_TEMPORARY = re.compile(r".+\.[0-9a-f]{32}\.tmp")
"""A file on its way to its path: `put_content` and `stage_content` write `<path>.<uuid hex>.tmp`, then rename."""


class _StagedFile(StagedContent):
    """A small file written beside its path (`<path>.<random>.tmp`), still open; `place` fsyncs it, renames it
    over its path and fsyncs the directory, which is what `put_content` does on a thread in one go. Whoever
    runs `place` owns the file from then on: a failing `place` removes it itself."""

    def __init__(self, fd: int, tmp: str, full: str) -> None:
        self._fd = fd
        self._tmp = tmp
        self._full = full

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def place(self) -> None:
        try:
            os.fsync(self._fd)
            self._close()
            os.replace(self._tmp, self._full)
        except BaseException:
            self.discard()
            raise
        _fsync_dir(os.path.dirname(self._full))

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class FilesystemParameters(DriverParameters):
    """Docker Distribution's `storage.filesystem` keys."""

    rootdirectory: str = "./data"
    maxthreads: int = Field(default=100, ge=25)


class FilesystemDriver(StorageDriver):
    """Files under `rootdirectory`; blocking calls run on a bounded thread pool (`maxthreads`)."""

    name = "filesystem"

    def __init__(self, parameters: FilesystemParameters) -> None:
        self.root = os.path.abspath(parameters.rootdirectory)
        os.makedirs(self.root, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=parameters.maxthreads, thread_name_prefix="fs")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path[1:])

    def local_path(self, path: str) -> str | None:
        return self._full(path)

    async def get_content(self, path: str) -> bytes:
        full = self._full(path)

        def read() -> bytes:
            try:
                with open(full, "rb") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise PathNotFound(path) from None

        return await self.run(read)

    async def put_content(self, path: str, content: bytes) -> None:
        full = self._full(path)

        def write() -> None:
            directory = os.path.dirname(full)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{full}.{uuid.uuid4().hex}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, full)
            _fsync_dir(directory)

        await self.run(write)

    def is_temporary(self, name: str) -> bool:
        return _TEMPORARY.fullmatch(name) is not None

    def stage_content(self, path: str, content: bytes) -> StagedContent:
        """Create and write the file on the calling thread: for a few KiB that takes less than a thread hop."""
        full = self._full(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = f"{full}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        staged = _StagedFile(fd, tmp, full)
        try:
            _write_all(fd, content)
        except BaseException:
            staged.discard()
            raise
        return staged

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        full = self._full(path)

        def open_at() -> int:
            try:
                fd = os.open(full, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None
            size = os.fstat(fd).st_size
            if offset < 0 or offset > size:
                os.close(fd)
                raise InvalidOffset(path, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            return fd

        return _Reader(self, await self.run(open_at))

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)

        def open_for_write() -> tuple[int, int]:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
            fd = os.open(full, flags, 0o644)
            return fd, os.fstat(fd).st_size

        fd, size = await self.run(open_for_write)
        return _Writer(self, full, fd, size)

    async def stat(self, path: str) -> FileInfo:
        full = self._full(path)
        try:
            st = await self.run(os.stat, full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        is_dir = S_ISDIR(st.st_mode)
        return FileInfo(
            path=path,
            size=0 if is_dir else st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
            is_dir=is_dir,
        )

    async def list(self, path: str) -> list[str]:
        full = self._full(path)

        def names() -> list[str]:
            try:
                return sorted(entry.name for entry in os.scandir(full))
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None

        prefix = "" if path == "/" else path
        return [f"{prefix}/{name}" for name in await self.run(names)]

    async def move(self, source: str, dest: str) -> None:
        src, dst = self._full(source), self._full(dest)

        def rename() -> None:
            directory = os.path.dirname(dst)
            os.makedirs(directory, exist_ok=True)
            try:
                os.replace(src, dst)
            except FileNotFoundError:
                if not os.path.exists(src):
                    raise PathNotFound(source) from None
                raise
            _fsync_dir(directory)

        await self.run(rename)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def remove() -> None:
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None

        await self.run(remove)

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        """Unlink in chunks, each on a thread of the pool (one hand-off per chunk, not per file), removing each
        file's directory too when that leaves it empty (a blob's directory holds only its data)."""
        failures: dict[str, Exception] = {}

        def unlink(chunk: Sequence[str]) -> None:
            for path in chunk:
                full = self._full(path)
                try:
                    os.unlink(full)
                except (FileNotFoundError, NotADirectoryError):
                    pass
                except OSError as exc:
                    failures[path] = exc
                    continue
                with contextlib.suppress(OSError):  # not empty, or gone: either is fine
                    os.rmdir(os.path.dirname(full))

        chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
        await asyncio.gather(*(self.run(unlink, chunk) for chunk in chunks))
        return failures

    async def walk_files(self, path: str) -> AsyncIterator[FileInfo]:
        """One directory walk on a thread for the whole tree below `path`."""
        full, prefix = self._full(path), "" if path == "/" else path

        def walk() -> list[FileInfo]:
            found: list[FileInfo] = []
            for directory, _, names in os.walk(full):
                relative = directory[len(full) :]
                for name in names:
                    try:
                        st = os.stat(os.path.join(directory, name))
                    except FileNotFoundError:
                        continue
                    modified = datetime.fromtimestamp(st.st_mtime, UTC)
                    found.append(FileInfo(f"{prefix}{relative}/{name}", st.st_size, modified, False))
            return found

        for info in await self.run(walk):
            yield info

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


factory.register("filesystem", FilesystemDriver, FilesystemParameters)
