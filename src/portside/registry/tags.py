"""A repository's tags: names pointing at manifests."""

from __future__ import annotations

import bisect

from portside.digest import Digest
from portside.manifest.descriptor import Descriptor
from portside.metadata.store import MetadataStore
from portside.reference import ReferenceError, validate_tag
from portside.registry.errors import ManifestUnknown, NameUnknown, TagInvalid, Unsupported
from portside.registry.events import DELETE, EventSink, entries
from portside.registry.interfaces import Page
from portside.registry.options import RegistryOptions
from portside.registry.taglists import TagListCache

# Larger pages are the whole list; the bound keeps page sizes inside a 64-bit SQL LIMIT.
MAX_PAGE = 2**62


class LocalTagService:
    def __init__(
        self,
        repository: str,
        store: MetadataStore,
        options: RegistryOptions,
        events: EventSink | None = None,
        lists: TagListCache | None = None,
    ) -> None:
        self.repository = repository
        self._store = store
        self._options = options
        self._events = events
        self._lists = lists or TagListCache(max_names=0)

    async def _require_repository(self) -> None:
        if not await self._store.registry.repository_exists(self.repository):
            raise NameUnknown(f"repository {self.repository} is not known", {"name": self.repository})

    async def get(self, tag: str) -> Descriptor:
        record = await self._store.registry.manifest_by_tag(self.repository, tag)
        if record is None:
            await self._require_repository()
            raise ManifestUnknown(f"tag {tag} is not in {self.repository}", {"tag": tag})
        return Descriptor(media_type=record.media_type, digest=Digest(record.digest), size=record.size)

    async def tag(self, tag: str, digest: Digest) -> None:
        """Point `tag` at a manifest already in the repository."""
        try:
            validate_tag(tag)
        except ReferenceError as exc:
            raise TagInvalid(str(exc)) from None
        if not await self._store.registry.set_tag(self.repository, tag, digest):
            await self._require_repository()
            raise ManifestUnknown(f"manifest {digest} is not in {self.repository}", {"digest": digest})

    async def untag(self, tag: str) -> None:
        if not self._options.delete_enabled:
            raise Unsupported("tag deletion is disabled (storage.delete.enabled)")
        outbox = entries(self._events, DELETE, {"repository": self.repository, "tag": tag})
        if not await self._store.registry.delete_tag(self.repository, tag, outbox):
            await self._require_repository()
            raise ManifestUnknown(f"tag {tag} is not in {self.repository}", {"tag": tag})

    async def page(self, last: str | None = None, limit: int | None = None) -> Page:
        """Tags in byte order after `last`, at most `limit`; NameUnknown for a repository that does not exist."""
        version = await self._store.registry.tags_version(self.repository)
        if version is None:
            raise NameUnknown(f"repository {self.repository} is not known", {"name": self.repository})
        names = self._lists.get(self.repository, version)
        if names is None:
            names = await self._store.registry.tags(self.repository)
            self._lists.put(self.repository, version, names)
        # Code point order (Python's) is UTF-8 byte order, the order the store sorts by.
        start = bisect.bisect_right(names, last) if last is not None else 0
        end = len(names) if limit is None else min(len(names), start + min(limit, MAX_PAGE))
        return Page(names[start:end], end < len(names))

    async def lookup(self, digest: Digest) -> list[str]:
        """Every tag that points at `digest`."""
        return await self._store.registry.tags_of(self.repository, digest)
