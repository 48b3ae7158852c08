"""The in-memory driver: for tests and throwaway registries; content lives and dies with one process."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from portside.storage import factory
from portside.storage.driver import (
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    StorageDriver,
)
from portside.storage.parameters import DriverParameters


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _File:
    data: bytearray = field(default_factory=bytearray)
    modified: datetime = field(default_factory=_now)


class _Reader(FileReader):
    def __init__(self, data: bytes, offset: int) -> None:
        self._view = memoryview(data)[offset:]

    async def read(self, size: int) -> bytes:
        chunk, self._view = self._view[:size], self._view[size:]
        return bytes(chunk)

    async def close(self) -> None:
        self._view = memoryview(b"")


class _Writer(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, file: _File) -> None:
        self._driver = driver
        self._path = path
        self._file = file

    @property
    def size(self) -> int:
        return len(self._file.data)

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.data += data
        self._file.modified = _now()
        return len(data)

    async def commit(self) -> None:
        return None

    async def cancel(self) -> None:
        if self._driver.files.get(self._path) is self._file:
            del self._driver.files[self._path]

    async def close(self) -> None:
        return None


class InMemoryParameters(DriverParameters):
    """`storage.inmemory` has no keys."""


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self, parameters: InMemoryParameters | None = None) -> None:
        self.files: dict[str, _File] = {}

    def _children(self, path: str) -> list[str]:
        prefix = "/" if path == "/" else path + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self.files if p.startswith(prefix)}
        return sorted(prefix + name for name in names)

    def _is_dir(self, path: str) -> bool:
        prefix = "/" if path == "/" else path + "/"
        return any(p.startswith(prefix) for p in self.files)

    def _get(self, path: str) -> _File:
        file = self.files.get(path)
        if file is None:
            raise PathNotFound(path)
        return file

    async def get_content(self, path: str) -> bytes:
        return bytes(self._get(path).data)

    async def put_content(self, path: str, content: bytes) -> None:
        self.files[path] = _File(bytearray(content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        file = self._get(path)
        if offset < 0 or offset > len(file.data):
            raise InvalidOffset(path, offset)
        return _Reader(bytes(file.data), offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        file = self.files.get(path) if append else None
        if file is None:
            file = self.files[path] = _File()
        return _Writer(self, path, file)

    async def stat(self, path: str) -> FileInfo:
        file = self.files.get(path)
        if file is not None:
            return FileInfo(path=path, size=len(file.data), modified=file.modified, is_dir=False)
        if path == "/" or self._is_dir(path):
            return FileInfo(path=path, size=0, modified=_now(), is_dir=True)
        raise PathNotFound(path)

    async def list(self, path: str) -> list[str]:
        if path != "/" and not self._is_dir(path):
            raise PathNotFound(path)
        return self._children(path)

    async def move(self, source: str, dest: str) -> None:
        file = self._get(source)
        del self.files[source]
        self.files[dest] = file

    async def delete(self, path: str) -> None:
        prefix = path + "/"
        doomed = [p for p in self.files if p == path or p.startswith(prefix)]
        if not doomed:
            raise PathNotFound(path)
        for p in doomed:
            del self.files[p]


factory.register("inmemory", InMemoryDriver, InMemoryParameters)
