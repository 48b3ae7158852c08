"""A repository that serves its reads and refuses its writes: what a cache's namespace gives for names no
upstream takes when local repositories are not allowed beside the cached ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portside.digest import CANONICAL, Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import Manifest
from portside.registry.errors import Unsupported
from portside.registry.interfaces import BlobContent, ManifestContent, Page, Repository


def _refused() -> Unsupported:
    return Unsupported("this registry is a pull-through cache: this repository is not one of its upstreams'")


class _ReadOnlyBlobs:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def stat(self, digest: Digest) -> Descriptor:
        return await self._inner.stat(digest)  # type: ignore[no-any-return]

    async def get(self, digest: Digest) -> bytes:
        return await self._inner.get(digest)  # type: ignore[no-any-return]

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        return await self._inner.open(digest, method)  # type: ignore[no-any-return]

    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        raise _refused()

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> Any:
        raise _refused()

    async def resume(self, upload_id: str) -> Any:
        raise _refused()

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        raise _refused()

    async def delete(self, digest: Digest) -> None:
        raise _refused()


class _ReadOnlyManifests:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def exists(self, digest: Digest) -> bool:
        return await self._inner.exists(digest)  # type: ignore[no-any-return]

    async def get(self, digest: Digest) -> ManifestContent:
        return await self._inner.get(digest)  # type: ignore[no-any-return]

    async def get_by_tag(self, tag: str) -> ManifestContent:
        return await self._inner.get_by_tag(tag)  # type: ignore[no-any-return]

    async def put(
        self, payload: bytes, content_type: str | None, tag: str | None = None, digest: Digest | None = None
    ) -> Manifest:
        raise _refused()

    async def delete(self, digest: Digest) -> None:
        raise _refused()


class _ReadOnlyTags:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def get(self, tag: str) -> Descriptor:
        return await self._inner.get(tag)  # type: ignore[no-any-return]

    async def page(self, last: str | None = None, limit: int | None = None) -> Page:
        return await self._inner.page(last, limit)  # type: ignore[no-any-return]

    async def lookup(self, digest: Digest) -> list[str]:
        return await self._inner.lookup(digest)  # type: ignore[no-any-return]

    async def tag(self, tag: str, digest: Digest) -> None:
        raise _refused()

    async def untag(self, tag: str) -> None:
        raise _refused()


class ReadOnlyRepository:
    def __init__(self, inner: Repository) -> None:
        self._inner = inner
        self.name = inner.name
        self.blobs = _ReadOnlyBlobs(inner.blobs)
        self.manifests = _ReadOnlyManifests(inner.manifests)
        self.tags = _ReadOnlyTags(inner.tags)

    async def exists(self) -> bool:
        return await self._inner.exists()

    async def pulled(self, target: dict[str, Any]) -> None:
        await self._inner.pulled(target)

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        return await self._inner.referrers(subject, artifact_type)
