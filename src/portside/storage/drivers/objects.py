"""What the object-store drivers (s3, gcs, azure) share: driver paths as object keys under a root prefix, and
writers that send an upload as parts of the driver's chunk size."""

from __future__ import annotations

from portside.storage.driver import FileWriter


class ObjectKeys:
    """Driver paths (already checked) as keys under `root` (no leading or trailing slash; empty for the bucket's
    top)."""

    root: str

    def key(self, path: str) -> str:
        relative = path[1:]
        return f"{self.root}/{relative}" if self.root else relative

    def dir_prefix(self, path: str) -> str:
        """The key prefix of everything below directory `path`."""
        parts = [p for p in (self.root, path.strip("/")) if p]
        return "/".join(parts) + "/" if parts else ""

    def path_of(self, key: str) -> str:
        relative = key[len(self.root) + 1 :] if self.root else key
        return "/" + relative.rstrip("/")


class PartWriter(FileWriter):
    """Buffers what is written and stores each full `chunksize` bytes as one part (`_store_part`), so a part is
    never smaller than the store's minimum except the last; memory holds at most one part and one write."""

    def __init__(self, chunksize: int, size: int, buffered: bytes = b"") -> None:
        self._chunksize = chunksize
        self._buffer = bytearray(buffered)
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    async def _store_part(self, data: bytes | bytearray) -> None:
        raise NotImplementedError

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= self._chunksize:
            part, self._buffer = self._buffer[: self._chunksize], self._buffer[self._chunksize :]
            await self._store_part(part)
        return len(data)
