"""Blob uploads: a `BlobWriter` streams bytes into storage while hashing them, and commits against a digest.

Bytes are hashed as they arrive, in blocks, on worker threads (hashlib releases the GIL) while the event loop
keeps receiving; the hash and the storage write of a block run side by side and blocks stay in order.
The hash state lives in the process that received the bytes. Upload sessions are recorded in the metadata
store, so a session begun in one worker process continues in any other: when a process meets a session whose
hash state it does not hold (or holds for a different length), it re-reads the stored bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portside.digest import CANONICAL, Digest, new_hasher
from portside.manifest.descriptor import Descriptor
from portside.metadata.store import MetadataStore
from portside.registry.errors import DigestInvalid, SizeInvalid
from portside.registry.events import PUSH, EventSink, entries
from portside.storage.content import ContentStore
from portside.storage.driver import FileWriter, PathNotFound

log = logging.getLogger(__name__)
BLOB_MEDIA_TYPE = "application/octet-stream"
# Hashing this much takes a few microseconds, less than handing it to a thread and back.
INLINE_HASH_LIMIT = 64 * 1024
# A whole blob up to this size is hashed and written on the event loop, and its fsyncs are left to the
# metadata store's writer, which does them for every push waiting and then records them all in one
# transaction. Measured on the reference machine: at 64 KiB, hashing takes 46 us and writing adds 15 us to
# creating the file, together about one thread round trip (58 us); at 256 KiB it is four times that.
SMALL_BLOB_LIMIT = 64 * 1024


@dataclass
class HashState:
    offset: int
    hashers: dict[str, Any] = field(default_factory=dict)


class HashStateCache:
    """Per-process hash states of uploads in progress, least recently used dropped first."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, HashState] = OrderedDict()

    def take(self, upload_id: str) -> HashState | None:
        return self._states.pop(upload_id, None)

    def put(self, upload_id: str, state: HashState) -> None:
        self._states[upload_id] = state
        self._states.move_to_end(upload_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)


def _update(hashers: Iterable[Any], data: bytes | bytearray | memoryview) -> None:
    for hasher in hashers:
        hasher.update(data)


async def digest_of(content: bytes, algorithm: str) -> Digest:
    """The digest of content held in memory; hashed on a thread unless it is small."""
    if len(content) <= INLINE_HASH_LIMIT:
        return Digest.of(content, algorithm)
    return await asyncio.to_thread(Digest.of, content, algorithm)


