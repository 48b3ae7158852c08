"""A cached repository: the library's interfaces answered from the local store when it has the content, from
the upstream when it does not (storing what it fetches), and from the local store again, marked stale, when
the upstream cannot answer.

- A manifest by tag is revalidated with a HEAD upstream (which Docker Hub does not count as a pull): the cached
  copy is served when the tag still names it, the new manifest fetched and stored when it does not.
- A manifest by digest and a blob are served from the cache once fetched; a blob not cached is fetched once
  however many clients ask (proxy/flights.py), streamed to each as it arrives.
- Pushes and deletes are refused (`Unsupported`): the upstream is where content comes from.
- What is served is kept for the upstream's `ttl` after its last pull (`keep_until` in the metadata store);
  content not pulled that long is released and collected by garbage collection.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from portside.client import RemoteRepository
from portside.digest import CANONICAL, Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import Manifest, ManifestError
from portside.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    Unsupported,
    UpstreamError,
    UpstreamUnavailable,
)
from portside.registry.interfaces import BlobContent, ByteReader, ManifestContent, Page
from portside.registry.manifests import manifest_references, new_manifest
from portside.registry.repository import LocalRepository

if TYPE_CHECKING:
    from portside.proxy.flights import Flight
    from portside.proxy.namespace import ProxyNamespace, Upstream

log = logging.getLogger("portside.proxy")
Cached = TypeVar("Cached", ManifestContent, BlobContent)

OCTET_STREAM = "application/octet-stream"

STALE = '110 - "stale: the upstream registry could not be asked"'
FETCH_BLOCK = 1024 * 1024
UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamError)


def _refused(what: str) -> Unsupported:
    return Unsupported(f"this repository is a pull-through cache: {what} go to its upstream registry")


class ProxyManifestService:
    def __init__(self, repo: ProxyRepository) -> None:
        self._repo = repo
        self._local = repo.local.manifests
        self._remote = repo.remote.manifests

    async def _cached(self, reference: str, tag: bool) -> ManifestContent | None:
        try:
            return await (self._local.get_by_tag(reference) if tag else self._local.get(Digest(reference)))
        except (ManifestUnknown, NameUnknown):
            return None

    async def get_by_tag(self, tag: str) -> ManifestContent:
        repo = self._repo
        cached = await self._cached(tag, tag=True)
        try:  # with a copy to fall back on, the upstream is asked once: a stale answer now beats a late one
            current = await self._remote.head(tag, retries=0 if cached is not None else None)
            repo.upstream.answered()
        except UPSTREAM_FAILURES as exc:
            repo.failed(exc)
            if cached is None:
                repo.ns.metrics.proxy_request("manifest", "error")
                raise
            repo.ns.metrics.proxy_request("manifest", "stale")
            return dataclasses.replace(cached, warning=STALE)
        if cached is not None and cached.digest == current.digest:
            await repo.keep(cached.digest, manifest=True)
            repo.ns.metrics.proxy_request("manifest", "hit")
            return cached
        return await self._by_digest(current.digest, tag)

    async def get(self, digest: Digest) -> ManifestContent:
        return await self._by_digest(digest, None)

    async def _by_digest(self, digest: Digest, tag: str | None) -> ManifestContent:
        repo = self._repo
        cached = await self._cached(str(digest), tag=False)
        if cached is not None:
            if tag is not None:  # the tag now names a manifest cached by digest: move the cached tag to it
                await self._store(cached, tag)
            await repo.keep(digest, manifest=True)
            repo.ns.metrics.proxy_request("manifest", "hit")
            return repo.marked(cached)
        try:
            content = await self._remote.get(digest)
            repo.upstream.answered()
            await self._store(content, tag)
        except (DigestInvalid, ManifestInvalid) as exc:  # the upstream's fault, not this client's
            repo.ns.metrics.proxy_upstream_error("invalid")
            repo.ns.metrics.proxy_request("manifest", "error")
            raise UpstreamError(f"the upstream's manifest {digest}: {exc.message}", 502) from None
        except UPSTREAM_FAILURES as exc:
            repo.failed(exc)
            repo.ns.metrics.proxy_request("manifest", "error")
            raise
        repo.ns.metrics.proxy_request("manifest", "miss")
        return content

    async def _store(self, content: ManifestContent, tag: str | None) -> None:
        """Record a fetched manifest in the cache (its content comes when it is pulled)."""
        ns = self._repo.ns
        try:
            manifest = ns.local.schemas.parse(content.payload, content.media_type, content.digest.algorithm)
        except ManifestError as exc:
            raise ManifestInvalid(
                f"the upstream's manifest {content.digest} is not one Portside accepts: {exc}"
            ) from None
        blobs, children = manifest_references(manifest, ns.local.options, ns.local.schemas.media_types)
        new = new_manifest(manifest, blobs, children)
        until = self._repo.until()
        await ns.local.store.registry.put_manifest(self._repo.name, new, tag, cached_until=until)

    async def exists(self, digest: Digest) -> bool:
        return await self._local.exists(digest) or await self._remote.exists(digest)

    async def put(
        self, payload: bytes, content_type: str | None, tag: str | None = None, digest: Digest | None = None
    ) -> Manifest:
        raise _refused("pushes")

    async def delete(self, digest: Digest) -> None:
        raise _refused("deletes")


class ProxyBlobStore:
    def __init__(self, repo: ProxyRepository) -> None:
        self._repo = repo
        self._local = repo.local.blobs
        self._remote = repo.remote.blobs

    async def _cached(self, digest: Digest, method: str) -> BlobContent | None:
        try:
            return await self._local.open(digest, method)
        except (BlobUnknown, NameUnknown):
            pass
        # Another cached repository may hold the same bytes: link them here instead of fetching them again.
        for source in await self._repo.ns.local.repositories_with_blob(digest):
            if self._repo.ns.is_cache(source) and await self._local.mount(digest, source) is not None:
                return await self._local.open(digest, method)
        return None

    async def stat(self, digest: Digest) -> Descriptor:
        try:
            return await self._local.stat(digest)
        except (BlobUnknown, NameUnknown):
            return await self._remote.stat(digest)

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        repo = self._repo
        cached = await self._cached(digest, method)
        if cached is not None:
            await repo.keep(digest, manifest=False)
            repo.ns.metrics.proxy_request("blob", "hit")
            return repo.marked(cached)
        size = repo.ns.flights.in_flight(str(digest))
        try:  # a fetch in flight here already knows the size; otherwise the upstream is asked
            descriptor = (
                await self._remote.stat(digest)
                if size is None or method == "HEAD"
                else Descriptor(media_type=OCTET_STREAM, digest=digest, size=size)
            )
            repo.upstream.answered()
        except UPSTREAM_FAILURES as exc:
            repo.failed(exc)
            repo.ns.metrics.proxy_request("blob", "error")
            raise
        if method == "HEAD":
            return BlobContent(descriptor=descriptor, opener=self._no_body)

        async def fetch(flight: Flight) -> None:
            await self._fetch(flight, digest)

        async def stored() -> bool:
            return await self._cached(digest, "GET") is not None

        flight = await repo.ns.flights.join(str(digest), descriptor.size, fetch, stored)
        if flight is None:  # another fetch stored it just now
            repo.ns.metrics.proxy_request("blob", "hit")
            return await self._local.open(digest, method)
        repo.ns.metrics.proxy_request("blob", "miss")
        return BlobContent(descriptor=descriptor, opener=flight.reader)

    async def _no_body(self, offset: int) -> ByteReader:
        raise BlobUnknown("a HEAD has no body")

    async def _fetch(self, flight: Flight, digest: Digest) -> None:
        """Fetch the blob into the spool and the cache at once; it becomes the repository's only once its bytes
        hash to its digest."""
        repo = self._repo
        writer = await self._local.create(persist=False, algorithms=[digest.algorithm])
        try:
            async with await self._remote.reader(digest) as reader:
                while chunk := await reader.read(FETCH_BLOCK):
                    flight.append(chunk)
                    await writer.write(chunk)
                    repo.ns.metrics.proxy_upstream_bytes(len(chunk))
            if flight.written != flight.size:
                raise UpstreamUnavailable(
                    f"blob {digest}: the upstream sent {flight.written} of {flight.size} bytes", "failing"
                )
            await writer.commit(digest, flight.size)
            await repo.keep(digest, manifest=False)
            flight.finish()
        except BaseException:
            await writer.cancel()
            raise
        finally:
            await writer.close()

    async def get(self, digest: Digest) -> bytes:
        content = await self.open(digest)
        out = bytearray()
        async with await content.reader(0) as reader:
            while chunk := await reader.read(FETCH_BLOCK):
                out += chunk
        return bytes(out)

    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        raise _refused("pushes")

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> Any:
        raise _refused("pushes")

    async def resume(self, upload_id: str) -> Any:
        raise _refused("pushes")

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        raise _refused("pushes")

    async def delete(self, digest: Digest) -> None:
        raise _refused("deletes")


class ProxyTagService:
    def __init__(self, repo: ProxyRepository) -> None:
        self._repo = repo
        self._local = repo.local.tags
        self._remote = repo.remote.tags

    async def get(self, tag: str) -> Descriptor:
        content = await self._repo.manifests.get_by_tag(tag)
        return Descriptor(media_type=content.media_type, digest=content.digest, size=content.size)

    async def page(self, last: str | None = None, limit: int | None = None) -> Page:
        try:
            return await self._remote.page(last, limit)
        except UPSTREAM_FAILURES:
            return await self._local.page(last, limit)  # what the cache has seen

    async def lookup(self, digest: Digest) -> list[str]:
        return await self._local.lookup(digest)

    async def tag(self, tag: str, digest: Digest) -> None:
        raise _refused("pushes")

    async def untag(self, tag: str) -> None:
        raise _refused("deletes")


class ProxyRepository:
    def __init__(
        self, ns: ProxyNamespace, upstream: Upstream, local: LocalRepository, remote: RemoteRepository
    ) -> None:
        self.ns = ns
        self.upstream = upstream
        self.name = local.name
        self.local = local
        self.remote = remote
        self.blobs = ProxyBlobStore(self)
        self.manifests = ProxyManifestService(self)
        self.tags = ProxyTagService(self)

    def until(self) -> Any:
        return self.ns.keeper.until(self.upstream.ttl)

    async def keep(self, digest: Digest, manifest: bool) -> None:
        await self.ns.keeper.keep(self.name, digest, manifest, self.upstream.ttl)

    def failed(self, exc: UpstreamUnavailable | UpstreamError) -> None:
        self.upstream.failed()
        self.ns.metrics.proxy_upstream_error(getattr(exc, "status", None) or getattr(exc, "reason", "error"))

    def marked(self, content: Cached) -> Cached:
        """`content` from the cache, with the stale Warning while the upstream is failing."""
        return dataclasses.replace(content, warning=STALE) if self.upstream.failing else content

    async def exists(self) -> bool:
        return await self.local.exists() or await self.remote.exists()

    async def pulled(self, target: dict[str, Any]) -> None:
        await self.local.pulled(target)

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        try:
            return await self.remote.referrers(subject, artifact_type)
        except UPSTREAM_FAILURES:
            return await self.local.referrers(subject, artifact_type)
