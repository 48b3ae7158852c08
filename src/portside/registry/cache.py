"""The blob descriptor cache (`storage.cache.blobdescriptor`): answers "is this blob in that repository, and
how big is it" without asking the metadata store.

Only what stays true is cached where other processes cannot invalidate it: a stored blob's size never changes
(Portside removes no blob bytes; a garbage collector would have to clear these caches), so each worker may keep
sizes in memory; whether a repository links a blob changes when a blob is deleted through any worker or
instance, so those answers are cached only in Redis, which every process shares and where a delete
invalidates them (entries also expire, bounding a lookup that races a delete).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

LINK_TTL_SECONDS = 300


class BlobDescriptorCache(Protocol):
    async def linked_size(self, repository: str, digest: str) -> int | None: ...

    async def remember_link(self, repository: str, digest: str, size: int) -> None: ...

    async def forget_link(self, repository: str, digest: str) -> None: ...

    async def blob_size(self, digest: str) -> int | None: ...

    async def remember_blob(self, digest: str, size: int) -> None: ...

    async def close(self) -> None: ...


class NoCache:
    async def linked_size(self, repository: str, digest: str) -> int | None:
        return None

    async def remember_link(self, repository: str, digest: str, size: int) -> None:
        return None

    async def forget_link(self, repository: str, digest: str) -> None:
        return None

    async def blob_size(self, digest: str) -> int | None:
        return None

    async def remember_blob(self, digest: str, size: int) -> None:
        return None

    async def close(self) -> None:
        return None


class InMemoryCache(NoCache):
    """Blob sizes by digest, per worker, least recently used dropped first."""

    def __init__(self, capacity: int = 10000) -> None:
        self.capacity = capacity
        self._sizes: OrderedDict[str, int] = OrderedDict()

    async def blob_size(self, digest: str) -> int | None:
        size = self._sizes.get(digest)
        if size is not None:
            self._sizes.move_to_end(digest)
        return size

    async def remember_blob(self, digest: str, size: int) -> None:
        self._sizes[digest] = size
        self._sizes.move_to_end(digest)
        while len(self._sizes) > self.capacity:
            self._sizes.popitem(last=False)


class RedisCache(InMemoryCache):
    """Repository links in Redis (shared, invalidated on delete, expiring as a bound on races), blob sizes in
    memory and in Redis."""

    def __init__(self, client: Any, capacity: int = 10000, prefix: str = "portside") -> None:
        super().__init__(capacity)
        self._redis = client
        self._prefix = prefix

    def _link(self, repository: str, digest: str) -> str:
        return f"{self._prefix}:link:{repository}@{digest}"

    def _blob(self, digest: str) -> str:
        return f"{self._prefix}:blob:{digest}"

    async def linked_size(self, repository: str, digest: str) -> int | None:
        value = await self._redis.get(self._link(repository, digest))
        return int(value) if value is not None else None

    async def remember_link(self, repository: str, digest: str, size: int) -> None:
        await self._redis.set(self._link(repository, digest), size, ex=LINK_TTL_SECONDS)

    async def forget_link(self, repository: str, digest: str) -> None:
        await self._redis.delete(self._link(repository, digest))

    async def blob_size(self, digest: str) -> int | None:
        size = await super().blob_size(digest)
        if size is None:
            value = await self._redis.get(self._blob(digest))
            if value is not None:
                size = int(value)
                await super().remember_blob(digest, size)
        return size

    async def remember_blob(self, digest: str, size: int) -> None:
        await super().remember_blob(digest, size)
        await self._redis.set(self._blob(digest), size)

    async def close(self) -> None:
        await self._redis.aclose()
