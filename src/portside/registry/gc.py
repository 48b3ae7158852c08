"""Garbage collection: deleting what the metadata store's checks find to be garbage, records first and bytes
after, never a byte that a push relies on.

`Collector` does the deleting for both modes: the online passes (`review_manifests`, `review_blobs`), which take
due reviews from the queues that changes fill, and `portside garbage-collect` (registry/sweep.py), which marks
the whole store. The rules are in metadata/gc.py and docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from portside.digest import Digest
from portside.metadata.gc import Outcome
from portside.metrics import Metrics
from portside.registry.events import EventSink
from portside.registry.namespace import LocalNamespace

log = logging.getLogger("portside.gc")

BATCH = 100
BYTES_CONCURRENCY = 32


@dataclass
class Totals:
    """What a collection removed (or, in a dry run, would remove)."""

    manifests: int = 0
    links: int = 0
    blobs: int = 0
    bytes: int = 0
    repositories: int = 0
    failures: int = 0
    leftovers: int = 0  # temporary files beside blobs (storage sweep)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: mark, sweep, storage

    def count(self, outcome: Outcome) -> None:
        self.manifests += len(outcome.manifests)
        self.links += len(outcome.links)
        self.repositories += len(outcome.repositories)

    def line(self, dry_run: bool = False) -> str:
        verb = "would remove" if dry_run else "removed"
        return (
            f"{verb} {self.manifests} manifest(s), {self.links} link(s), {self.blobs} blob(s) "
            f"({self.bytes} bytes), {self.repositories} repositor{'y' if self.repositories == 1 else 'ies'}"
            + (f", {self.leftovers} leftover file(s)" if self.leftovers else "")
            + (f"; {self.failures} failure(s)" if self.failures else "")
        )


@dataclass
class Swept:
    """What a blob batch removed: records with their bytes, bytes that had no record, and failures."""

    records: list[tuple[str, int]] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    failures: int = 0


class Collector:
    def __init__(
        self,
        namespace: LocalNamespace,
        events: EventSink | None = None,
        metrics: Metrics | None = None,
        storage_timeout: float = 30.0,
    ) -> None:
        self.namespace = namespace
        self.gc = namespace.store.gc
        self.events = events
        self.metrics = metrics or Metrics()
        self.storage_timeout = storage_timeout

    # ---------------------------------------------------------------- deleting, checked again as it goes

    async def manifests(self, items: Sequence[tuple[int, str]], untagged: bool | None = None) -> Outcome:
        outcome = await self.gc.review_manifests(items, self.events, untagged)
        self.metrics.gc_reviewed("manifests", outcome.reviewed)
        self.metrics.gc_deleted("manifest", len(outcome.manifests))
        self.metrics.gc_deleted("repository", len(outcome.repositories))
        for removed in outcome.manifests:
            log.debug("collected manifest %s@%s", removed.repository, removed.digest)
        return outcome

    async def links(self, items: Sequence[tuple[int, str]]) -> Outcome:
        outcome = await self.gc.review_links(items)
        for repository, digest in outcome.links:
            await self.namespace.cache.forget_link(repository, digest)
        self.metrics.gc_reviewed("links", outcome.reviewed)
        self.metrics.gc_deleted("link", len(outcome.links))
        self.metrics.gc_deleted("repository", len(outcome.repositories))
        return outcome

    async def repositories(self, ids: Sequence[int]) -> Outcome:
        outcome = await self.gc.review_repositories(ids)
        self.metrics.gc_reviewed("repositories", outcome.reviewed)
        self.metrics.gc_deleted("repository", len(outcome.repositories))
        return outcome

    async def blobs(self, digests: Sequence[str], attempts: int = 0) -> Swept:
        """Delete the blobs among `digests` that no repository links: their records, then their bytes, all
        under the digests' locks (bytes of digests with no record at all go too). Removals that fail are
        reviewed again later."""
        if not digests:
            return Swept()
        async with self.namespace.store.locks.hold(digests):
            deleted, unrecorded = await self.gc.delete_unlinked_blobs(digests)
            targets = [digest for digest, _ in deleted] + unrecorded
            failed = await self._remove_bytes(targets)
            await self.gc.bytes_removed([d for d in targets if d not in failed])
            await self.gc.bytes_failed(sorted(failed), attempts)
        self.metrics.gc_reviewed("blobs", len(digests))
        swept = Swept(
            records=[(d, size) for d, size in deleted if d not in failed],
            unrecorded=[d for d in unrecorded if d not in failed],
            failures=len(failed),
        )
        self.metrics.gc_deleted("blob", len(swept.records), sum(size for _, size in swept.records))
        self.metrics.gc_failed("blobs", len(failed))
        return swept

    async def _remove_bytes(self, digests: Sequence[str]) -> set[str]:
        """Remove the bytes of `digests`; the set of those that could not be removed."""
        try:
            async with asyncio.timeout(self.storage_timeout * max(1, len(digests) / BYTES_CONCURRENCY)):
                failures = await self.namespace.content.delete_blobs([Digest(d) for d in digests])
        except Exception as exc:  # the store did not answer in time, or at all: every one is tried again
            log.warning("could not remove the bytes of %d blob(s) (tried again later): %s", len(digests), exc)
            return set(digests)
        for digest, error in failures.items():
            log.warning("could not remove the bytes of blob %s (tried again later): %s", digest, error)
        return {str(digest) for digest in failures}

    # ---------------------------------------------------------------- online passes

    async def review_manifests(self, batch: int = BATCH) -> int:
        """Review the due manifest and repository reviews, one batch of each; how many were due."""
        items = await self.gc.claim_manifests(batch)
        if items:
            await self.manifests(items)
        repositories = await self.gc.claim_repositories(batch)
        if repositories:
            await self.repositories(repositories)
        return len(items) + len(repositories)

    async def review_blobs(self, batch: int = BATCH) -> int:
        """Review the due link and blob reviews, one batch of each; how many were due."""
        links = await self.gc.claim_links(batch)
        if links:
            await self.links(links)
        blobs = await self.gc.claim_blobs(batch)
        if blobs:
            await self.blobs([digest for digest, _ in blobs], max(attempts for _, attempts in blobs))
        return len(links) + len(blobs)
