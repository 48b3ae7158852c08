"""A repository: its blobs, manifests, tags and referrers."""

from __future__ import annotations

from typing import Any

from portside.digest import Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import SchemaRegistry
from portside.metadata.store import MetadataStore
from portside.registry.blobs import BlobStore
from portside.registry.cache import BlobDescriptorCache
from portside.registry.events import PULL, EventSink, entries
from portside.registry.manifests import ManifestService
from portside.registry.options import RegistryOptions
from portside.registry.taglists import TagListCache
from portside.registry.tags import TagService
from portside.registry.uploads import HashStateCache
from portside.storage.driver import StorageDriver


class Repository:
    def __init__(
        self,
        name: str,
        driver: StorageDriver,
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
        self.blobs = BlobStore(name, driver, store, options, hash_states, events, cache)
        self.manifests = ManifestService(name, store, schemas, options, events)
        self.tags = TagService(name, store, options, events, tag_lists)

    async def exists(self) -> bool:
        return await self._store.repository_exists(self.name)

    async def pulled(self, target: dict[str, Any]) -> None:
        """Record a pull (a manifest or blob served) for the notification endpoints that want it."""
        outbox = entries(self._events, PULL, {**target, "repository": self.name})
        if outbox:
            await self._store.add_events(outbox)

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """Descriptors of the manifests in this repository whose `subject` is `subject` (an empty list for
        an unknown repository: the referrers API never answers 'not found')."""
        return [
            Descriptor(
                media_type=record.media_type,
                digest=Digest(record.digest),
                size=record.size,
                artifact_type=record.artifact_type,
                annotations=record.annotations,
            )
            for record in await self._store.referrers(self.name, subject, artifact_type)
        ]
