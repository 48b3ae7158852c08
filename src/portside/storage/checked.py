"""Path checks for every driver in one place (distribution's `base.Base`): a driver behind `CheckedDriver`
only ever sees absolute, clean paths of safe characters, so no input can name anything outside its root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from portside.storage.driver import FileInfo, FileReader, FileWriter, StagedContent, check_dir_path, check_path
from portside.storage.wrapper import DriverWrapper


class CheckedDriver(DriverWrapper):
    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(check_path(path))

    async def put_content(self, path: str, content: bytes) -> None:
        await self.inner.put_content(check_path(path), content)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await self.inner.reader(check_path(path), offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return await self.inner.writer(check_path(path), append)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(check_dir_path(path))

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(check_dir_path(path))

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(check_path(source), check_path(dest))

    async def delete(self, path: str) -> None:
        await self.inner.delete(check_path(path))

    def stage_content(self, path: str, content: bytes) -> StagedContent | None:
        return self.inner.stage_content(check_path(path), content)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self.inner.redirect_url(check_path(path), method)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(check_path(path))

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in self.inner.walk(check_dir_path(path)):
            yield info

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        return await self.inner.delete_files([check_path(path) for path in paths])

    async def walk_files(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in self.inner.walk_files(check_dir_path(path)):
            yield info
