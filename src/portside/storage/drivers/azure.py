"""The Azure Blob Storage driver, with Docker Distribution's `storage.azure` keys.

Appending writers stage blocks (`chunksize` each, the remainder of a request as a smaller block) with ids
that sort in order; the blob appears when the block list is committed. Uncommitted blocks belong to the blob
name, so any instance resumes an upload by reading the uncommitted block list. Listings include blobs that
so far only have uncommitted blocks, so upload purging finds orphans.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

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

MiB = 1024 * 1024
REDIRECT_SECONDS = 20 * 60
COPY_POLL = 0.1


def _block_id(index: int) -> str:
    return base64.b64encode(f"portside-{index:010d}".encode()).decode()


def _block_index(block_id: str) -> int:
    return int(base64.b64decode(block_id).decode().rsplit("-", 1)[1])


class _Reader(FileReader):
    def __init__(self, chunks: AsyncIterator[bytes] | None) -> None:
        self._chunks = chunks
        self._buffer = b""

    async def read(self, size: int) -> bytes:
        while len(self._buffer) < size and self._chunks is not None:
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                self._chunks = None
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    async def close(self) -> None:
        self._chunks = None
        self._buffer = b""


class _Writer(PartWriter):
    def __init__(self, driver: AzureDriver, blob: Any, staged: list[tuple[int, int]]) -> None:
        super().__init__(driver.chunksize, sum(size for _, size in staged))
        self._driver = driver
        self._blob = blob
        self._staged = staged  # (index, size) of uncommitted blocks, in order

    async def _store_part(self, data: bytes | bytearray) -> None:
        index = self._staged[-1][0] + 1 if self._staged else 0
        await self._blob.stage_block(block_id=_block_id(index), data=bytes(data), length=len(data))
        self._staged.append((index, len(data)))

    async def commit(self) -> None:
        from azure.storage.blob import BlobBlock

        if self._buffer:
            await self._store_part(self._buffer)
            self._buffer = bytearray()
        blocks = [BlobBlock(block_id=_block_id(index)) for index, _ in self._staged]
        await self._blob.commit_block_list(blocks)

    async def cancel(self) -> None:
        self._buffer = bytearray()
        await self._driver.discard(self._blob)

    async def close(self) -> None:
        if self._buffer:
            await self._store_part(self._buffer)
            self._buffer = bytearray()


class AzureParameters(DriverParameters):
    """Docker Distribution's `storage.azure` keys, plus `serviceurl` for other endpoints (Azurite, sovereign
    clouds) and `chunksize` (the block size of uploads)."""

    accountname: str
    accountkey: str
    container: str
    realm: str = "core.windows.net"
    serviceurl: str = ""
    rootdirectory: str = ""
    chunksize: int = Field(default=4 * MiB, ge=1 * MiB, le=4000 * MiB)


class AzureDriver(ObjectKeys, StorageDriver):
    name = "azure"

    def __init__(self, parameters: AzureParameters) -> None:
        self.accountname = parameters.accountname
        self.accountkey = parameters.accountkey
        self.container_name = parameters.container
        default_url = f"https://{parameters.accountname}.blob.{parameters.realm}"
        self.serviceurl = (parameters.serviceurl or default_url).rstrip("/")
        self.root = parameters.rootdirectory.strip("/")
        self.chunksize = parameters.chunksize
        self._service: Any = None
        self._container: Any = None

    async def connect(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob.aio import BlobServiceClient

        if self._service is not None:
            return
        credential = {"account_name": self.accountname, "account_key": self.accountkey}
        self._service = BlobServiceClient(self.serviceurl, credential=credential)
        self._container = self._service.get_container_client(self.container_name)
        with contextlib.suppress(ResourceExistsError):
            await self._container.create_container()

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = self._container = None

    @property
    def container(self) -> Any:
        if self._container is None:
            raise StorageError("the azure driver is not connected (call connect())")
        return self._container

    async def _properties(self, key: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await self.container.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None

    async def discard(self, blob: Any) -> None:
        """Drop a blob and its uncommitted blocks (committing an empty list discards them)."""
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            await blob.commit_block_list([])
        with contextlib.suppress(ResourceNotFoundError):
            await blob.delete_blob()

    async def get_content(self, path: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = await self.container.get_blob_client(self.key(path)).download_blob()
        except ResourceNotFoundError:
            raise PathNotFound(path) from None
        data: bytes = await downloader.readall()
        return data

    async def put_content(self, path: str, content: bytes) -> None:
        await self.container.get_blob_client(self.key(path)).upload_blob(content, overwrite=True)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        properties = await self._properties(self.key(path))
        if properties is None:
            raise PathNotFound(path)
        size = int(properties.size)
        if offset < 0 or offset > size:
            raise InvalidOffset(path, offset)
        if offset == size:
            return _Reader(None)
        downloader = await self.container.get_blob_client(self.key(path)).download_blob(offset=offset)
        return _Reader(downloader.chunks())

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.container.get_blob_client(self.key(path))
        if not append:
            await self.discard(blob)
            return _Writer(self, blob, [])
        try:
            committed, uncommitted = await blob.get_block_list("all")
        except ResourceNotFoundError:
            committed, uncommitted = [], []
        staged = sorted((_block_index(b.id), int(b.size)) for b in uncommitted)
        if staged or not committed:
            return _Writer(self, blob, staged)
        # Appending to a committed blob: stage its bytes again as the first blocks of the new content.
        writer = _Writer(self, blob, [])
        await writer.write(await self.get_content(path))
        return writer

    async def stat(self, path: str) -> FileInfo:
        if path != "/":
            properties = await self._properties(self.key(path))
            if properties is not None:
                return FileInfo(path, int(properties.size), properties.last_modified, False)
        latest: datetime | None = None
        listed = self.container.list_blobs(name_starts_with=self.dir_prefix(path), include=["uncommittedblobs"])
        async for blob in listed:
            modified = blob.last_modified or datetime.now(UTC)
            latest = modified if latest is None else max(latest, modified)
        if latest is None:
            if path == "/":
                return FileInfo(path, 0, datetime.now(UTC), True)
            raise PathNotFound(path)
        return FileInfo(path, 0, latest, True)

    async def list(self, path: str) -> list[str]:
        prefix = self.dir_prefix(path)
        children = set()
        walked = self.container.walk_blobs(name_starts_with=prefix, include=["uncommittedblobs"], delimiter="/")
        async for item in walked:
            children.add(self.path_of(item.name))
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def move(self, source: str, dest: str) -> None:
        src = self.container.get_blob_client(self.key(source))
        if await self._properties(self.key(source)) is None:
            raise PathNotFound(source)
        dst = self.container.get_blob_client(self.key(dest))
        copy = await dst.start_copy_from_url(self._sas_url(src))
        status = copy.get("copy_status")
        while status == "pending":
            await asyncio.sleep(COPY_POLL)
            status = (await dst.get_blob_properties()).copy.status
        if status != "success":
            raise StorageError(f"azure copy {source} -> {dest} ended {status}")
        await src.delete_blob()

    async def delete(self, path: str) -> None:
        key = self.key(path)
        deleted = False
        blob = self.container.get_blob_client(key)
        if await self._properties(key) is not None:
            await blob.delete_blob()
            deleted = True
        listed = self.container.list_blobs(name_starts_with=key, include=["uncommittedblobs"])
        names = [b.name async for b in listed if b.name == key or b.name.startswith(key + "/")]
        for name in names:
            await self.discard(self.container.get_blob_client(name))
            deleted = True
        if not deleted:
            raise PathNotFound(path)

    def _sas_url(self, blob: Any, write: bool = False, seconds: int = REDIRECT_SECONDS) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = generate_blob_sas(
            account_name=self.accountname,
            container_name=self.container_name,
            blob_name=blob.blob_name,
            account_key=self.accountkey,
            permission=BlobSasPermissions(read=True, write=write),
            expiry=datetime.now(UTC) + timedelta(seconds=seconds),
        )
        return f"{blob.url}?{sas}"

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return self._sas_url(self.container.get_blob_client(self.key(path)))


factory.register("azure", AzureDriver, AzureParameters)
