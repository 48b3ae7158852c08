"""A repository over the metadata store and a storage driver: its blobs, manifests, tags and referrers."""

from __future__ import annotations

from typing import Any

from portside.digest import Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import SchemaRegistry
from portside.metadata.store import MetadataStore
from portside.registry.blobs import LocalBlobStore
from portside.registry.cache import BlobDescriptorCache
from portside.registry.events import PULL, EventSink, entries
from portside.registry.manifests import LocalManifestService
from portside.registry.options import RegistryOptions
from portside.registry.taglists import TagListCache
from portside.registry.tags import LocalTagService
from portside.registry.uploads import HashStateCache
from portside.storage.content import ContentStore


class LocalRepository:
    def __init__(
        self,
        name: str,
        content: ContentStore,
        store: MetadataStore,
        schemas: SchemaRegistry,
        options: RegistryOptions,
        hash_states: HashStateCache,
        events: EventSink | None = None,
        cache: BlobDescriptorCache | None = None,
        tag_lists: TagListCache | None = None,
    ) -> None:
        self.name = name
        self._store = store
        self._events = events
        self.blobs = LocalBlobStore(name, content, store, options, hash_states, events, cache)
        self.manifests = LocalManifestService(name, store, schemas, options, events)
        self.tags = LocalTagService(name, store, options, events, tag_lists)

    async def exists(self) -> bool:
        return await self._store.registry.repository_exists(self.name)

    async def pulled(self, target: dict[str, Any]) -> None:
        outbox = entries(self._events, PULL, {**target, "repository": self.name})
        if outbox:
            await self._store.outbox.add(outbox)

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        return [
            Descriptor(
                media_type=record.media_type,
                digest=Digest(record.digest),
                size=record.size,
                artifact_type=record.artifact_type,
                annotations=record.annotations,
            )
            for record in await self._store.registry.referrers(self.name, subject, artifact_type)
        ]
