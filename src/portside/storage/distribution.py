"""Reading a Docker Distribution store's `repositories/` tree, through any storage driver, without writing.

Distribution keeps what a repository holds as small link files naming digests:

    /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link   a manifest of the repository
    /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link      what the tag points at
    /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link                a blob the repository may use
    /docker/registry/v2/repositories/<name>/_uploads/...                            uploads in progress (ignored)

A name may have several components; a directory is a repository when it holds `_manifests`, and may also hold
further repositories below it. Directories starting with `_` are never names. Deleting a link leaves its
directory behind on a file system, so a directory without its `link` is something deleted, not a link.

This module knows the layout and nothing of manifests: it yields names and digests and reads link and blob
bytes, through a wrapper that refuses every write. Listings run concurrently (object stores answer a
listing in tens of milliseconds) with a bounded number in flight, and the repository walk keeps only a
bounded look-ahead of listings, so memory depends on the largest directory, never on the whole store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NoReturn, TypeVar

from portside.digest import Digest
from portside.storage import paths
from portside.storage.driver import (
    FileWriter,
    InvalidPath,
    PathNotFound,
    StagedContent,
    StorageDriver,
    StorageError,
)
from portside.storage.wrapper import DriverWrapper

T = TypeVar("T")

REPOSITORIES: Final = f"{paths.ROOT}/repositories"
LINK_MAX: Final = 4096
"""A link holds one digest; anything longer is not a link."""


@dataclass(frozen=True)
class TagLink:
    """What `_manifests/tags/<tag>/current/link` says, and when it was last written."""

    tag: str
    target: str
    modified: datetime | None = None


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


class ReadOnly(DriverWrapper):
    """A driver that refuses every write: the tree belongs to a registry that may still be serving from it."""

    def _refuse(self, path: str) -> NoReturn:
        raise StorageError(f"refusing to write {path}: a distribution tree is only read")

    async def put_content(self, path: str, content: bytes) -> None:
        self._refuse(path)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        self._refuse(path)

    def stage_content(self, path: str, content: bytes) -> StagedContent | None:
        self._refuse(path)

    async def move(self, source: str, dest: str) -> None:
        self._refuse(dest)

    async def delete(self, path: str) -> None:
        self._refuse(path)


class DistributionTree:
    """Read-only access to distribution's repositories tree; `concurrency` bounds driver calls in flight."""

    def __init__(self, driver: StorageDriver, concurrency: int = 16, blob_size_cache: int = 100_000) -> None:
        self.driver: StorageDriver = ReadOnly(driver)
        self.concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._sizes_max = blob_size_cache

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            return await make()

    async def _list(self, path: str) -> list[str]:
        """Children of a directory; none for a missing directory, a file, or a name no driver path can have
        (such a directory can hold no repository Portside could name)."""
        try:
            return await self._call(lambda: self.driver.list(path))
        except (PathNotFound, InvalidPath):
            return []

    @staticmethod
    def repository_path(name: str) -> str:
        return f"{REPOSITORIES}/{name}"

    async def present(self) -> bool:
        """Whether the storage holds a distribution repositories tree."""
        try:
            info = await self.driver.stat(REPOSITORIES)
        except PathNotFound:
            return False
        return info.is_dir

    async def is_repository(self, name: str) -> bool:
        return f"{self.repository_path(name)}/_manifests" in await self._list(self.repository_path(name))

    # ------------------------------------------------------------------ finding repositories

    async def repositories(self) -> AsyncIterator[str]:
        """Every repository name, in lexical order of its path components."""
        async for name in self._walk("", await self._list(REPOSITORIES)):
            yield name

    async def _walk(self, prefix: str, children: list[str]) -> AsyncIterator[str]:
        names = [_base(child) for child in children]
        if prefix and "_manifests" in names:
            yield prefix
        subdirectories = [child for child, name in zip(children, names, strict=True) if not name.startswith("_")]
        # The next few directories are listed while this one's first is walked; each level keeps at most
        # `concurrency` listings ahead, and the semaphore bounds the requests actually in flight.
        ahead: deque[tuple[str, asyncio.Task[list[str]]]] = deque()
        upcoming = iter(subdirectories)
        try:
            while True:
                while len(ahead) < self.concurrency:
                    child = next(upcoming, None)
                    if child is None:
                        break
                    ahead.append((child, asyncio.ensure_future(self._list(child))))
                if not ahead:
                    return
                child, listing = ahead.popleft()
                name = f"{prefix}/{_base(child)}" if prefix else _base(child)
                async for found in self._walk(name, await listing):
                    yield found
        finally:
            for _, task in ahead:
                task.cancel()
            for _, task in ahead:
                with contextlib.suppress(BaseException):
                    await task

    # ------------------------------------------------------------------ what a repository holds

    async def _digests(self, directory: str) -> list[str]:
        """`<alg>:<hex>` for every `<alg>/<hex>` directory below `directory` (not validated)."""
        algorithms = await self._list(directory)
        listings = await asyncio.gather(*(self._list(a) for a in algorithms))
        return [
            f"{_base(alg)}:{_base(entry)}"
            for alg, entries in zip(algorithms, listings, strict=True)
            for entry in entries
        ]

    async def revisions(self, name: str) -> list[str]:
        """Digests of the repository's manifest revisions, as their directories name them."""
        return await self._digests(f"{self.repository_path(name)}/_manifests/revisions")

    async def layers(self, name: str) -> list[str]:
        """Digests of the blobs linked into the repository, as their directories name them."""
        return await self._digests(f"{self.repository_path(name)}/_layers")

    async def tags(self, name: str) -> list[str]:
        return [_base(path) for path in await self._list(f"{self.repository_path(name)}/_manifests/tags")]

    async def _link(self, path: str) -> str | None:
        """A link's content, stripped; None when there is no link file (deleted, or never finished)."""
        try:
            data = await self._call(lambda: self.driver.get_content(path))
        except PathNotFound:
            return None
        return data[:LINK_MAX].decode("utf-8", "replace").strip()

    async def revision_link(self, name: str, digest: Digest) -> str | None:
        path = f"{self.repository_path(name)}/_manifests/revisions/{digest.algorithm}/{digest.encoded}/link"
        return await self._link(path)

    async def layer_link(self, name: str, digest: Digest) -> str | None:
        path = f"{self.repository_path(name)}/_layers/{digest.algorithm}/{digest.encoded}/link"
        return await self._link(path)

    async def tag_link(self, name: str, tag: str, with_time: bool = False) -> TagLink | None:
        """The tag's current link (None when the tag has none); `with_time` also asks when it was written."""
        path = f"{self.repository_path(name)}/_manifests/tags/{tag}/current/link"
        if not with_time:
            target = await self._link(path)
            return None if target is None else TagLink(tag, target)
        try:
            info = await self._call(lambda: self.driver.stat(path))
        except PathNotFound:
            return None
        target = await self._link(path)
        return None if target is None else TagLink(tag, target, info.modified)

    # ------------------------------------------------------------------ blobs

    async def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob's data, None when it has none; remembered, since layers are shared widely."""
        size = self._sizes.get(digest)
        if size is not None:
            self._sizes.move_to_end(digest)
            return size
        try:
            info = await self._call(lambda: self.driver.stat(paths.blob_data(digest)))
        except PathNotFound:
            return None
        if info.is_dir:
            return None
        self._sizes[digest] = info.size
        if len(self._sizes) > self._sizes_max:
            self._sizes.popitem(last=False)
        return info.size

    async def read_blob(self, digest: Digest, limit: int) -> bytes | int | None:
        """The blob's bytes when it has at most `limit`; its size when larger; None when it has no data."""
        path = paths.blob_data(digest)
        try:
            info = await self._call(lambda: self.driver.stat(path))
            if info.is_dir:
                return None
            if info.size > limit:
                return info.size
            return await self._call(lambda: self.driver.get_content(path))
        except PathNotFound:
            return None
