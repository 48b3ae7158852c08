"""What the registry holds, as people ask about it: repositories with sizes and last pushes, tags with their
manifests, a manifest's layers, config, platforms and referrers, storage totals.

`Inventory` is the protocol the management API and the web UI are written against; `LocalInventory` answers
it from the metadata store (one query per page) and, for a manifest's details, through the repository's own
services: the stored manifest and its config blob, parsed by `portside.manifest`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from portside.digest import Digest
from portside.manifest.config import CONFIG_MEDIA_TYPES, ConfigError, ImageConfig, parse_image_config
from portside.manifest.descriptor import Descriptor, Platform
from portside.manifest.schema import Manifest, ManifestError
from portside.metadata.inventory import RepositoryRow, TagRow
from portside.registry.errors import NameUnknown, RegistryError
from portside.registry.interfaces import Repository
from portside.registry.manifests import parse_manifest_reference
from portside.registry.namespace import LocalNamespace

TagSort = Literal["name", "published_at"]
CONFIG_LIMIT = 4 * 1024**2
"""Configs larger than this are not read for display."""
REFERRER_DEPTH = 4
REFERRER_NODES = 200
INDEX_CHILDREN = 64
"""An index's manifests read for its size; beyond, only their own bytes count."""

# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RepositoryInfo:
    name: str
    created_at: datetime
    tag_count: int
    manifest_count: int
    size: int
    """Bytes of the distinct blobs the repository links (tagged or not): what it holds in storage."""
    last_push: datetime | None
    """When a manifest was last pushed or a tag last moved."""


@dataclass(frozen=True)
class RepositoryPage:
    items: list[RepositoryInfo]
    more: bool


@dataclass(frozen=True)
class TagMarker:
    """Where a tag page starts: a tag name, with its publication time when sorting by it."""

    name: str
    published_at: datetime | None = None


@dataclass(frozen=True)
class TagQuery:
    limit: int = 100
    sort: TagSort = "name"
    descending: bool = False
    last: TagMarker | None = None
    before: TagMarker | None = None
    name_contains: str | None = None
    referrers: bool = False
    referrer_types: tuple[str, ...] = ()
    """With `referrers`: only these artifact types (all when empty)."""
    platforms: bool = False
    """Also read the (small, cached) config of each single-platform image for its platform."""


@dataclass(frozen=True)
class ReferrerInfo:
    digest: Digest
    media_type: str
    artifact_type: str | None
    size: int


@dataclass(frozen=True)
class TagInfo:
    name: str
    digest: Digest
    media_type: str
    artifact_type: str | None
    config_digest: Digest | None
    size: int
    """The manifest with everything it stands for (its blobs; an index's children and theirs), each blob once."""
    created_at: datetime
    updated_at: datetime | None
    """When the tag last moved to another manifest; None if it never did."""
    platforms: tuple[str, ...] = ()
    referrers: tuple[ReferrerInfo, ...] = ()

    @property
    def published_at(self) -> datetime:
        return self.updated_at or self.created_at


@dataclass(frozen=True)
class TagPage:
    items: list[TagInfo]
    more: bool
    """Tags follow the page (in the order asked for)."""
    previous: bool
    """Tags precede the page."""


@dataclass(frozen=True)
class StorageTotals:
    repositories: int
    tags: int
    manifests: int
    manifest_bytes: int
    blobs: int
    blob_bytes: int
    """Each blob once: what storage holds."""
    linked_bytes: int
    """Each blob once per repository linking it: what the repositories would hold without sharing."""
    uploads: int
    largest: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class PlatformEntry:
    """One manifest of an index."""

    descriptor: Descriptor

    @property
    def platform(self) -> str | None:
        return platform_name(self.descriptor.platform)


@dataclass(frozen=True)
class ReferrerNode:
    descriptor: Descriptor
    referrers: tuple[ReferrerGroup, ...] = ()


@dataclass(frozen=True)
class ReferrerGroup:
    artifact_type: str
    """The referrers' artifact type ("" for none)."""
    referrers: tuple[ReferrerNode, ...]


@dataclass(frozen=True)
class ManifestDetails:
    repository: str
    digest: Digest
    media_type: str
    size: int
    tags: list[str]
    manifest: Manifest | None
    """The parsed manifest; None if it no longer parses (stored before a rule it breaks)."""
    config: ImageConfig | None
    """The image config, for an image whose config is an image config and could be read."""
    referrers: tuple[ReferrerGroup, ...]
    total_size: int = 0
    """The manifest, its config and layers; an index with its manifests and theirs: each blob once."""

    @property
    def is_index(self) -> bool:
        return self.manifest is not None and self.manifest.is_index

    @property
    def platforms(self) -> list[PlatformEntry]:
        return [PlatformEntry(d) for d in self.manifest.manifests] if self.manifest is not None else []


def platform_name(platform: Platform | None) -> str | None:
    if platform is None:
        return None
    return "/".join(p for p in (platform.os, platform.architecture, platform.variant) if p)


# ---------------------------------------------------------------------------------------------- the protocol


