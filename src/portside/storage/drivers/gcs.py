"""The Google Cloud Storage driver, with Docker Distribution's `storage.gcs` keys.

Appending writers store each `chunksize` of data (and the remainder of a request) as a part object next to the
target, `<key>.parts/<n>`; committing composes the parts into the target (32 at a time, as GCS allows) and
removes them. Parts are ordinary objects, so any instance resumes an upload by listing them, and upload
purging finds orphans. Moves are single-source compositions: server-side, whatever the size. The client
library is synchronous, so calls run on a bounded thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import Field

from portside.storage import factory
from portside.storage.driver import (
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from portside.storage.drivers.objects import ObjectKeys, PartWriter
from portside.storage.parameters import DriverParameters

T = TypeVar("T")
MiB = 1024 * 1024
PARTS = ".parts"
COMPOSE_LIMIT = 32
READ_BLOCK = 8 * MiB
REDIRECT_SECONDS = 20 * 60


class _Reader(FileReader):
    def __init__(self, driver: GCSDriver, key: str, offset: int, size: int) -> None:
        self._driver = driver
        self._key = key
        self._position = offset
        self._size = size

    async def read(self, size: int) -> bytes:
        if self._position >= self._size:
            return b""
        end = min(self._position + size, self._size) - 1
        blob = self._driver.bucket.blob(self._key)
        data: bytes = await self._driver.run(blob.download_as_bytes, start=self._position, end=end, checksum=None)
        self._position += len(data)
        return data

    async def close(self) -> None:
        self._position = self._size


class _Writer(PartWriter):
    def __init__(self, driver: GCSDriver, key: str, parts: list[tuple[int, int]]) -> None:
        super().__init__(driver.chunksize, sum(size for _, size in parts))
        self._driver = driver
        self._key = key
        self._parts = parts  # (index, size), in order

    def _part_key(self, index: int) -> str:
        return f"{self._key}{PARTS}/{index:010d}"

    async def _store_part(self, data: bytes | bytearray) -> None:
        index = self._parts[-1][0] + 1 if self._parts else 0
        blob = self._driver.bucket.blob(self._part_key(index))
        await self._driver.run(blob.upload_from_string, bytes(data), checksum="crc32c")
        self._parts.append((index, len(data)))

    async def commit(self) -> None:
        driver = self._driver
        if not self._parts:
            await driver.run(driver.bucket.blob(self._key).upload_from_string, bytes(self._buffer), checksum="crc32c")
            self._buffer = bytearray()
            return
        if self._buffer:
            await self._store_part(self._buffer)
            self._buffer = bytearray()
        sources = [self._part_key(index) for index, _ in self._parts]
        await driver.compose(sources, self._key)
        await driver.delete_prefix(self._key + PARTS + "/")

    async def cancel(self) -> None:
        self._buffer = bytearray()
        await self._driver.delete_prefix(self._key + PARTS + "/")
        await self._driver.delete_key(self._key)

    async def close(self) -> None:
        if self._buffer:
            await self._store_part(self._buffer)
            self._buffer = bytearray()


class GCSParameters(DriverParameters):
    """Docker Distribution's `storage.gcs` keys, plus `endpoint` for other endpoints (emulators)."""

    bucket: str
    keyfile: str = ""
    credentials: dict[str, Any] | None = None
    rootdirectory: str = ""
    chunksize: int = Field(default=5 * MiB, ge=256 * 1024)
    endpoint: str = ""
    maxthreads: int = Field(default=50, ge=1)


