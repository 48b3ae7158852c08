"""`portside garbage-collect`: mark the whole store from the metadata store, then sweep it, beside live pushes.

Marking reads the store a page at a time (memory is bounded by a page, whatever the store's size); sweeping
goes through the same checked deletes as online collection (registry/gc.py), so an item that a push made live
again between the mark and its delete is kept. The rules are online collection's (metadata/gc.py), with
`--delete-untagged` for the untagged rule. Storage is walked only with `--sweep-storage`, for bytes no record
knows (crash debris, content left before an import), removed once older than the review delay.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from portside.metadata.gc import ManifestRow, Marking, Policy
from portside.metadata.records import utcnow
from portside.registry.gc import Collector, Totals
from portside.storage.driver import FileInfo

PAGE = 500
REPOSITORY_PAGE = 200

Progress = Callable[[str, int], None]
"""(phase, items done in it): phases are manifests, links, blobs and storage."""
Removed = Callable[[str, str, int], None]
"""(kind, what, bytes) of each item removed, or that a dry run would remove."""


@dataclass(frozen=True)
class SweepOptions:
    dry_run: bool = False
    delete_untagged: bool = False
    sweep_storage: bool = False


def _ignore(*_: object) -> None:
    return None


def garbage_in(
    rows: list[ManifestRow], children: dict[int, list[str]], policy: Policy, untagged: bool, cutoff: datetime
) -> list[ManifestRow]:
    """The garbage manifests of one repository: all but those kept from a root (tagged, young, and by the
    rules every manifest without a subject or every referrer) through index children and referrers."""
    by_digest = {row.digest: row for row in rows}
    referrers: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.subject:
            referrers[row.subject].append(row)

    def root(row: ManifestRow) -> bool:
        if row.tagged or row.created_at > cutoff:
            return True
        return not policy.referrers if row.subject else not untagged

    kept: set[int] = set()
    stack = [row for row in rows if root(row)]
    while stack:
        row = stack.pop()
        if row.id in kept:
            continue
        kept.add(row.id)
        stack += [by_digest[d] for d in children.get(row.id, ()) if d in by_digest]
        stack += referrers.get(row.digest, [])
    return [row for row in rows if row.id not in kept]


class Sweep:
    def __init__(
        self,
        collector: Collector,
        policy: Policy,
        options: SweepOptions,
        progress: Progress = _ignore,
        removed: Removed = _ignore,
    ) -> None:
        self.collector = collector
        self.marking: Marking = collector.namespace.store.marking
        self.policy = policy
        self.options = options
        self.progress = progress
        self.removed = removed
        self.totals = Totals()
        self.cutoff = utcnow() - timedelta(seconds=policy.review_after)

    async def run(self) -> Totals:
        started = time.perf_counter()
        garbage = await self._manifests()
        if self.options.dry_run:
            await self._would_go(garbage)
            self.totals.seconds["mark"] = time.perf_counter() - started
        else:
            await self._links()
            await self._blobs()
            await self._repositories()
            self.totals.seconds["sweep"] = time.perf_counter() - started
        if self.options.sweep_storage:
            walked = time.perf_counter()
            await self._storage()
            self.totals.seconds["storage"] = time.perf_counter() - walked
        return self.totals

    # ---------------------------------------------------------------- manifests

    async def _manifests(self) -> set[int]:
        """Mark the garbage manifests, and (unless a dry run) delete them; the ids of those marked (for a dry
        run to work out what their going would orphan)."""
        if self.options.delete_untagged:
            return await self._untagged()
        if self.policy.referrers:
            return await self._orphaned_referrers()
        return set()

    async def _orphaned_referrers(self) -> set[int]:
        """Without the untagged rule only referrers can be garbage: those whose subject is gone (or going)."""
        found = await self.marking.referrers()
        by_subject: dict[tuple[int, str], list[ManifestRow]] = defaultdict(list)
        for row, _ in found:
            if row.subject:
                by_subject[(row.repository_id, row.subject)].append(row)

        def collectable(row: ManifestRow) -> bool:
            return not row.tagged and row.created_at <= self.cutoff

        marked: dict[int, ManifestRow] = {}
        stack = [row for row, present in found if not present and collectable(row)]
        while stack:
            row = stack.pop()
            if row.id in marked:
                continue
            marked[row.id] = row
            stack += [r for r in by_subject.get((row.repository_id, row.digest), []) if collectable(r)]
        await self._mark(list(marked.values()))
        self.progress("manifests", len(found))
        return set(marked)

    async def _untagged(self) -> set[int]:
        marked: set[int] = set()
        after, done = 0, 0
        while ids := await self.marking.repository_ids(after, REPOSITORY_PAGE):
            rows, references = await self.marking.manifests(ids)
            children: dict[int, list[str]] = defaultdict(list)
            for _, parent, digest in references:
                children[parent].append(digest)
            by_repository: dict[int, list[ManifestRow]] = defaultdict(list)
            for row in rows:
                by_repository[row.repository_id].append(row)
            page: list[ManifestRow] = []
            for repository_rows in by_repository.values():
                page += garbage_in(repository_rows, children, self.policy, True, self.cutoff)
            marked.update(row.id for row in page)
            await self._mark(page)
            done += len(rows)
            self.progress("manifests", done)
            after = ids[-1]
        return marked

    async def _mark(self, rows: list[ManifestRow]) -> None:
        if self.options.dry_run:
            self.totals.manifests += len(rows)
            for row in rows:
                self.removed("manifest", row.digest, 0)
        else:
            await self._delete_manifests([(row.repository_id, row.digest) for row in rows])

    async def _delete_manifests(self, items: list[tuple[int, str]]) -> None:
        """Delete in passes: an index goes before its children and a subject before its referrers, since each
        is checked again as it goes and a child is kept while its index is there."""
        while items:
            outcome = await self.collector.manifests(items, untagged=self.options.delete_untagged)
            self.totals.count(outcome)
            for manifest in outcome.manifests:
                self.removed("manifest", f"{manifest.repository}@{manifest.digest}", 0)
            gone = {(m.repository_id, m.digest) for m in outcome.manifests}
            left = [item for item in items if item not in gone]
            if len(left) == len(items):
                return  # the rest were made live again, or are kept by something the mark did not see
            items = left

    # ---------------------------------------------------------------- links and blobs

    async def _links(self) -> None:
        after, done = 0, 0
        while ids := await self.marking.repository_ids(after, REPOSITORY_PAGE):
            candidates = await self.marking.garbage_links(ids, self.cutoff)
            for start in range(0, len(candidates), PAGE):
                outcome = await self.collector.links(candidates[start : start + PAGE])
                self.totals.count(outcome)
                for repository, digest in outcome.links:
                    self.removed("link", f"{repository}@{digest}", 0)
                done += len(candidates[start : start + PAGE])
                self.progress("links", done)
            after = ids[-1]

    async def _blobs(self) -> None:
        after, done = "", 0
        while page := await self.marking.unlinked_blobs(after, PAGE):
            swept = await self.collector.blobs([digest for digest, _ in page])
            self._count_blobs(swept.records)
            self.totals.failures += swept.failures
            done += len(page)
            self.progress("blobs", done)
            after = page[-1][0]

    def _count_blobs(self, removed: list[tuple[str, int]]) -> None:
        self.totals.blobs += len(removed)
        self.totals.bytes += sum(size for _, size in removed)
        for digest, size in removed:
            self.removed("blob", digest, size)

    async def _would_go(self, marked: set[int]) -> None:
        """What a collection would remove after the marked manifests (read by the database, page by page)."""
        would = await self.marking.would_go(marked, self.cutoff, self.removed)
        self.totals.links += would.links
        self.totals.blobs += would.blobs
        self.totals.bytes += would.bytes
        self.totals.repositories += would.repositories
        self.progress("blobs", would.blobs)

    async def _repositories(self) -> None:
        empty = await self.marking.empty_repositories()
        for start in range(0, len(empty), PAGE):
            outcome = await self.collector.repositories(empty[start : start + PAGE])
            self.totals.count(outcome)
            for name in outcome.repositories:
                self.removed("repository", name, 0)

    # ---------------------------------------------------------------- storage

    async def _storage(self) -> None:
        """Bytes under blobs/ that no record knows, older than the review delay (a push in progress writes its
        bytes before its record): walked in digest order beside the records, also in digest order."""
        records = self._recorded()
        recorded = await anext(records, None)
        unknown: list[tuple[str, int]] = []
        leftovers: list[FileInfo] = []
        done = 0
        async for digest, info in self.collector.namespace.content.blobs(leftovers):
            while recorded is not None and recorded < digest:
                recorded = await anext(records, None)
            done += 1
            if digest != recorded and info.modified < self.cutoff:
                unknown.append((str(digest), info.size))
            if len(unknown) >= PAGE:
                await self._unknown(unknown)
                unknown = []
            if done % PAGE == 0:
                self.progress("storage", done)
        await self._unknown(unknown)
        await self._leftovers([info for info in leftovers if info.modified < self.cutoff])
        self.progress("storage", done)

    async def _leftovers(self, found: list[FileInfo]) -> None:
        """Temporary files beside blobs that a crash between writing and renaming left: no push is still
        writing one that is older than the review delay."""
        failures = (
            {}
            if self.options.dry_run
            else await self.collector.namespace.content.delete_leftovers([info.path for info in found])
        )
        self.totals.failures += len(failures)
        for info in found:
            if info.path not in failures:
                self.totals.leftovers += 1
                self.totals.bytes += info.size
                self.removed("leftover", info.path, info.size)

    async def _recorded(self) -> AsyncIterator[str]:
        after = ""
        while page := await self.marking.blobs(after, PAGE * 4):
            for digest, _ in page:
                yield digest
            after = page[-1][0]

    async def _unknown(self, found: list[tuple[str, int]]) -> None:
        if not found:
            return
        if self.options.dry_run:
            self._count_blobs(found)
            return
        # Queued first, so a removal that fails is tried again by online collection.
        await self.collector.namespace.store.gc.queue_blobs([digest for digest, _ in found], "storage_sweep")
        swept = await self.collector.blobs([digest for digest, _ in found])
        self.totals.failures += swept.failures
        gone = set(swept.unrecorded)
        self._count_blobs([(digest, size) for digest, size in found if digest in gone])
