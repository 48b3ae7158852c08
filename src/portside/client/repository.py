"""A repository of another registry, behind the library's interfaces (registry/interfaces.py).

Reads are what a cache needs and what a tool wants: a blob's descriptor, its bytes as a stream from any offset,
a manifest by tag or digest (verified against its digest), a tag's target without fetching the manifest (a
HEAD, which Docker Hub does not count as a pull), tag pages. Writes push as a client would: a blob whole or in
chunks, a cross-repository mount, a manifest, deletes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp

from portside.client.errors import UpstreamError, UpstreamUnavailable
from portside.client.transport import error_for
from portside.digest import CANONICAL, Digest, DigestError
from portside.manifest import mediatypes as mt
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import Manifest, ManifestError, default_registry
from portside.registry.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
)
from portside.registry.interfaces import BlobContent, ByteReader, ManifestContent, Page

if TYPE_CHECKING:
    from portside.client.transport import RegistryClient

OCTET_STREAM = "application/octet-stream"
MANIFEST_TYPES = (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES)
MAX_MANIFEST = 4 * 1024 * 1024


def _digest(text: str | None, what: str) -> Digest:
    try:
        return Digest.parse(text or "")
    except DigestError:
        raise UpstreamError(f"{what}: the registry named no valid digest ({(text or '')[:100]!r})", 502) from None


@dataclass(frozen=True)
class ManifestHead:
    """What a manifest HEAD tells: enough to know whether a cached copy is still the tag's."""

    digest: Digest
    media_type: str
    size: int


