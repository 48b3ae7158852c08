"""The blob descriptor cache (`storage.cache.blobdescriptor`): answers "is this blob in that repository, and
how big is it" without asking the metadata store.

Whether a repository links a blob changes when a blob is deleted or collected through any worker or instance,
so those answers are cached only in Redis, which every process shares and where a delete or a collection
invalidates them (entries also expire, bounding a lookup that races a delete). `inmemory` keeps nothing: a
worker's own memory could not be told of another's deletes, and whether a blob's bytes are stored is always
asked of the metadata store, under the digest's lock.
"""

from __future__ import annotations

from typing import Any, Protocol

LINK_TTL_SECONDS = 300


class BlobDescriptorCache(Protocol):
    async def linked_size(self, repository: str, digest: str) -> int | None: ...

    async def remember_link(self, repository: str, digest: str, size: int) -> None: ...

    async def forget_link(self, repository: str, digest: str) -> None: ...

    async def close(self) -> None: ...


class NoCache:
    async def linked_size(self, repository: str, digest: str) -> int | None:
        return None

    async def remember_link(self, repository: str, digest: str, size: int) -> None:
        return None

    async def forget_link(self, repository: str, digest: str) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisCache(NoCache):
    """Repository links in Redis: shared, invalidated on delete and collection, expiring as a bound on races."""

    def __init__(self, client: Any, prefix: str = "portside", ttl: float = LINK_TTL_SECONDS) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = max(1, int(ttl))

    def _link(self, repository: str, digest: str) -> str:
        return f"{self._prefix}:link:{repository}@{digest}"

    async def linked_size(self, repository: str, digest: str) -> int | None:
        value = await self._redis.get(self._link(repository, digest))
        return int(value) if value is not None else None

    async def remember_link(self, repository: str, digest: str, size: int) -> None:
        await self._redis.set(self._link(repository, digest), size, ex=self._ttl)

    async def forget_link(self, repository: str, digest: str) -> None:
        await self._redis.delete(self._link(repository, digest))

    async def close(self) -> None:
        await self._redis.aclose()
