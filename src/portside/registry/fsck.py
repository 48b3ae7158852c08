"""`portside fsck`: does storage hold what the metadata store records, and does every manifest's content exist?

The records and the storage listing are read side by side in digest order (memory holds a page of each).
Reported as problems: a recorded blob missing from storage, one of another size, one whose bytes do not hash
to its digest (with `verify_digests`, which reads every blob), a manifest referencing a blob its repository
does not link or a child it does not hold. Reported as a notice: bytes no record knows (crash debris, content
left before an import); only `remove_unknown` deletes those, once older than the review delay. Nothing else
is ever changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from portside.digest import Digest, new_hasher
from portside.metadata.records import utcnow
from portside.registry.gc import Collector
from portside.storage.driver import PathNotFound

PAGE = 2000
READ_BLOCK = 1024 * 1024
HASH_CONCURRENCY = 4

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, size, digest, reference
    subject: str
    detail: str


@dataclass
class FsckReport:
    problems: list[Problem] = field(default_factory=list)
    unknown: list[tuple[str, int]] = field(default_factory=list)
    removed_unknown: int = 0
    blobs: int = 0
    verified: int = 0

    @property
    def healthy(self) -> bool:
        return not self.problems


class Fsck:
    def __init__(
        self, collector: Collector, review_after: float, progress: Progress | None = None, page: int = PAGE
    ) -> None:
        self.collector = collector
        self.namespace = collector.namespace
        self.review_after = review_after
        self.progress = progress or (lambda phase, done: None)
        self.page = page
        self.report = FsckReport()

    async def run(self, verify_digests: bool = False, remove_unknown: bool = False) -> FsckReport:
        await self._blobs(verify_digests)
        await self._references()
        if remove_unknown:
            await self._remove_unknown()
        return self.report

    async def _records(self) -> AsyncIterator[tuple[str, int]]:
        after = ""
        while page := await self.namespace.store.marking.blobs(after, self.page):
            for item in page:
                yield item
            after = page[-1][0]

    async def _blobs(self, verify: bool) -> None:
        records = self._records()
        record = await anext(records, None)
        hashing: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(HASH_CONCURRENCY)

        async for digest, info in self.namespace.content.blobs():
            while record is not None and record[0] < digest:
                self.report.problems.append(Problem("missing", record[0], "recorded, but storage has no bytes"))
                self.report.blobs += 1
                record = await anext(records, None)
            if record is None or record[0] != digest:
                self.report.unknown.append((str(digest), info.size))
                continue
            self.report.blobs += 1
            if info.size != record[1]:
                detail = f"recorded as {record[1]} bytes, storage has {info.size}"
                self.report.problems.append(Problem("size", str(digest), detail))
            elif verify:
                await limit.acquire()
                task = asyncio.create_task(self._verify(digest, limit))
                hashing.add(task)
                task.add_done_callback(hashing.discard)
            if self.report.blobs % self.page == 0:
                self.progress("blobs", self.report.blobs)
            record = await anext(records, None)
        while record is not None:
            self.report.problems.append(Problem("missing", record[0], "recorded, but storage has no bytes"))
            self.report.blobs += 1
            record = await anext(records, None)
        await asyncio.gather(*hashing)
        self.progress("blobs", self.report.blobs)

    async def _verify(self, digest: Digest, limit: asyncio.Semaphore) -> None:
        """Read the blob whole and hash it (hashlib releases the GIL: blocks hash on threads)."""
        try:
            hasher = new_hasher(digest.algorithm)
            try:
                async with await self.namespace.content.blob_reader(digest) as reader:
                    while block := await reader.read(READ_BLOCK):
                        await asyncio.to_thread(hasher.update, block)
            except PathNotFound:
                self.report.problems.append(Problem("missing", str(digest), "removed while fsck ran"))
                return
            actual = f"{digest.algorithm}:{hasher.hexdigest()}"
            self.report.verified += 1
            if actual != digest:
                self.report.problems.append(Problem("digest", str(digest), f"the stored bytes hash to {actual}"))
        finally:
            limit.release()

    async def _references(self) -> None:
        for repository, manifest, kind, digest in await self.namespace.store.marking.broken_references():
            what = "blob the repository does not link" if kind == "blob" else "manifest the repository does not hold"
            self.report.problems.append(
                Problem("reference", f"{repository}@{manifest}", f"references {digest}, a {what}")
            )

    async def _remove_unknown(self) -> None:
        """Delete the bytes no record knows that are older than the review delay (under the digests' locks, and
        only if still unknown then)."""
        cutoff = utcnow() - timedelta(seconds=self.review_after)
        old = [digest for digest, _ in self.report.unknown]
        stale: list[str] = []
        for digest in old:
            try:
                info = await self.namespace.content.blob_info(Digest(digest))
            except PathNotFound:
                continue
            if info.modified < cutoff:
                stale.append(digest)
        for start in range(0, len(stale), 500):
            batch = stale[start : start + 500]
            await self.namespace.store.gc.queue_blobs(batch, "fsck")
            swept = await self.collector.blobs(batch)
            self.report.removed_unknown += len(swept.unrecorded)
