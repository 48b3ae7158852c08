"""A driver that hands every call to the driver it wraps; middlewares override what they change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from portside.storage.driver import FileInfo, FileReader, FileWriter, StagedContent, StorageDriver


class DriverWrapper(StorageDriver):
    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(path)

    async def put_content(self, path: str, content: bytes) -> None:
        await self.inner.put_content(path, content)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await self.inner.reader(path, offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return await self.inner.writer(path, append)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(path)

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(path)

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(source, dest)

    async def delete(self, path: str) -> None:
        await self.inner.delete(path)

    def is_temporary(self, name: str) -> bool:
        return self.inner.is_temporary(name)

    def stage_content(self, path: str, content: bytes) -> StagedContent | None:
        return self.inner.stage_content(path, content)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self.inner.redirect_url(path, method)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in self.inner.walk(path):
            yield info

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        return await self.inner.delete_files(paths)

    async def walk_files(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in self.inner.walk_files(path):
            yield info

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()
