"""The registry library's services as small interfaces, after Docker Distribution's root package.

The HTTP layer is written against these protocols only. `portside.registry`'s `Local*` classes implement them
over the metadata store and a storage driver; any other implementation (a pull-through cache, a read-only
view, a client of another registry) stands in for them without the HTTP layer changing. Blob services are
split by what a caller needs, as distribution splits them (`BlobStatter`, `BlobProvider`, `BlobIngester`,
`BlobDeleter`), and composed into `BlobStore`.

Every method raises the library's typed errors (`registry.errors`) for bad input or missing content.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from portside.digest import CANONICAL, Digest
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import Manifest
from portside.registry.events import EventSink
from portside.registry.options import RegistryOptions

# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Page:
    """One page of a listing in byte order, and whether more items follow it."""

    items: list[str]
    more: bool


@dataclass(frozen=True)
class ManifestContent:
    """A stored manifest: its bytes exactly as pushed, and how to name and serve them."""

    digest: Digest
    media_type: str
    payload: bytes
    warning: str | None = None
    """Set when what is served may be out of date (a cache whose upstream cannot be asked)."""

    @property
    def size(self) -> int:
        return len(self.payload)


class ByteReader(Protocol):
    """Sequential reads of a blob's bytes; b"" at the end. Close it, or use `async with`."""

    async def read(self, size: int) -> bytes: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass(frozen=True)
class BlobContent:
    """Where a blob's bytes can be had: a local file (so the server can sendfile it), a URL the client may
    fetch them from itself, or a reader."""

    descriptor: Descriptor
    opener: Callable[[int], Awaitable[ByteReader]]
    local_path: str | None = None
    redirect_url: str | None = None
    warning: str | None = None

    async def reader(self, offset: int = 0) -> ByteReader:
        """The bytes from `offset` on; BlobUnknown when they have gone missing from storage."""
        return await self.opener(offset)


# ---------------------------------------------------------------------------------------------- blobs


class BlobStatter(Protocol):
    async def stat(self, digest: Digest) -> Descriptor:
        """The blob's descriptor; BlobUnknown (or NameUnknown) when the repository does not hold it."""
        ...


class BlobProvider(Protocol):
    async def get(self, digest: Digest) -> bytes:
        """A whole (small) blob."""
        ...

    async def open(self, digest: Digest, method: str = "GET") -> BlobContent:
        """How to serve the blob to a client that asked with `method` (GET or HEAD)."""
        ...


class BlobWriter(Protocol):
    """One upload session's bytes. Always `close` it; `commit` or `cancel` ends the session."""

    @property
    def id(self) -> str: ...

    @property
    def size(self) -> int:
        """Bytes received so far, once opened."""
        ...

    async def open(self, algorithms: Iterable[str] = (CANONICAL,)) -> None:
        """Get ready to append, hashing with `algorithms` as well as the canonical one."""
        ...

    async def will_store(self) -> None:
        """Say that bytes are about to be stored (the session is active, and no longer empty)."""
        ...

    async def is_empty(self) -> bool: ...

    async def stored_size(self) -> int:
        """Bytes received so far, without opening the session for writing."""
        ...

    async def write(self, data: bytes | bytearray | memoryview) -> int: ...

    async def write_stream(self, chunks: AsyncIterable[bytes]) -> int:
        """Append everything from `chunks`; returns how many bytes."""
        ...

    async def commit(self, expected: Digest, size: int | None = None) -> Descriptor:
        """Verify the bytes against `expected` and make them the repository's blob (DigestInvalid otherwise)."""
        ...

    async def commit_content(self, content: bytes, expected: Digest, size: int | None = None) -> Descriptor:
        """Commit a whole blob sent in one piece into an empty session."""
        ...

    async def cancel(self) -> None: ...

    async def close(self) -> None: ...


class BlobIngester(Protocol):
    async def put(self, content: bytes, expected: Digest) -> Descriptor:
        """Store a whole blob received in one piece, verified against `expected`."""
        ...

    async def create(self, persist: bool = True, algorithms: Iterable[str] = (CANONICAL,)) -> BlobWriter:
        """Start an upload; `persist=False` for a single-request upload that needs no resumable session."""
        ...

    async def resume(self, upload_id: str) -> BlobWriter:
        """The upload session `upload_id` of this repository (BlobUploadUnknown when there is none)."""
        ...

    async def mount(self, digest: Digest, source: str | None) -> Descriptor | None:
        """Link a blob that `source` holds (any repository when None); None when none does."""
        ...


class BlobDeleter(Protocol):
    async def delete(self, digest: Digest) -> None:
        """Remove the blob from the repository (Unsupported when deletes are disabled)."""
        ...


class BlobStore(BlobStatter, BlobProvider, BlobIngester, BlobDeleter, Protocol):
    """A repository's blobs."""


# ---------------------------------------------------------------------------------------------- manifests and tags


class ManifestService(Protocol):
    async def exists(self, digest: Digest) -> bool: ...

    async def get(self, digest: Digest) -> ManifestContent: ...

    async def get_by_tag(self, tag: str) -> ManifestContent: ...

    async def put(
        self, payload: bytes, content_type: str | None, tag: str | None = None, digest: Digest | None = None
    ) -> Manifest:
        """Validate and store a manifest, pointing `tag` at it; a by-digest push must match `digest`."""
        ...

    async def delete(self, digest: Digest) -> None:
        """Delete the manifest and every tag on it."""
        ...


class TagService(Protocol):
    async def get(self, tag: str) -> Descriptor:
        """The descriptor of the manifest `tag` points at."""
        ...

    async def tag(self, tag: str, digest: Digest) -> None:
        """Point `tag` at a manifest the repository holds."""
        ...

    async def untag(self, tag: str) -> None: ...

    async def page(self, last: str | None = None, limit: int | None = None) -> Page:
        """Tags in byte order after `last`, at most `limit`."""
        ...

    async def lookup(self, digest: Digest) -> list[str]:
        """Every tag that points at `digest`."""
        ...


# ---------------------------------------------------------------------------------------------- the whole


class Repository(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def manifests(self) -> ManifestService: ...

    @property
    def tags(self) -> TagService: ...

    async def exists(self) -> bool: ...

    async def pulled(self, target: dict[str, Any]) -> None:
        """Tell the event sink that a manifest or blob was served."""
        ...

    async def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests of this repository whose `subject` is `subject` (empty, never an error, for none)."""
        ...


class Namespace(Protocol):
    """The whole registry: repositories by name, and the catalog."""

    @property
    def options(self) -> RegistryOptions: ...

    def repository(self, name: str, events: EventSink | None = None) -> Repository:
        """The repository `name` (which need not exist yet); NameInvalid when the name breaks the grammar."""
        ...

    def check_name(self, name: str) -> None: ...

    async def catalog(self, last: str | None = None, limit: int | None = None) -> Page: ...

    async def repositories_with_blob(self, digest: Digest, limit: int = 100) -> list[str]:
        """Repositories holding the blob, in byte order (to choose a mount source the caller may read)."""
        ...

    async def close(self) -> None: ...
