"""A repository's blobs: what is linked into it, how to read them, and how new ones arrive."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portside.digest import CANONICAL, Digest
from portside.manifest.descriptor import Descriptor
from portside.metadata.store import MetadataStore, utcnow
from portside.registry.cache import BlobDescriptorCache, NoCache
from portside.registry.errors import BlobUnknown, BlobUploadUnknown, NameUnknown, Unsupported
from portside.registry.events import DELETE, MOUNT, EventSink, entries
from portside.registry.options import RegistryOptions
from portside.registry.uploads import BLOB_MEDIA_TYPE, BlobWriter, HashStateCache
from portside.storage import paths
from portside.storage.driver import FileReader, StorageDriver


@dataclass(frozen=True)
class BlobContent:
    """Where a blob's bytes can be had: a local file (sendfile), a redirect URL, or a driver reader."""

    descriptor: Descriptor
    path: str
    local_path: str | None
    redirect_url: str | None
    driver: StorageDriver

    async def reader(self, offset: int = 0) -> FileReader:
        return await self.driver.reader(self.path, offset)


def _upload_id_valid(upload_id: str) -> bool:
    try:
        return str(uuid.UUID(upload_id)) == upload_id
    except ValueError:
        return False


class BlobStore:
    def __init__(
        self,
        repository: str,
        driver: StorageDriver,
        store: MetadataStore,
        options: RegistryOptions,
        hash_states: HashStateCache,
        events: EventSink | None = None,
        cache: BlobDescriptorCache | None = None,
    ) -> None:
        self.repository = repository
        self._driver = driver
        self._store = store
        self._options = options
        self._hash_states = hash_states
        self._events = events
        self._cache = cache or NoCache()

    def _target(self, digest: Digest, size: int, **extra: str) -> dict[str, Any]:
        return {"mediaType": BLOB_MEDIA_TYPE, "digest": digest, "size": size, "repository": self.repository, **extra}

    async def _unknown(self, digest: Digest) -> Exception:
        if not await self._store.repository_exists(self.repository):
            return NameUnknown(f"repository {self.repository} is not known", {"name": self.repository})
        return BlobUnknown(f"blob {digest} is not in {self.repository}", {"digest": digest})

    async def stat(self, digest: Digest) -> Descriptor:
        size = await self._cache.linked_size(self.repository, digest)
        if size is None:
            record = await self._store.blob_in_repository(self.repository, digest)
            if record is None:
                raise await self._unknown(digest)
            size = record.size
            await self._cache.remember_link(self.repository, digest, size)
        return Descriptor(media_type=BLOB_MEDIA_TYPE, digest=digest, size=size)

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        descriptor = await self.stat(digest)
        path = paths.blob_data(digest)
        return BlobContent(
            descriptor=descriptor,
            path=path,
            local_path=self._driver.local_path(path),
            redirect_url=await self._driver.redirect_url(path, method),
            driver=self._driver,
        )

    async def get(self, digest: Digest) -> bytes:
        """A whole (small) blob."""
        await self.stat(digest)
        return await self._driver.get_content(paths.blob_data(digest))

    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        """Store a whole blob received in one piece (a small monolithic upload), verified against `expected`."""
        writer = self._writer(str(uuid.uuid4()), utcnow(), persisted=False)
        return await writer.commit_content(content, expected)

    async def delete(self, digest: Digest) -> None:
        """Unlink the blob from this repository; its bytes stay for other repositories and garbage collection."""
        if not self._options.delete_enabled:
            raise Unsupported("blob deletion is disabled (storage.delete.enabled)")
        outbox = entries(self._events, DELETE, {"repository": self.repository, "digest": digest})
        if not await self._store.unlink_blob(self.repository, digest, outbox):
            raise await self._unknown(digest)
        await self._cache.forget_link(self.repository, digest)

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        """Link a blob another repository holds (any repository when `source` is None); None if none does."""
        if source is not None:
            record = await self._store.blob_in_repository(source, digest)
        else:
            record = await self._store.blob(digest)
            if record is not None and not await self._store.repositories_with_blob(digest, limit=1):
                record = None
        if record is None:
            return None
        target = self._target(digest, record.size)
        if source is not None:
            target["fromRepository"] = source
        await self._store.link_blob(self.repository, digest, record.size, entries(self._events, MOUNT, target))
        await self._cache.remember_link(self.repository, digest, record.size)
        return Descriptor(media_type=BLOB_MEDIA_TYPE, digest=digest, size=record.size)

    def _writer(self, upload_id: str, started_at: datetime, persisted: bool, has_data: bool = False) -> BlobWriter:
        return BlobWriter(
            repository=self.repository,
            upload_id=upload_id,
            started_at=started_at,
            driver=self._driver,
            store=self._store,
            cache=self._hash_states,
            persisted=persisted,
            has_data=has_data,
            block_size=self._options.upload_block_size,
            events=self._events,
            descriptors=self._cache,
        )

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> BlobWriter:
        """Start an upload. `persist=False` is for a single-request upload that needs no resumable session."""
        upload_id = str(uuid.uuid4())
        started_at = utcnow()
        if persist:
            started_at = (await self._store.create_upload(upload_id, self.repository)).started_at
        writer = self._writer(upload_id, started_at, persist)
        if not persist:
            await writer.open(algorithms)
        return writer

    async def resume(self, upload_id: str) -> BlobWriter:
        """The upload session `upload_id` of this repository; `open` it to append or commit."""
        record = await self._store.upload(upload_id) if _upload_id_valid(upload_id) else None
        if record is None or record.repository != self.repository:
            raise BlobUploadUnknown(f"upload {upload_id[:64]} is not known", {"uuid": upload_id[:64]})
        return self._writer(record.id, record.started_at, persisted=True, has_data=record.has_data)