class LocalBlobWriter:
    """One upload session's bytes. Use `LocalBlobStore.create`/`resume` to get one; always `close` it."""

    def __init__(
        self,
        *,
        repository: str,
        upload_id: str,
        started_at: datetime,
        content: ContentStore,
        store: MetadataStore,
        cache: HashStateCache,
        persisted: bool,
        block_size: int,
        has_data: bool = False,
        events: EventSink | None = None,
    ) -> None:
        self.repository = repository
        self.id = upload_id
        self.started_at = started_at
        self._content = content
        self._store = store
        self._cache = cache
        self._persisted = persisted
        self._has_data = has_data
        self._block_size = block_size
        self._events = events
        self._file: FileWriter | None = None
        self._state: HashState | None = HashState(0)
        self._done = False
        self._no_files = False

    @property
    def size(self) -> int:
        if self._file is not None:
            return self._file.size
        return self._state.offset if self._state is not None else 0

    async def open(self, algorithms: Iterable[str] = (CANONICAL,)) -> None:
        """Open the stored bytes for appending and bring the hash state up to their length.

        When neither this process's cache nor the stored bytes can give the state (object stores cannot read
        an upload in progress), the upload continues unhashed and is verified at commit by reading it back.
        """
        if self._file is None:
            self._file = await self._content.upload_writer(self.id)
            cached = self._cache.take(self.id)
            fresh = cached is None or cached.offset != self._file.size
            self._state = HashState(0) if fresh else cached
        if self._state is None:
            return
        if self._state.offset != self._file.size:
            self._state = HashState(0)
        missing = [a for a in dict.fromkeys([*algorithms, CANONICAL]) if a not in self._state.hashers]
        if not missing:
            return
        if self._file.size == 0:
            self._state.hashers.update({a: new_hasher(a) for a in missing})
            return
        try:
            await self._rehash(missing)
        except PathNotFound:
            self._state = None

    async def will_store(self) -> None:
        """Call before storing bytes into a session: marks it active for upload purging, and no longer empty."""
        if self._persisted:
            await self._store.uploads.mark_data(self.id)
            self._has_data = True

    async def is_empty(self) -> bool:
        """Whether the session holds no bytes yet (a whole blob may then be committed with `commit_content`)."""
        if self._file is not None:
            return self._file.size == 0
        if self._persisted and not self._has_data:
            self._no_files = True  # nothing was ever stored, so storage need not be asked
            return True
        try:
            return await self._content.upload_size(self.id) == 0
        except PathNotFound:
            self._no_files = True
            return True

    async def stored_size(self) -> int:
        """Bytes received so far (the driver's appending writer knows, whatever the backend)."""
        if self._file is not None:
            return self._file.size
        if self._persisted and not self._has_data:
            return 0
        file = await self._content.upload_writer(self.id)
        try:
            return file.size
        finally:
            await file.close()

    async def _hash_stored(self, algorithms: Iterable[str], length: int) -> dict[str, Any]:
        hashers = {algorithm: new_hasher(algorithm) for algorithm in algorithms}
        remaining = length
        async with await self._content.upload_reader(self.id) as reader:
            while remaining:
                block = await reader.read(min(self._block_size, remaining))
                if not block:
                    break
                await asyncio.to_thread(_update, hashers.values(), block)
                remaining -= len(block)
        if remaining:
            raise PathNotFound(f"upload {self.id}")
        return hashers

    async def _rehash(self, algorithms: Iterable[str]) -> None:
        """Hash the stored bytes again (another process received them, or another algorithm is wanted)."""
        assert self._file is not None
        assert self._state is not None
        self._state.hashers.update(await self._hash_stored(algorithms, self._file.size))
        self._state.offset = self._file.size

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append one block: hash it and store it at the same time."""
        await self.open()
        assert self._file is not None
        if not data:
            return 0
        if self._persisted and not self._has_data:
            await self.will_store()
        if self._state is None:
            return await self._file.write(data)
        if len(data) <= INLINE_HASH_LIMIT:
            _update(self._state.hashers.values(), data)
            written = await self._file.write(data)
            self._state.offset += written
            return written
        hashed = asyncio.to_thread(_update, list(self._state.hashers.values()), data)
        _, written = await asyncio.gather(hashed, self._file.write(data))
        self._state.offset += written
        return written

    async def write_stream(self, chunks: AsyncIterable[bytes]) -> int:
        """Append everything from `chunks`, in blocks, receiving the next block while the last is written."""
        total = 0
        pending: asyncio.Future[int] | None = None
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= self._block_size:
                    if pending is not None:
                        total += await pending
                    pending = asyncio.ensure_future(self.write(buffer))
                    buffer = bytearray()
            if pending is not None:
                total += await pending
                pending = None
            if buffer:
                total += await self.write(buffer)
        finally:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
        return total

    async def _verify(self, expected: Digest, actual: Digest, size: int | None, actual_size: int) -> None:
        """Cancel the session and raise when the bytes are not the blob the client named."""
        if actual == expected and (size is None or size == actual_size):
            return
        await self.cancel()
        if actual != expected:
            raise DigestInvalid(f"content digest {actual} does not match {expected}", {"digest": expected})
        raise SizeInvalid(f"content length {actual_size} does not match {size}")

    async def commit(self, expected: Digest, size: int | None = None) -> Descriptor:
        """Verify the bytes against `expected`, move them to the blob's place and link it to the repository.

        A mismatch cancels the upload: its bytes can never become that blob.
        """
        await self.open([expected.algorithm])
        assert self._file is not None
        actual_size = self._file.size
        if self._state is not None:
            hasher = self._state.hashers[expected.algorithm]
            await self._verify(expected, Digest(f"{expected.algorithm}:{hasher.hexdigest()}"), size, actual_size)
            await self._file.commit()
        else:  # no hash state: the bytes can only be read back once the store has them whole
            await self._file.commit()
            hasher = (await self._hash_stored([expected.algorithm], actual_size))[expected.algorithm]
            await self._verify(expected, Digest(f"{expected.algorithm}:{hasher.hexdigest()}"), size, actual_size)
        async with self._store.locks.hold([expected]):
            if not await self._blob_stored(expected, actual_size):
                await self._content.commit_upload(self.id, expected)
            return await self._finish(expected, actual_size)

    async def commit_content(self, content: bytes, expected: Digest, size: int | None = None) -> Descriptor:
        """Commit a whole blob that arrived in one piece into an empty session (see `is_empty`).

        The bytes go straight to the blob's place in one durable write, with no upload file: a small
        monolithic upload costs one storage operation instead of five. Up to `SMALL_BLOB_LIMIT`, where the
        driver can, the bytes are written here on the loop and made durable at their place by the metadata
        store's writer just before it records them (`place` cleans up after itself when it fails), so a push
        costs the loop one hand-off instead of two.
        """
        await self._verify(expected, await digest_of(content, expected.algorithm), size, len(content))
        async with self._store.locks.hold([expected]):
            before = None
            if not await self._blob_stored(expected, len(content)):
                staged = self._content.stage_blob(expected, content) if len(content) <= SMALL_BLOB_LIMIT else None
                if staged is None:
                    await self._content.put_blob(expected, content)
                else:
                    before = staged.place
            return await self._finish(expected, len(content), before)

    async def _blob_stored(self, digest: Digest, size: int) -> bool:
        """Whether the blob's bytes are stored already; asked under the digest's lock, so garbage collection
        cannot be removing them (a cache could be out of date). The metadata store's record is checked against
        storage with one stat: a database restored without its storage, or a changed root, records bytes that
        are not there, and the bytes just received are written again instead."""
        if await self._store.registry.blob(digest) is None:
            return False
        try:
            stored = (await self._content.blob_info(digest)).size
        except PathNotFound:
            stored = None
        if stored == size:
            return True
        held = "nothing" if stored is None else f"{stored} bytes"
        log.warning("blob %s is recorded but storage holds %s of it; storing it again", digest, held)
        return False

    async def _finish(self, expected: Digest, actual_size: int, before: Callable[[], None] | None = None) -> Descriptor:
        """Record the stored blob: link it to the repository and end the session (`before` first: the step
        that makes staged bytes durable at their place)."""
        target = {"mediaType": BLOB_MEDIA_TYPE, "digest": expected, "size": actual_size, "repository": self.repository}
        outbox = entries(self._events, PUSH, target)
        registry = self._store.registry
        if self._persisted:
            await registry.finish_upload(self.id, self.repository, expected, actual_size, outbox, before=before)
        else:
            await registry.link_blob(self.repository, expected, actual_size, outbox, before=before)
        self._done = True
        self._cache.drop(self.id)
        await self._remove_files()
        return Descriptor(media_type=BLOB_MEDIA_TYPE, digest=expected, size=actual_size)

    async def cancel(self) -> None:
        """Drop the session and its bytes."""
        self._done = True
        self._cache.drop(self.id)
        if self._file is not None:
            await self._file.cancel()
        if self._persisted:
            await self._store.uploads.delete(self.id)
        await self._remove_files()

    async def _remove_files(self) -> None:
        if self._file is None and (self._no_files or not self._persisted):
            return  # nothing was ever stored for this session
        await self._content.delete_upload(self.id)

    async def close(self) -> None:
        """Release the file; the session stays resumable (unless it was committed or cancelled)."""
        if self._file is not None:
            await self._file.close()
        if not self._done and self._state is not None:
            self._cache.put(self.id, self._state)