class GCSDriver(ObjectKeys, StorageDriver):
    name = "gcs"

    def __init__(self, parameters: GCSParameters) -> None:
        self.bucket_name = parameters.bucket
        self.keyfile = parameters.keyfile
        self.credentials = parameters.credentials
        self.root = parameters.rootdirectory.strip("/")
        self.chunksize = parameters.chunksize
        self.endpoint = parameters.endpoint
        self._pool = ThreadPoolExecutor(max_workers=parameters.maxthreads, thread_name_prefix="gcs")
        self._client: Any = None
        self._bucket: Any = None
        self._can_sign = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def connect(self) -> None:
        if self._client is not None:
            return
        from google.cloud import storage

        options = {"api_endpoint": self.endpoint} if self.endpoint else None
        if self.keyfile:
            client = storage.Client.from_service_account_json(self.keyfile, client_options=options)
            self._can_sign = True
        elif self.credentials:
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(self.credentials)  # type: ignore[no-untyped-call]
            client = storage.Client(project=creds.project_id, credentials=creds, client_options=options)
            self._can_sign = True
        elif self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
            client = storage.Client(project="portside", credentials=anonymous, client_options=options)
        else:
            client = storage.Client()
        self._client = client
        self._bucket = client.bucket(self.bucket_name)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            raise StorageError("the gcs driver is not connected (call connect())")
        return self._bucket

    async def _blob(self, key: str) -> Any | None:
        return await self.run(self.bucket.get_blob, key)

    async def delete_key(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            await self.run(self.bucket.delete_blob, key)

    async def delete_prefix(self, prefix: str) -> int:
        blobs = await self.run(lambda: list(self._client.list_blobs(self.bucket_name, prefix=prefix)))
        for blob in blobs:
            await self.delete_key(blob.name)
        return len(blobs)

    async def compose(self, sources: list[str], destination: str) -> None:
        """Compose `sources` into `destination`, in rounds of at most 32 components."""
        round_no = 0
        while len(sources) > COMPOSE_LIMIT:
            grouped = []
            for i in range(0, len(sources), COMPOSE_LIMIT):
                target = f"{destination}{PARTS}/compose-{round_no}-{i // COMPOSE_LIMIT:06d}"
                await self._compose_once(sources[i : i + COMPOSE_LIMIT], target)
                grouped.append(target)
            sources, round_no = grouped, round_no + 1
        await self._compose_once(sources, destination)

    async def _compose_once(self, sources: list[str], destination: str) -> None:
        target = self.bucket.blob(destination)
        await self.run(target.compose, [self.bucket.blob(name) for name in sources])

    async def get_content(self, path: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            data: bytes = await self.run(self.bucket.blob(self.key(path)).download_as_bytes, checksum=None)
            return data
        except NotFound:
            raise PathNotFound(path) from None

    async def put_content(self, path: str, content: bytes) -> None:
        await self.run(self.bucket.blob(self.key(path)).upload_from_string, content, checksum="crc32c")

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        blob = await self._blob(self.key(path))
        if blob is None:
            raise PathNotFound(path)
        if offset < 0 or offset > blob.size:
            raise InvalidOffset(path, offset)
        return _Reader(self, self.key(path), offset, int(blob.size))

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self.key(path)
        if not append:
            await self.delete_prefix(key + PARTS + "/")
            return _Writer(self, key, [])
        blobs = await self.run(lambda: list(self._client.list_blobs(self.bucket_name, prefix=key + PARTS + "/")))
        parts = sorted(
            (int(b.name.rsplit("/", 1)[1]), int(b.size)) for b in blobs if b.name.rsplit("/", 1)[1].isdigit()
        )
        if parts:
            return _Writer(self, key, parts)
        existing = await self._blob(key)
        writer = _Writer(self, key, [])
        if existing is not None:
            # Appending to a finished object: its bytes become the first part of the new content.
            await writer.write(await self.get_content(path))
        return writer

    async def stat(self, path: str) -> FileInfo:
        if path != "/":
            blob = await self._blob(self.key(path))
            if blob is not None:
                return FileInfo(path, int(blob.size), blob.updated or datetime.datetime.now(datetime.UTC), False)
        prefix = self.dir_prefix(path)
        blobs = await self.run(lambda: list(self._client.list_blobs(self.bucket_name, prefix=prefix, max_results=1000)))
        if not blobs:
            if path == "/":
                return FileInfo(path, 0, datetime.datetime.now(datetime.UTC), True)
            raise PathNotFound(path)
        return FileInfo(path, 0, max(b.updated for b in blobs), True)

    async def list(self, path: str) -> list[str]:
        prefix = self.dir_prefix(path)

        def names() -> tuple[list[str], set[str]]:
            iterator = self._client.list_blobs(self.bucket_name, prefix=prefix, delimiter="/")
            blobs = [b.name for b in iterator]
            return blobs, set(iterator.prefixes)

        blobs, prefixes = await self.run(names)
        children = {self.path_of(name) for name in blobs}
        for sub in prefixes:
            child = self.path_of(sub)
            # `<key>.parts/` holds an unfinished upload of `<key>`: it stands for that file.
            children.add(child[: -len(PARTS)] if child.endswith(PARTS) else child)
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def move(self, source: str, dest: str) -> None:
        src = self.key(source)
        if await self._blob(src) is None:
            raise PathNotFound(source)
        await self._compose_once([src], self.key(dest))
        await self.delete_key(src)

    async def delete(self, path: str) -> None:
        key = self.key(path)
        deleted = 0
        if await self._blob(key) is not None:
            await self.delete_key(key)
            deleted += 1
        deleted += await self.delete_prefix(key + "/")
        deleted += await self.delete_prefix(key + PARTS + "/")
        if not deleted:
            raise PathNotFound(path)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A V4 signed URL when the credentials can sign (a service account key); else None."""
        if not self._can_sign:
            return None
        blob = self.bucket.blob(self.key(path))
        url: str = await self.run(
            blob.generate_signed_url,
            version="v4",
            expiration=datetime.timedelta(seconds=REDIRECT_SECONDS),
            method=method,
        )
        return url


factory.register("gcs", GCSDriver, GCSParameters)
