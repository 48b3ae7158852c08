"""A repository's blobs over the metadata store and a storage driver: what is linked into it, how to read
them, and how new ones arrive."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from portside.digest import CANONICAL, Digest
from portside.manifest.descriptor import Descriptor
from portside.metadata.records import utcnow
from portside.metadata.store import MetadataStore
from portside.registry.cache import BlobDescriptorCache, NoCache
from portside.registry.errors import BlobUnknown, BlobUploadUnknown, NameUnknown, Unsupported
from portside.registry.events import DELETE, MOUNT, EventSink, entries
from portside.registry.interfaces import BlobContent, ByteReader
from portside.registry.options import RegistryOptions
from portside.registry.uploads import BLOB_MEDIA_TYPE, HashStateCache, LocalBlobWriter
from portside.storage.content import ContentStore
from portside.storage.driver import PathNotFound


def _upload_id_valid(upload_id: str) -> bool:
    try:
        return str(uuid.UUID(upload_id)) == upload_id
    except ValueError:
        return False


def missing_bytes(digest: Digest) -> BlobUnknown:
    return BlobUnknown(f"blob {digest} is missing from storage", {"digest": digest})


class LocalBlobStore:
    def __init__(
        self,
        repository: str,
        content: ContentStore,
        store: MetadataStore,
        options: RegistryOptions,
        hash_states: HashStateCache,
        events: EventSink | None = None,
        cache: BlobDescriptorCache | None = None,
    ) -> None:
        self.repository = repository
        self._content = content
        self._store = store
        self._options = options
        self._hash_states = hash_states
        self._events = events
        self._cache = cache or NoCache()

    def _target(self, digest: Digest, size: int, **extra: str) -> dict[str, Any]:
        return {"mediaType": BLOB_MEDIA_TYPE, "digest": digest, "size": size, "repository": self.repository, **extra}

    async def _unknown(self, digest: Digest) -> Exception:
        if not await self._store.registry.repository_exists(self.repository):
            return NameUnknown(f"repository {self.repository} is not known", {"name": self.repository})
        return BlobUnknown(f"blob {digest} is not in {self.repository}", {"digest": digest})

    async def stat(self, digest: Digest) -> Descriptor:
        size = await self._cache.linked_size(self.repository, digest)
        if size is None:
            record = await self._store.registry.blob_in_repository(self.repository, digest)
            if record is None:
                raise await self._unknown(digest)
            size = record.size
            await self._cache.remember_link(self.repository, digest, size)
        return Descriptor(media_type=BLOB_MEDIA_TYPE, digest=digest, size=size)

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        descriptor = await self.stat(digest)
        if method == "HEAD" and not await self._store.registry.keep_link(self.repository, digest):
            # A client that checks a blob before pushing a manifest that needs it relies on the answer:
            # the link is kept for the review delay, or, if collection just took it, the answer is no.
            await self._cache.forget_link(self.repository, digest)
            raise await self._unknown(digest)

        async def opener(offset: int) -> ByteReader:
            try:
                return await self._content.blob_reader(digest, offset)
            except PathNotFound:
                raise missing_bytes(digest) from None

        return BlobContent(
            descriptor=descriptor,
            opener=opener,
            local_path=self._content.blob_local_path(digest),
            redirect_url=await self._content.blob_redirect_url(digest, method),
        )

    async def get(self, digest: Digest) -> bytes:
        await self.stat(digest)
        try:
            return await self._content.blob(digest)
        except PathNotFound:
            raise missing_bytes(digest) from None

    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        writer = self._writer(str(uuid.uuid4()), utcnow(), persisted=False)
        return await writer.commit_content(content, expected)

    async def delete(self, digest: Digest) -> None:
        """Unlink the blob from this repository; its bytes stay for other repositories and garbage collection."""
        if not self._options.delete_enabled:
            raise Unsupported("blob deletion is disabled (storage.delete.enabled)")
        outbox = entries(self._events, DELETE, {"repository": self.repository, "digest": digest})
        if not await self._store.registry.unlink_blob(self.repository, digest, outbox):
            raise await self._unknown(digest)
        await self._cache.forget_link(self.repository, digest)

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        registry = self._store.registry
        async with self._store.locks.hold([digest]):  # a collection cannot remove the bytes while we link them
            if source is not None:
                record = await registry.blob_in_repository(source, digest)
            else:
                record = await registry.blob(digest)
                if record is not None and not await registry.repositories_with_blob(digest, limit=1):
                    record = None
            if record is None:
                return None
            target = self._target(digest, record.size)
            if source is not None:
                target["fromRepository"] = source
            await registry.link_blob(self.repository, digest, record.size, entries(self._events, MOUNT, target))
        await self._cache.remember_link(self.repository, digest, record.size)
        return Descriptor(media_type=BLOB_MEDIA_TYPE, digest=digest, size=record.size)

    def _writer(self, upload_id: str, started_at: datetime, persisted: bool, has_data: bool = False) -> LocalBlobWriter:
        return LocalBlobWriter(
            repository=self.repository,
            upload_id=upload_id,
            started_at=started_at,
            content=self._content,
            store=self._store,
            cache=self._hash_states,
            persisted=persisted,
            has_data=has_data,
            block_size=self._options.upload_block_size,
            events=self._events,
        )

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> LocalBlobWriter:
        upload_id = str(uuid.uuid4())
        started_at = utcnow()
        if persist:
            started_at = (await self._store.uploads.create(upload_id, self.repository)).started_at
        writer = self._writer(upload_id, started_at, persist)
        if not persist:
            await writer.open(algorithms)
        return writer

    async def resume(self, upload_id: str) -> LocalBlobWriter:
        record = await self._store.uploads.get(upload_id) if _upload_id_valid(upload_id) else None
        if record is None or record.repository != self.repository:
            raise BlobUploadUnknown(f"upload {upload_id[:64]} is not known", {"uuid": upload_id[:64]})
        return self._writer(record.id, record.started_at, persisted=True, has_data=record.has_data)