class Inventory(Protocol):
    async def repositories(
        self, last: str | None = None, limit: int = 100, name_contains: str | None = None
    ) -> RepositoryPage:
        """Repositories in byte order after `last`; with `name_contains`, those whose name has it (any case)."""
        ...

    async def repository(self, name: str) -> RepositoryInfo:
        """NameUnknown when there is no such repository."""
        ...

    async def repositories_under(self, path: str, last: str | None = None, limit: int = 100) -> RepositoryPage:
        """`path` and the repositories below it that have at least one tag."""
        ...

    async def namespace_exists(self, path: str) -> bool:
        """Whether any repository shares the first component of `path`."""
        ...

    async def tagged_size(self, name: str, descendants: bool = False) -> int:
        """Bytes of the distinct blobs tagged manifests reach, directly or through a tagged index (GitLab's
        deduplicated size); with `descendants`, over `name` and every repository below it, each blob once."""
        ...

    async def tags(self, name: str, query: TagQuery) -> TagPage:
        """NameUnknown when there is no such repository."""
        ...

    async def manifest(self, name: str, reference: str) -> ManifestDetails:
        """A manifest by tag or digest with its config and referrers (ManifestUnknown, NameUnknown)."""
        ...

    async def totals(self, largest: int = 10) -> StorageTotals: ...


# ---------------------------------------------------------------------------------------------- the implementation


def _repository(row: RepositoryRow) -> RepositoryInfo:
    pushes = [t for t in (row.last_manifest_at, row.last_tag_at) if t is not None]
    return RepositoryInfo(
        name=row.name,
        created_at=row.created_at,
        tag_count=row.tag_count,
        manifest_count=row.manifest_count,
        size=row.size,
        last_push=max(pushes) if pushes else None,
    )


def _group(referrers: list[tuple[str, ReferrerNode]]) -> tuple[ReferrerGroup, ...]:
    groups: dict[str, list[ReferrerNode]] = {}
    for artifact_type, node in referrers:
        groups.setdefault(artifact_type, []).append(node)
    return tuple(ReferrerGroup(kind, tuple(nodes)) for kind, nodes in sorted(groups.items()))


class _Configs:
    """Image configs by digest: content-addressed, so a cached one is right forever."""

    def __init__(self, size: int = 2048) -> None:
        self._cache: OrderedDict[str, ImageConfig | None] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> tuple[bool, ImageConfig | None]:
        if digest in self._cache:
            self._cache.move_to_end(digest)
            return True, self._cache[digest]
        return False, None

    def put(self, digest: str, config: ImageConfig | None) -> None:
        self._cache[digest] = config
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)


