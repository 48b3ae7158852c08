"""A driver that times every operation of the driver it wraps (for metrics); behaviour is unchanged."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from portside.storage.driver import FileInfo, FileReader, FileWriter, StorageDriver
from portside.storage.wrapper import DriverWrapper

T = TypeVar("T")
Observer = Callable[[str, str, float], None]


class InstrumentedDriver(DriverWrapper):
    def __init__(self, inner: StorageDriver, observe: Observer) -> None:
        super().__init__(inner)
        self._observe = observe

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._observe(self.name, operation, time.perf_counter() - started)

    async def get_content(self, path: str) -> bytes:
        return await self._timed("get_content", self.inner.get_content(path))

    async def put_content(self, path: str, content: bytes) -> None:
        await self._timed("put_content", self.inner.put_content(path, content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await self._timed("reader", self.inner.reader(path, offset))

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return _TimedWriter(await self._timed("writer", self.inner.writer(path, append)), self)

    async def stat(self, path: str) -> FileInfo:
        return await self._timed("stat", self.inner.stat(path))

    async def list(self, path: str) -> list[str]:
        return await self._timed("list", self.inner.list(path))

    async def move(self, source: str, dest: str) -> None:
        await self._timed("move", self.inner.move(source, dest))

    async def delete(self, path: str) -> None:
        await self._timed("delete", self.inner.delete(path))

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        return await self._timed("delete_files", self.inner.delete_files(paths))


class _TimedWriter(FileWriter):
    def __init__(self, inner: FileWriter, driver: InstrumentedDriver) -> None:
        self._inner = inner
        self._driver = driver

    @property
    def size(self) -> int:
        return self._inner.size

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        return await self._driver._timed("write", self._inner.write(data))

    async def commit(self) -> None:
        await self._driver._timed("commit", self._inner.commit())

    async def cancel(self) -> None:
        await self._driver._timed("cancel", self._inner.cancel())

    async def close(self) -> None:
        await self._inner.close()
