"""A repository: its blobs, manifests, tags and referrers."""

from __future__ import annotations

from portside.digest import Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import SchemaRegistry
from portside.metadata.store import MetadataStore
from portside.registry.blobs import BlobStore
from portside.registry.manifests import ManifestService
from portside.registry.options import RegistryOptions
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
    ) -> None:
        self.name = name
        self._store = store
        self.blobs = BlobStore(name, driver, store, options, hash_states)
        self.manifests = ManifestService(name, store, schemas, options)
        self.tags = TagService(name, store, options)

    async def exists(self) -> bool:
        return await self._store.repository_exists(self.name)

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