class LocalInventory:
    def __init__(self, namespace: LocalNamespace) -> None:
        self._namespace = namespace
        self._store = namespace.store.inventory
        self._configs = _Configs()
        self._reads = asyncio.Semaphore(8)

    async def repositories(
        self, last: str | None = None, limit: int = 100, name_contains: str | None = None
    ) -> RepositoryPage:
        rows = await self._store.repositories(last, limit + 1, name_contains)
        return RepositoryPage([_repository(r) for r in rows[:limit]], len(rows) > limit)

    async def repository(self, name: str) -> RepositoryInfo:
        self._namespace.check_name(name)
        row = await self._store.repository(name)
        if row is None:
            raise NameUnknown(f"repository name not known to registry: {name}", {"name": name})
        return _repository(row)

    async def repositories_under(self, path: str, last: str | None = None, limit: int = 100) -> RepositoryPage:
        rows = await self._store.tagged_under(path, last, limit + 1)
        return RepositoryPage([_repository(r) for r in rows[:limit]], len(rows) > limit)

    async def namespace_exists(self, path: str) -> bool:
        return await self._store.any_under(path.split("/", 1)[0])

    async def tagged_size(self, name: str, descendants: bool = False) -> int:
        return await self._store.tagged_size(name, descendants)

    async def tags(self, name: str, query: TagQuery) -> TagPage:
        repo = self._namespace.repository(name)
        marker = query.last or query.before
        kind: Literal["last", "before"] | None = "last" if query.last else "before" if query.before else None
        found = await self._store.tags(
            name,
            query.limit,
            sort=query.sort,
            descending=query.descending,
            marker=kind,
            marker_name=marker.name if marker else "",
            marker_time=marker.published_at if marker else None,
            contains=query.name_contains,
        )
        if not found.rows and not await repo.exists():
            raise NameUnknown(f"repository name not known to registry: {name}", {"name": name})
        referrers: dict[str, list[ReferrerInfo]] = {}
        if query.referrers and found.rows:
            for ref in await self._store.referrers_of(name, [r.digest for r in found.rows]):
                if query.referrer_types and ref.artifact_type not in query.referrer_types:
                    continue
                info = ReferrerInfo(Digest(ref.digest), ref.media_type, ref.artifact_type, ref.size)
                referrers.setdefault(ref.subject, []).append(info)
        parsed = [self._parse(row) for row in found.rows]
        platforms = await self._platforms(repo, parsed) if query.platforms else {}
        items = []
        for row, manifest in zip(found.rows, parsed, strict=True):
            config = manifest.config if manifest is not None else None
            shown = platforms.get(row.digest)
            if manifest is not None and manifest.is_index:
                names = [platform_name(d.platform) for d in manifest.manifests]
                shown = tuple(dict.fromkeys(n for n in names if n and not n.startswith("unknown")))
            items.append(
                TagInfo(
                    name=row.name,
                    digest=Digest(row.digest),
                    media_type=row.media_type,
                    artifact_type=row.artifact_type,
                    config_digest=config.digest if config is not None else None,
                    size=row.size,
                    created_at=row.created_at,
                    updated_at=row.updated_at if row.updated_at != row.created_at else None,
                    platforms=shown or (),
                    referrers=tuple(referrers.get(row.digest, ())),
                )
            )
        if kind == "before":
            return TagPage(items, more=found.adjacent, previous=found.more)
        return TagPage(items, more=found.more, previous=found.adjacent)

    def _parse(self, row: TagRow) -> Manifest | None:
        if row.payload is None:
            return None
        try:
            return self._namespace.schemas.parse(row.payload, row.media_type)
        except ManifestError:
            return None

    async def _config(self, repo: Repository, descriptor: Descriptor) -> ImageConfig | None:
        if descriptor.media_type not in CONFIG_MEDIA_TYPES or descriptor.size > CONFIG_LIMIT:
            return None
        known, config = self._configs.get(descriptor.digest)
        if known:
            return config
        async with self._reads:
            try:
                config = parse_image_config(await repo.blobs.get(descriptor.digest))
            except (RegistryError, ConfigError):
                return None  # missing or unreadable: shown without, and asked again next time
        self._configs.put(descriptor.digest, config)
        return config

    async def _platforms(self, repo: Repository, parsed: list[Manifest | None]) -> dict[str, tuple[str, ...]]:
        images = [m for m in parsed if m is not None and not m.is_index and m.config is not None]
        configs = await asyncio.gather(*(self._config(repo, m.config) for m in images if m.config is not None))
        return {
            str(m.digest): (c.platform,) for m, c in zip(images, configs, strict=True) if c is not None and c.platform
        }

    async def manifest(self, name: str, reference: str) -> ManifestDetails:
        repo = self._namespace.repository(name)
        tag, digest = parse_manifest_reference(reference)
        content = await (repo.manifests.get(digest) if digest is not None else repo.manifests.get_by_tag(str(tag)))
        try:
            manifest: Manifest | None = self._namespace.schemas.parse(content.payload, content.media_type)
        except ManifestError:
            manifest = None
        config = None
        if manifest is not None and manifest.config is not None and not manifest.is_index:
            config = await self._config(repo, manifest.config)
        budget = [REFERRER_NODES]
        return ManifestDetails(
            total_size=await self._total_size(repo, content.size, manifest),
            repository=name,
            digest=content.digest,
            media_type=content.media_type,
            size=content.size,
            tags=await repo.tags.lookup(content.digest),
            manifest=manifest,
            config=config,
            referrers=await self._referrer_tree(repo, content.digest, REFERRER_DEPTH, budget),
        )

    async def _total_size(self, repo: Repository, size: int, manifest: Manifest | None) -> int:
        if manifest is None:
            return size
        blobs = {d.digest: d.size for d in (manifest.config, *manifest.layers) if d is not None}
        for child in manifest.manifests[:INDEX_CHILDREN]:
            size += child.size
            try:
                content = await repo.manifests.get(child.digest)
                parsed = self._namespace.schemas.parse(content.payload, content.media_type)
            except (RegistryError, ManifestError):
                continue  # a child the repository lacks (or a platform it was told to skip)
            blobs.update({d.digest: d.size for d in (parsed.config, *parsed.layers) if d is not None})
        return size + sum(blobs.values())

    async def _referrer_tree(
        self, repo: Repository, subject: Digest, depth: int, budget: list[int]
    ) -> tuple[ReferrerGroup, ...]:
        """Referrers grouped by artifact type, and theirs in turn (a signature of an SBOM), bounded in depth
        and in the number of manifests read."""
        if depth == 0 or budget[0] <= 0:
            return ()
        found = await repo.referrers(subject)
        nodes: list[tuple[str, ReferrerNode]] = []
        for descriptor in found[: budget[0]]:
            budget[0] -= 1
            below = await self._referrer_tree(repo, descriptor.digest, depth - 1, budget)
            nodes.append((descriptor.artifact_type or "", ReferrerNode(descriptor, below)))
        return _group(nodes)

    async def totals(self, largest: int = 10) -> StorageTotals:
        totals = await self._store.totals()
        return StorageTotals(
            repositories=totals.repositories,
            tags=totals.tags,
            manifests=totals.manifests,
            manifest_bytes=totals.manifest_bytes,
            blobs=totals.blobs,
            blob_bytes=totals.blob_bytes,
            linked_bytes=totals.linked_bytes,
            uploads=totals.uploads,
            largest=await self._store.largest(largest) if largest else [],
        )
