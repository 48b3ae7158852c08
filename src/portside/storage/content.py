"""Blob and upload bytes in a driver, at Docker Distribution's paths (storage/paths.py).

The registry library asks for blobs by digest and for uploads by session id; this is the one place above the
drivers that turns those into paths, so nothing else knows the layout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from portside.digest import ALGORITHMS, Digest
from portside.storage import paths
from portside.storage.driver import (
    FileInfo,
    FileReader,
    FileWriter,
    PathNotFound,
    StagedContent,
    StorageDriver,
    StorageError,
)


class ContentStore:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    # ------------------------------------------------------------------ blobs

    async def blob(self, digest: Digest) -> bytes:
        """A whole (small) blob."""
        return await self.driver.get_content(paths.blob_data(digest))

    async def put_blob(self, digest: Digest, content: bytes) -> None:
        """Store a whole blob in one durable write."""
        await self.driver.put_content(paths.blob_data(digest), content)

    def stage_blob(self, digest: Digest, content: bytes) -> StagedContent | None:
        """Write a small blob's bytes now, its durable placing left for later (`StagedContent.place`); None
        when the driver cannot."""
        return self.driver.stage_content(paths.blob_data(digest), content)

    async def blob_reader(self, digest: Digest, offset: int = 0) -> FileReader:
        return await self.driver.reader(paths.blob_data(digest), offset)

    def blob_local_path(self, digest: Digest) -> str | None:
        """A local file holding the blob (for sendfile), when the driver has one."""
        return self.driver.local_path(paths.blob_data(digest))

    async def blob_redirect_url(self, digest: Digest, method: str = "GET") -> str | None:
        return await self.driver.redirect_url(paths.blob_data(digest), method)

    async def blob_info(self, digest: Digest) -> FileInfo:
        return await self.driver.stat(paths.blob_data(digest))

    async def delete_blobs(self, digests: Sequence[Digest]) -> dict[Digest, Exception]:
        """Remove many blobs' bytes at once (those already gone count as removed); the failures."""
        by_path = {paths.blob_data(digest): digest for digest in digests}
        failures = await self.driver.delete_files(list(by_path))
        return {by_path[path]: error for path, error in failures.items()}

    async def delete_blob(self, digest: Digest) -> bool:
        """Remove a blob's bytes (its directory goes with them); False when there were none."""
        try:
            await self.driver.delete(paths.blob_dir(digest))
        except PathNotFound:
            return False
        return True

    async def blobs(self, leftovers: list[FileInfo] | None = None) -> AsyncIterator[tuple[Digest, FileInfo]]:
        """Every stored blob with its data file's size and time, in digest order; memory holds one of the 256
        directories a digest's first two hex digits name (distribution's layout) at a time. A write's
        temporary file found beside a blob's `data` (what a crash between writing and renaming leaves) goes
        to `leftovers` when one is given: the same walk finds both."""
        for algorithm in ALGORITHMS:
            try:
                prefixes = await self.driver.list(f"{paths.BLOBS}/{algorithm}")
            except PathNotFound:
                continue
            for prefix in prefixes:
                found: list[tuple[Digest, FileInfo]] = []
                async for info in self.driver.walk_files(prefix):
                    parts = info.path.rsplit("/", 2)
                    if len(parts) != 3 or (digest := _digest_of(algorithm, parts[1])) is None:
                        continue
                    if parts[2] == "data":
                        found.append((digest, info))
                    elif leftovers is not None and self.driver.is_temporary(parts[2]):
                        leftovers.append(info)
                for item in sorted(found, key=lambda pair: pair[0]):
                    yield item

    async def delete_leftovers(self, files: Sequence[str]) -> dict[str, Exception]:
        """Remove temporary files `blobs` reported (those already gone count as removed); the failures."""
        return await self.driver.delete_files(list(files))

    # ------------------------------------------------------------------ the store itself

    async def probe(self, name: str) -> None:
        """Write, read back and delete a small file named `name`: the store is reachable and writable."""
        path = f"{paths.ROOT}/health/{name}"
        payload = os.urandom(16)
        await self.driver.put_content(path, payload)
        if await self.driver.get_content(path) != payload:
            raise StorageError(f"{self.driver.name}: read back different content from {path}")
        await self.driver.delete(path)

    # ------------------------------------------------------------------ uploads

    async def upload_writer(self, upload_id: str) -> FileWriter:
        """An appending writer at the end of the session's bytes (created empty when there are none)."""
        return await self.driver.writer(paths.upload_data(upload_id), append=True)

    async def upload_reader(self, upload_id: str) -> FileReader:
        return await self.driver.reader(paths.upload_data(upload_id))

    async def upload_size(self, upload_id: str) -> int:
        """Bytes stored in the session; PathNotFound when it has none."""
        return (await self.driver.stat(paths.upload_data(upload_id))).size

    async def commit_upload(self, upload_id: str, digest: Digest) -> None:
        """Move the session's (verified) bytes to the blob's place."""
        await self.driver.move(paths.upload_data(upload_id), paths.blob_data(digest))

    async def delete_upload(self, upload_id: str) -> None:
        """Remove whatever the session stored; nothing there is not an error."""
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_dir(upload_id))

    async def upload_ids(self) -> list[str]:
        """The session ids that have a directory in storage (for purging leftovers no session owns)."""
        try:
            directories = await self.driver.list(paths.UPLOADS)
        except PathNotFound:
            return []
        return [directory.rsplit("/", 1)[-1] for directory in directories]

    async def upload_changed(self, upload_id: str) -> datetime | None:
        """When the session's stored bytes last changed; None when it stored none."""
        try:
            return (await self.driver.stat(paths.upload_dir(upload_id))).modified
        except PathNotFound:
            return None


def _digest_of(algorithm: str, encoded: str) -> Digest | None:
    try:
        return Digest.parse(f"{algorithm}:{encoded}")
    except ValueError:
        return None