class ResponseReader:
    """A response body as the library's `ByteReader`: released when closed."""

    def __init__(self, response: aiohttp.ClientResponse, stack: contextlib.AsyncExitStack, what: str) -> None:
        self._response = response
        self._stack = stack
        self._what = what

    async def read(self, size: int) -> bytes:
        try:
            return await self._response.content.read(size)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"{self._what}: the transfer broke off: {exc}", "unreachable") from None

    async def close(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class RemoteBlobStore:
    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self.repository = repository
        self._path = f"/v2/{quote(repository, safe='/')}/blobs"
        self._pull = f"repository:{repository}:pull"
        self._push = f"repository:{repository}:pull,push"

    async def stat(self, digest: Digest) -> Descriptor:
        async with self._client.request("HEAD", f"{self._path}/{digest}", scope=self._pull) as response:
            if response.status != 200:
                raise await error_for(response, f"blob {digest}", BlobUnknown)
            size = int(response.headers.get("Content-Length", "0"))
        return Descriptor(media_type=OCTET_STREAM, digest=digest, size=size)

    async def get(self, digest: Digest) -> bytes:
        async with self._client.request("GET", f"{self._path}/{digest}", scope=self._pull) as response:
            if response.status != 200:
                raise await error_for(response, f"blob {digest}", BlobUnknown)
            data = await response.read()
        if Digest.of(data, digest.algorithm) != digest:
            raise DigestInvalid(f"blob {digest}: the registry sent other bytes", {"digest": digest})
        return data

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        """The blob's bytes as a stream from any offset (each reader is one GET, ranged past 0)."""
        descriptor = await self.stat(digest)

        async def opener(offset: int) -> ByteReader:
            return await self.reader(digest, offset)

        return BlobContent(descriptor=descriptor, opener=opener)

    async def reader(self, digest: Digest, offset: int = 0) -> ResponseReader:
        """The blob's bytes from `offset` on, with one GET (no HEAD first: for a caller that knows the blob)."""
        stack = contextlib.AsyncExitStack()
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        path = f"{self._path}/{digest}"
        response = await stack.enter_async_context(self._client.request("GET", path, scope=self._pull, headers=headers))
        if response.status not in (200, 206) or (offset and response.status != 206):
            error = await error_for(response, f"blob {digest}", BlobUnknown) if response.status >= 400 else None
            await stack.aclose()
            raise error or UpstreamError(f"blob {digest}: the registry ignored the range", 502)
        return ResponseReader(response, stack, f"blob {digest}")

    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        writer = await self.create()
        return await writer.commit_content(content, expected)

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> RemoteBlobWriter:
        async with self._client.request("POST", f"{self._path}/uploads/", scope=self._push, retried=False) as response:
            if response.status != 202:
                raise await error_for(response, "upload start", NameUnknown)
            location = response.headers.get("Location", "")
            upload_id = response.headers.get("Docker-Upload-UUID", "")
        return RemoteBlobWriter(self._client, self._push, self._absolute(location), upload_id)

    async def resume(self, upload_id: str) -> RemoteBlobWriter:
        writer = RemoteBlobWriter(
            self._client, self._push, f"{self._client.url}{self._path}/uploads/{upload_id}", upload_id
        )
        writer._size = await writer.stored_size()
        return writer

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        params = {"mount": str(digest)} | ({"from": source} if source else {})
        scope = self._push + (f" repository:{source}:pull" if source else "")
        async with self._client.request(
            "POST", f"{self._path}/uploads/", scope=scope, params=params, retried=False
        ) as response:
            if response.status == 201:
                return await self.stat(digest)
            if response.status != 202:
                raise await error_for(response, f"mount of {digest}", NameUnknown)
            location = self._absolute(response.headers.get("Location", ""))
        await RemoteBlobWriter(self._client, self._push, location, "").cancel()  # a session was opened instead
        return None

    async def delete(self, digest: Digest) -> None:
        async with self._client.request(
            "DELETE", f"{self._path}/{digest}", scope=f"repository:{self.repository}:delete", retried=False
        ) as response:
            if response.status != 202:
                raise await error_for(response, f"delete of blob {digest}", BlobUnknown)

    def _absolute(self, location: str) -> str:
        if location.startswith("/"):
            return self._client.url + location
        return location


class RemoteBlobWriter:
    """An upload session in the other registry: chunks sent as PATCH, the end as PUT."""

    def __init__(self, client: RegistryClient, scope: str, location: str, upload_id: str) -> None:
        self._client = client
        self._scope = scope
        self._location = location
        self.id = upload_id or urlsplit(location).path.rsplit("/", 1)[-1]
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def _at(self, extra: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """The session's URL and its query (the registry may carry state in it), with `extra` added."""
        parts = urlsplit(self._location)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return f"{parts.scheme}://{parts.netloc}{parts.path}", {**query, **(extra or {})}

    def _moved(self, response: aiohttp.ClientResponse) -> None:
        location = response.headers.get("Location")
        if location:
            self._location = self._client.url + location if location.startswith("/") else location

    async def open(self, algorithms: Iterable[str] = (CANONICAL,)) -> None:
        return None

    async def will_store(self) -> None:
        return None

    async def is_empty(self) -> bool:
        return await self.stored_size() == 0

    async def stored_size(self) -> int:
        url, params = self._at()
        async with self._client.request("GET", url, scope=self._scope, params=params) as response:
            if response.status != 204:
                raise await error_for(response, "upload status", BlobUploadUnknown)
            end = response.headers.get("Range", "0-0").rsplit("-", 1)[-1]
            stored = int(end) + 1 if end.isdigit() and end != "0" else 0
            self._moved(response)
        return stored

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        if not chunk:
            return 0
        url, params = self._at()
        headers = {"Content-Type": OCTET_STREAM, "Content-Range": f"{self._size}-{self._size + len(chunk) - 1}"}
        async with self._client.request(
            "PATCH", url, scope=self._scope, params=params, headers=headers, data=chunk, retried=False
        ) as response:
            if response.status != 202:
                raise await error_for(response, "upload chunk", BlobUploadUnknown)
            self._moved(response)
        self._size += len(chunk)
        return len(chunk)

    async def write_stream(self, chunks: AsyncIterable[bytes]) -> int:
        total = 0
        async for chunk in chunks:
            total += await self.write(chunk)
        return total

    async def commit(self, expected: Digest, size: int | None = None) -> Descriptor:
        return await self._finish(expected, b"")

    async def commit_content(self, content: bytes, expected: Digest, size: int | None = None) -> Descriptor:
        return await self._finish(expected, content)

    async def _finish(self, expected: Digest, content: bytes) -> Descriptor:
        url, params = self._at({"digest": str(expected)})
        headers = {"Content-Type": OCTET_STREAM} if content else {}
        async with self._client.request(
            "PUT", url, scope=self._scope, params=params, headers=headers, data=content, retried=False
        ) as response:
            if response.status != 201:
                raise await error_for(response, f"upload of {expected}", BlobUploadUnknown)
        return Descriptor(media_type=OCTET_STREAM, digest=expected, size=self._size + len(content))

    async def cancel(self) -> None:
        url, params = self._at()
        async with self._client.request("DELETE", url, scope=self._scope, params=params, retried=False) as response:
            if response.status not in (204, 404):
                raise await error_for(response, "upload cancel", BlobUploadUnknown)

    async def close(self) -> None:
        return None


class RemoteManifestService:
    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self.repository = repository
        self._path = f"/v2/{quote(repository, safe='/')}/manifests"
        self._pull = f"repository:{repository}:pull"
        self._schemas = default_registry()

    async def head(self, reference: str, retries: int | None = None) -> ManifestHead:
        """What a tag or digest names now, without fetching the manifest."""
        async with self._client.request(
            "HEAD", f"{self._path}/{reference}", scope=self._pull, headers={"Accept": ACCEPT}, retries=retries
        ) as response:
            if response.status != 200:
                raise await error_for(response, f"manifest {reference}")
            digest = _digest(response.headers.get("Docker-Content-Digest"), f"manifest {reference}")
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
            size = int(response.headers.get("Content-Length", "0"))
        return ManifestHead(digest, media_type, size)

    async def exists(self, digest: Digest) -> bool:
        try:
            await self.head(str(digest))
        except ManifestUnknown:
            return False
        return True

    async def _fetch(self, reference: str) -> ManifestContent:
        async with self._client.request(
            "GET", f"{self._path}/{reference}", scope=self._pull, headers={"Accept": ACCEPT}
        ) as response:
            if response.status != 200:
                raise await error_for(response, f"manifest {reference}")
            if (response.content_length or 0) > MAX_MANIFEST:
                raise ManifestInvalid(f"manifest {reference} is larger than {MAX_MANIFEST} bytes")
            payload = await response.content.read(MAX_MANIFEST + 1)
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
            named = response.headers.get("Docker-Content-Digest")
        if len(payload) > MAX_MANIFEST:
            raise ManifestInvalid(f"manifest {reference} is larger than {MAX_MANIFEST} bytes")
        algorithm = reference.split(":", 1)[0] if ":" in reference else (named or CANONICAL).split(":", 1)[0]
        actual = Digest.of(payload, algorithm if algorithm in ("sha256", "sha512") else CANONICAL)
        expected = reference if ":" in reference else named
        if expected is not None and actual != expected:
            raise DigestInvalid(
                f"manifest {reference}: the bytes hash to {actual}, not {expected}", {"digest": expected}
            )
        return ManifestContent(digest=actual, media_type=media_type or self._media_type(payload), payload=payload)

    def _media_type(self, payload: bytes) -> str:
        try:
            return self._schemas.parse(payload, None).media_type
        except ManifestError:
            return OCTET_STREAM

    async def get(self, digest: Digest) -> ManifestContent:
        return await self._fetch(str(digest))

    async def get_by_tag(self, tag: str) -> ManifestContent:
        return await self._fetch(tag)

    async def put(
        self, payload: bytes, content_type: str | None, tag: str | None = None, digest: Digest | None = None
    ) -> Manifest:
        try:
            manifest = self._schemas.parse(payload, content_type, digest.algorithm if digest else CANONICAL)
        except ManifestError as exc:
            raise ManifestInvalid(str(exc)) from None
        reference = tag or str(digest or manifest.digest)
        headers = {"Content-Type": manifest.media_type}
        async with self._client.request(
            "PUT",
            f"{self._path}/{reference}",
            scope=f"repository:{self.repository}:pull,push",
            headers=headers,
            data=payload,
            retried=True,
        ) as response:
            if response.status != 201:
                raise await error_for(response, f"manifest push to {reference}")
        return manifest

    async def delete(self, digest: Digest) -> None:
        async with self._client.request(
            "DELETE", f"{self._path}/{digest}", scope=f"repository:{self.repository}:delete", retried=False
        ) as response:
            if response.status != 202:
                raise await error_for(response, f"delete of manifest {digest}")


class RemoteTagService:
    def __init__(self, client: RegistryClient, repository: str, manifests: RemoteManifestService) -> None:
        self._client = client
        self.repository = repository
        self._manifests = manifests
        self._pull = f"repository:{repository}:pull"

    async def get(self, tag: str) -> Descriptor:
        head = await self._manifests.head(tag)
        return Descriptor(media_type=head.media_type, digest=head.digest, size=head.size)

    async def tag(self, tag: str, digest: Digest) -> None:
        content = await self._manifests.get(digest)
        await self._manifests.put(content.payload, content.media_type, tag=tag)

    async def untag(self, tag: str) -> None:
        async with self._client.request(
            "DELETE",
            f"/v2/{quote(self.repository, safe='/')}/manifests/{tag}",
            scope=f"repository:{self.repository}:delete",
            retried=False,
        ) as response:
            if response.status != 202:
                raise await error_for(response, f"delete of tag {tag}")

    async def page(self, last: str | None = None, limit: int | None = None) -> Page:
        params = {k: v for k, v in (("last", last), ("n", None if limit is None else str(limit))) if v is not None}
        async with self._client.request(
            "GET", f"/v2/{quote(self.repository, safe='/')}/tags/list", scope=self._pull, params=params
        ) as response:
            if response.status != 200:
                raise await error_for(response, "tag list", NameUnknown)
            body: dict[str, Any] = await response.json(content_type=None)
            more = "next" in response.headers.get("Link", "")
        return Page([str(t) for t in body.get("tags") or []], more)

    async def all(self) -> AsyncIterator[str]:
        """Every tag, page after page."""
        last: str | None = None
        while True:
            page = await self.page(last, 1000)
            for tag in page.items:
                yield tag
            if not page.more or not page.items:
                return
            last = page.items[-1]

    async def lookup(self, digest: Digest) -> list[str]:
        """Tags that name `digest`: the registry has no query for it, so every tag is asked (a HEAD each)."""
        found = []
        async for tag in self.all():
            with contextlib.suppress(ManifestUnknown):
                if (await self._manifests.head(tag)).digest == digest:
                    found.append(tag)
        return found


class RemoteRepository:
    def __init__(self, client: RegistryClient, name: str) -> None:
        self.name = name
        self._client = client
        self.blobs = RemoteBlobStore(client, name)
        self.manifests = RemoteManifestService(client, name)
        self.tags = RemoteTagService(client, name, self.manifests)

    async def exists(self) -> bool:
        try:
            await self.tags.page(limit=1)
        except (NameUnknown, ManifestUnknown, BlobUnknown):
            return False
        except UpstreamError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def pulled(self, target: dict[str, Any]) -> None:
        return None  # the other registry tells its own listeners

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        params = {"artifactType": artifact_type} if artifact_type else None
        async with self._client.request(
            "GET",
            f"/v2/{quote(self.name, safe='/')}/referrers/{subject}",
            scope=f"repository:{self.name}:pull",
            params=params,
        ) as response:
            if response.status == 404:
                return []
            if response.status != 200:
                raise await error_for(response, f"referrers of {subject}")
            body: dict[str, Any] = await response.json(content_type=None)
        out = []
        for entry in body.get("manifests") or []:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                out.append(
                    Descriptor(
                        media_type=str(entry["mediaType"]),
                        digest=Digest.parse(entry["digest"]),
                        size=int(entry["size"]),
                        artifact_type=entry.get("artifactType"),
                        annotations=entry.get("annotations"),
                    )
                )
        return out
