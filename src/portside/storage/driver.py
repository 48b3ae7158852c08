"""The storage driver interface: a small file-system-like API that knows nothing of images.

Modelled on Docker Distribution's `StorageDriver`. Paths are absolute, slash-separated and made only of
`[A-Za-z0-9._-]` components (never `.` or `..`), so no input can name anything outside the driver's root;
`storage.checked.CheckedDriver`, which the factory puts in front of every driver, enforces it.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Self

_PATH_RE: Final = re.compile(r"^(?:/[A-Za-z0-9._-]+)+\Z")


class StorageError(Exception):
    """A driver failure that is not the caller's fault (I/O error, service unavailable)."""


class DriverError(StorageError):
    """The service behind a driver failed; the message names the driver, the operation and the path."""

    def __init__(self, driver: str, message: str) -> None:
        super().__init__(f"{driver}: {message}")
        self.driver = driver


class PathNotFound(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class InvalidPath(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"invalid path: {path[:200]!r}")
        self.path = path


class InvalidOffset(StorageError):
    def __init__(self, path: str, offset: int) -> None:
        super().__init__(f"invalid offset {offset} for {path}")
        self.path = path
        self.offset = offset


def check_path(path: str) -> str:
    """Reject any path that is not absolute, clean and made of safe characters."""
    if not _PATH_RE.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath(path)
    return path


def check_dir_path(path: str) -> str:
    """Like `check_path`, but the root `/` is also a valid directory."""
    return path if path == "/" else check_path(path)


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modified: datetime
    is_dir: bool


class FileReader(ABC):
    """Sequential reads from an offset; close it (or use `async with`)."""

    @abstractmethod
    async def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class FileWriter(ABC):
    """An appending writer. `commit` makes the bytes durable; `cancel` removes them; `close` keeps them
    for a later writer opened with `append=True` (a resumed upload)."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the file, including those present before this writer was opened."""

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> int: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def cancel(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class StagedContent(ABC):
    """A small file's bytes written but not yet durable nor at their path (`StorageDriver.stage_content`).

    `place` is the blocking rest, for a thread: make the bytes durable and put them at their path, as
    atomically as `put_content` does. `discard` removes them when `place` did not run or failed.
    """

    @abstractmethod
    def place(self) -> None: ...

    @abstractmethod
    def discard(self) -> None: ...


class StorageDriver(ABC):
    """What Portside needs from a place that holds bytes."""

    name: str = "abstract"

    @abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole file; for small files only."""

    @abstractmethod
    async def put_content(self, path: str, content: bytes) -> None:
        """Replace the file atomically: readers see the old or the new content, never a mix."""

    @abstractmethod
    async def reader(self, path: str, offset: int = 0) -> FileReader: ...

    @abstractmethod
    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer at the end of the file; without `append` the file starts empty."""

    @abstractmethod
    async def stat(self, path: str) -> FileInfo: ...

    @abstractmethod
    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory, sorted."""

    @abstractmethod
    async def move(self, source: str, dest: str) -> None:
        """Rename, replacing `dest`; durable once it returns."""

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree."""

    def stage_content(self, path: str, content: bytes) -> StagedContent | None:
        """Write a small file's bytes now, on the calling thread (the event loop), where that costs less than
        handing them to a thread; the returned `StagedContent` does the blocking rest later, so that many
        files' can be done together. None when the driver cannot (use `put_content`)."""
        return None

    def is_temporary(self, name: str) -> bool:
        """Whether a file name is one of this driver's files on the way to their path (written, not yet
        renamed): what a crash at that moment leaves, for garbage collection's storage sweep to remove."""
        return False

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL the client may fetch the content from directly, or None to serve it through Portside."""
        return None

    def local_path(self, path: str) -> str | None:
        """A path on the local file system holding the bytes, so they can be sent with sendfile."""
        return None

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file and directory below `path`, depth first in lexical order."""
        for child in await self.list(path):
            info = await self.stat(child)
            yield info
            if info.is_dir:
                async for sub in self.walk(child):
                    yield sub

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        """Remove many files (one already gone counts as removed); the failures, by path. Drivers that can
        delete in batches (S3's DeleteObjects, one thread doing many unlinks) do so."""
        failures: dict[str, Exception] = {}
        limit = asyncio.Semaphore(32)

        async def remove(path: str) -> None:
            async with limit:
                try:
                    await self.delete(path)
                except PathNotFound:
                    pass
                except Exception as exc:
                    failures[path] = exc

        await asyncio.gather(*(remove(path) for path in paths))
        return failures

    async def walk_files(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file (not directory) below `path`, in no particular order, nothing for a missing `path`; what
        vanishes or is not yet a file (an upload in progress) while it walks is passed over. Drivers that can
        list a whole tree at once (a flat object listing, one directory walk) do so instead of a stat per file."""
        try:
            children = await self.list(path)
        except PathNotFound:
            return
        for child in children:
            try:
                info = await self.stat(child)
            except PathNotFound:
                continue
            if info.is_dir:
                async for found in self.walk_files(child):
                    yield found
            else:
                yield info

    async def connect(self) -> None:
        """Open clients and connection pools; called once, on the event loop that will use the driver."""
        return None

    async def close(self) -> None:
        """Release connections or threads the driver holds."""
        return None
