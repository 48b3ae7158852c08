"""The namespace over the metadata store and a storage driver: the whole registry, from which repositories
are looked up and listed."""

from __future__ import annotations

from datetime import timedelta

from portside.digest import Digest
from portside.manifest.schema import SchemaRegistry, default_registry
from portside.metadata.store import MetadataStore
from portside.reference import ReferenceError, validate_repository_name
from portside.registry.cache import BlobDescriptorCache, NoCache
from portside.registry.errors import NameInvalid
from portside.registry.events import EventSink
from portside.registry.interfaces import Page
from portside.registry.maintenance import purge_uploads
from portside.registry.options import RegistryOptions
from portside.registry.repository import LocalRepository
from portside.registry.taglists import TagListCache
from portside.registry.uploads import HashStateCache
from portside.storage.content import ContentStore
from portside.storage.driver import StorageDriver


class LocalNamespace:
    def __init__(
        self,
        driver: StorageDriver,
        store: MetadataStore,
        options: RegistryOptions | None = None,
        schemas: SchemaRegistry | None = None,
        cache: BlobDescriptorCache | None = None,
    ) -> None:
        self.driver = driver
        self.content = ContentStore(driver)
        self.store = store
        self.options = options or RegistryOptions()
        self.schemas = schemas or default_registry()
        self.cache: BlobDescriptorCache = cache or NoCache()
        self.hash_states = HashStateCache()
        self.tag_lists = TagListCache()

    def repository(self, name: str, events: EventSink | None = None) -> LocalRepository:
        self.check_name(name)
        return LocalRepository(
            name,
            self.content,
            self.store,
            self.schemas,
            self.options,
            self.hash_states,
            events=events,
            cache=self.cache,
            tag_lists=self.tag_lists,
        )

    def check_name(self, name: str) -> None:
        """NameInvalid unless `name` follows the repository name grammar."""
        try:
            validate_repository_name(name)
        except ReferenceError as exc:
            raise NameInvalid(str(exc), {"name": name[:300]}) from None

    async def catalog(self, last: str | None = None, limit: int | None = None) -> Page:
        """Repository names in byte order after `last`: at most `limit`, never more than catalog.maxentries."""
        cap = self.options.catalog_max_entries
        limit = cap if limit is None else min(limit, cap)
        if limit == 0:
            return Page([], False)
        names = await self.store.registry.catalog(last, limit + 1)
        return Page(names[:limit], len(names) > limit)

    async def repositories_with_blob(self, digest: Digest, limit: int = 100) -> list[str]:
        return await self.store.registry.repositories_with_blob(digest, limit)

    async def purge_uploads(self, age: timedelta, dry_run: bool = False) -> list[str]:
        return await purge_uploads(self.content, self.store, age, dry_run)

    async def uploads_in_progress(self) -> int:
        return await self.store.uploads.count()

    async def close(self) -> None:
        await self.driver.close()
        await self.store.close()
        await self.cache.close()
