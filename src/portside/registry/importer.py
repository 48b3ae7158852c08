"""Adopting a Docker Distribution store in place: `portside import`.

Distribution keeps repositories, manifests and tags as link files in its `repositories/` tree; Portside keeps
them in its metadata store and shares distribution's blob layout. Importing reads the tree (through
`storage.distribution`, which never writes), reads each manifest from its blob, verifies it against its
digest, parses and validates it as a push would, and records it with the same rows a push writes. Blob bytes
are never copied.

Safe while the old registry keeps serving: nothing in its tree is changed, and anything that cannot be
adopted faithfully is reported and skipped (a link to nothing, a tag to a missing revision, a manifest that
does not match its digest, schema1). Resumable and repeatable: each repository's changes are one
transaction (a very large repository commits in several, each consistent), and a run records only what the
metadata store lacks, so running it again after a crash, or after the old registry took more pushes,
picks up where things stand. A tag that differs on both sides goes to whichever was written last.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from portside.digest import Digest, DigestError
from portside.manifest import mediatypes as mt
from portside.manifest.schema import ManifestError, SchemaRegistry, default_registry
from portside.metadata.imports import ImportBatch, ImportStore, RepositoryState
from portside.metadata.records import NewManifest
from portside.reference import ReferenceError, validate_repository_name, validate_tag
from portside.registry.errors import ManifestInvalid
from portside.registry.manifests import manifest_references, new_manifest
from portside.registry.options import RegistryOptions
from portside.storage.distribution import DistributionTree
from portside.storage.driver import StorageDriver

log = logging.getLogger("portside.import")
T = TypeVar("T")

# Why something was skipped.
INVALID_NAME = "invalid-name"  # a repository or tag name Portside's grammar refuses
NOT_FOUND = "not-found"  # a repository asked for by name is not in the tree
INVALID_LINK = "invalid-link"  # a link whose directory or content is not a digest Portside can verify
LINK_MISMATCH = "link-mismatch"  # a link naming another digest than its directory
BLOB_MISSING = "blob-missing"  # a layer link or a manifest revision whose blob has no data
DIGEST_MISMATCH = "digest-mismatch"  # a manifest blob whose bytes do not hash to its digest
TOO_LARGE = "too-large"  # a manifest over the size Portside accepts
SCHEMA1 = "schema1"  # Docker image manifest schema 1, which Portside refuses
INVALID_MANIFEST = "invalid-manifest"  # bytes a push of the same manifest would be refused for
MISSING_REFERENCE = "missing-reference"  # a manifest whose blobs or children the repository lacks
DANGLING_TAG = "dangling-tag"  # a tag pointing at no manifest that could be imported
NEWER_IN_PORTSIDE = "newer-in-portside"  # a tag Portside moved after distribution last wrote it: kept
ERROR = "error"  # storage or database failure: the repository is left for the next run

READ_AHEAD = 256
"""Revisions read at a time: the parsed manifests waiting for their write are bounded by this and the flush."""
FLUSH_MANIFESTS = 2000
FLUSH_BYTES = 32 * 1024 * 1024
"""A repository whose new manifests exceed these commits in several transactions, children first."""


@dataclass(frozen=True)
class Skipped:
    """Something in the distribution tree that was not imported, and why."""

    repository: str
    kind: str  # repository, manifest, tag or blob
    item: str  # the digest, tag or name
    reason: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"event": "skipped", **self.__dict__}

    def __str__(self) -> str:
        what = self.repository if self.kind == "repository" else f"{self.kind} {self.repository}@{self.item}"
        if self.kind == "tag":
            what = f"tag {self.repository}:{self.item}"
        return f"{what}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class RepositoryDone:
    """A repository read to the end: what was recorded (or, on a dry run, would be)."""

    name: str
    manifests: int
    tags: int
    blobs: int
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"event": "repository", **self.__dict__}


Event = RepositoryDone | Skipped
Progress = Callable[[Event], None]


@dataclass
class Summary:
    """Counts of a run; updated as it goes, so a progress display may read it at any time."""

    dry_run: bool = False
    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    blobs: int = 0
    bytes_verified: int = 0
    manifests_present: int = 0
    tags_present: int = 0
    blobs_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return self.skipped[ERROR]

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "summary",
            "dry_run": self.dry_run,
            "repositories": self.repositories,
            "manifests": self.manifests,
            "tags": self.tags,
            "blobs": self.blobs,
            "bytes_verified": self.bytes_verified,
            "already": {"manifests": self.manifests_present, "tags": self.tags_present, "blobs": self.blobs_present},
            "skipped": dict(sorted(self.skipped.items())),
        }

    def __str__(self) -> str:
        verb = "would be recorded" if self.dry_run else "recorded"
        text = (
            f"{self.repositories} repositories read: {self.manifests} manifests, {self.tags} tags, "
            f"{self.blobs} blob links {verb} ({self.bytes_verified} manifest bytes verified); already there: "
            f"{self.manifests_present} manifests, {self.tags_present} tags, {self.blobs_present} blob links"
        )
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            text += f"; skipped {sum(self.skipped.values())}: {reasons}"
        return text


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise _Skip(INVALID_LINK, str(exc)) from None


def _is_schema1(payload: bytes) -> bool:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    return data.get("schemaVersion") == 1 or data.get("mediaType") in mt.SCHEMA1


def _import_time() -> datetime:
    """Now, to the whole second below: object stores give modification times in whole seconds, and a tag
    written in distribution after its read here must compare as newer than what this run records."""
    return datetime.now(UTC).replace(microsecond=0)


def _resolve(
    waiting: list[NewManifest], blobs: set[str], manifests: set[str]
) -> tuple[list[NewManifest], list[NewManifest]]:
    """(ready in dependency order, still waiting): a manifest is ready once its blobs are linked and its
    children are recorded or ready before it."""
    ready: list[NewManifest] = []
    progressed = True
    while waiting and progressed:
        still: list[NewManifest] = []
        for new in waiting:
            if all(d in blobs for d in new.blob_refs) and all(d in manifests for d in new.manifest_refs):
                ready.append(new)
                manifests.add(new.digest)
            else:
                still.append(new)
        progressed = len(still) < len(waiting)
        waiting = still
    return ready, waiting


async def _gathered(work: Callable[[str], Awaitable[T]], items: Sequence[str]) -> list[T]:
    """`work` for every item, `READ_AHEAD` at a time: a repository with a hundred thousand tags must not
    become a hundred thousand coroutines at once."""
    results: list[T] = []
    for start in range(0, len(items), READ_AHEAD):
        results.extend(await asyncio.gather(*(work(item) for item in items[start : start + READ_AHEAD])))
    return results


class Importer:
    """Imports a distribution tree into a metadata store; `run` returns the summary (also live in `summary`)."""

    def __init__(
        self,
        tree: DistributionTree,
        store: ImportStore,
        options: RegistryOptions | None = None,
        *,
        schemas: SchemaRegistry | None = None,
        repositories: Sequence[str] = (),
        dry_run: bool = False,
        parallel_repositories: int = 4,
        progress: Progress | None = None,
        flush_manifests: int = FLUSH_MANIFESTS,
        flush_bytes: int = FLUSH_BYTES,
    ) -> None:
        self.tree = tree
        self.store = store
        self.options = options or RegistryOptions()
        self.schemas = schemas or default_registry()
        self.only = sorted(set(repositories))
        self.dry_run = dry_run
        self.parallel = max(1, parallel_repositories)
        self.progress = progress
        self.flush_manifests = flush_manifests
        self.flush_bytes = flush_bytes
        self.summary = Summary(dry_run=dry_run)

    def _emit(self, event: Event) -> None:
        if isinstance(event, Skipped):
            self.summary.skipped[event.reason] += 1
        if self.progress is not None:
            self.progress(event)

    def report(self, repository: str, kind: str, item: str, reason: str, detail: str = "") -> None:
        self._emit(Skipped(repository, kind, item, reason, detail))

    async def _names(self) -> AsyncIterator[str]:
        if not self.only:
            async for name in self.tree.repositories():
                yield name
            return
        for name in self.only:
            try:
                validate_repository_name(name)
            except ReferenceError as exc:
                self.report(name, "repository", name, INVALID_NAME, str(exc))
                continue
            if await self.tree.is_repository(name):
                yield name
            else:
                self.report(name, "repository", name, NOT_FOUND, "no _manifests directory in the tree")

    async def run(self) -> Summary:
        running: set[asyncio.Task[None]] = set()
        try:
            async for name in self._names():
                while len(running) >= self.parallel:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running.add(asyncio.ensure_future(self._repository(name)))
            if running:
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
        return self.summary

    async def _repository(self, name: str) -> None:
        try:
            validate_repository_name(name)
        except ReferenceError as exc:
            self.report(name, "repository", name, INVALID_NAME, str(exc))
            return
        try:
            done = await _RepositoryImport(self, name).run()
        except Exception as exc:
            log.debug("importing %s failed", name, exc_info=True)
            self.report(name, "repository", name, ERROR, f"{type(exc).__name__}: {exc}"[:500])
            return
        self.summary.repositories += 1
        self._emit(done)


class _RepositoryImport:
    """One repository: its new blob links, then its new manifests (children first), then its tags."""

    def __init__(self, importer: Importer, name: str) -> None:
        self.importer = importer
        self.tree = importer.tree
        self.name = name
        self.summary = importer.summary
        self.now = _import_time()
        self.batch = ImportBatch()
        self.counts = Counter[str]()
        self.skipped_manifests: dict[str, str] = {}

    def skip(self, kind: str, item: str, reason: str, detail: str = "") -> None:
        if kind == "manifest":
            self.skipped_manifests[item] = reason
        self.importer.report(self.name, kind, item, reason, detail)

    async def run(self) -> RepositoryDone:
        state = await self.importer.store.state(self.name)
        layers, revisions, tags = await asyncio.gather(
            self.tree.layers(self.name), self.tree.revisions(self.name), self.tree.tags(self.name)
        )
        linked = set(state.blobs)
        await self._blobs(layers, state, linked)
        known = set(state.manifests)
        await self._manifests(revisions, state, linked, known)
        await self._tags(tags, state, known)
        await self._flush()
        return RepositoryDone(
            self.name, self.counts["manifests"], self.counts["tags"], self.counts["blobs"], self.importer.dry_run
        )

    async def _flush(self) -> None:
        batch, self.batch = self.batch, ImportBatch()
        if not batch:
            return
        if not self.importer.dry_run:
            await self.importer.store.record(self.name, batch, self.now)
        for key, items in (("manifests", batch.manifests), ("tags", batch.tags), ("blobs", batch.blobs)):
            self.counts[key] += len(items)
        self.summary.manifests += len(batch.manifests)
        self.summary.tags += len(batch.tags)
        self.summary.blobs += len(batch.blobs)

    # ------------------------------------------------------------------ blobs

    async def _blobs(self, layers: Iterable[str], state: RepositoryState, linked: set[str]) -> None:
        new = [entry for entry in layers if entry not in state.blobs]
        self.summary.blobs_present += len(state.blobs.intersection(layers))
        found = await _gathered(self._blob, new)
        for entry in found:
            if entry is not None:
                self.batch.blobs.append(entry)
                linked.add(entry[0])

    async def _blob(self, entry: str) -> tuple[str, int] | None:
        try:
            digest = _digest(entry)
            target = await self.tree.layer_link(self.name, digest)
            if target is None:
                return None  # a deleted link leaves its directory behind
            if target != digest:
                raise _Skip(LINK_MISMATCH, f"the link names {target[:200]}")
            size = await self.tree.blob_size(digest)
            if size is None:
                raise _Skip(BLOB_MISSING, "a layer link to a blob with no data")
        except _Skip as skip:
            self.skip("blob", entry, skip.reason, skip.detail)
            return None
        return digest, size

    # ------------------------------------------------------------------ manifests

    async def _manifests(self, revisions: list[str], state: RepositoryState, linked: set[str], known: set[str]) -> None:
        new = [entry for entry in revisions if entry not in state.manifests]
        self.summary.manifests_present += len(state.manifests.intersection(revisions))
        waiting: list[NewManifest] = []
        pending_bytes = 0
        step = min(READ_AHEAD, self.importer.flush_manifests)
        for start in range(0, len(new), step):
            read = await asyncio.gather(*(self._manifest(entry) for entry in new[start : start + step]))
            waiting.extend(m for m in read if m is not None)
            ready, waiting = _resolve(waiting, linked, known)
            self.batch.manifests.extend(ready)
            pending_bytes += sum(len(m.payload) for m in ready)
            if len(self.batch.manifests) >= self.importer.flush_manifests or pending_bytes >= self.importer.flush_bytes:
                await self._flush()
                pending_bytes = 0
        for unresolved in waiting:
            missing = [d for d in unresolved.blob_refs if d not in linked]
            missing += [d for d in unresolved.manifest_refs if d not in known]
            detail = f"{len(missing)} not in the repository, first {missing[0]}"
            self.skip("manifest", unresolved.digest, MISSING_REFERENCE, detail)

    async def _manifest(self, entry: str) -> NewManifest | None:
        try:
            digest = _digest(entry)
            target = await self.tree.revision_link(self.name, digest)
            if target is None:
                return None  # a deleted revision leaves its directory behind
            if target != digest:
                raise _Skip(LINK_MISMATCH, f"the link names {target[:200]}")
            limit = self.importer.options.max_manifest_size
            payload = await self.tree.read_blob(digest, limit)
            if payload is None:
                raise _Skip(BLOB_MISSING, "a revision whose blob has no data")
            if isinstance(payload, int):
                raise _Skip(TOO_LARGE, f"{payload} bytes, more than {limit}")
            actual = Digest.of(payload, digest.algorithm)
            self.summary.bytes_verified += len(payload)
            if actual != digest:
                raise _Skip(DIGEST_MISMATCH, f"the blob's bytes are {actual}")
            return self._parse(payload, digest)
        except _Skip as skip:
            self.skip("manifest", entry, skip.reason, skip.detail)
            return None

    def _parse(self, payload: bytes, digest: Digest) -> NewManifest:
        try:
            manifest = self.importer.schemas.parse(payload, None, digest.algorithm)
        except ManifestError as exc:
            if _is_schema1(payload):
                raise _Skip(SCHEMA1, "Portside stores schema 2 and OCI manifests only") from None
            raise _Skip(INVALID_MANIFEST, str(exc)) from None
        try:
            blob_refs, manifest_refs = manifest_references(
                manifest, self.importer.options, self.importer.schemas.media_types
            )
        except ManifestInvalid as exc:
            raise _Skip(INVALID_MANIFEST, str(exc)) from None
        return new_manifest(manifest, blob_refs, manifest_refs)

    # ------------------------------------------------------------------ tags

    async def _tags(self, names: list[str], state: RepositoryState, known: set[str]) -> None:
        moves = await _gathered(lambda tag: self._tag(tag, state, known), names)
        for tag, digest in zip(names, moves, strict=True):
            if digest is not None:
                self.batch.tags[tag] = digest

    async def _tag(self, tag: str, state: RepositoryState, known: set[str]) -> str | None:
        """The digest the tag should move to, or None (nothing to do, or skipped)."""
        try:
            try:
                validate_tag(tag)
            except ReferenceError as exc:
                raise _Skip(INVALID_NAME, str(exc)) from None
            link = await self.tree.tag_link(self.name, tag)
            if link is None:
                return None  # a tag being written or deleted: it has no current link
            target = self._target(link.target, known)
            recorded = state.tags.get(tag)
            if recorded is None:
                return target
            if recorded.digest == target:
                self.summary.tags_present += 1
                return None
            # Both sides have the tag, at different manifests: the later write wins.
            timed = await self.tree.tag_link(self.name, tag, with_time=True)
            if timed is None:
                return None
            if timed.modified is None or timed.modified < recorded.updated_at:
                raise _Skip(NEWER_IN_PORTSIDE, f"kept at {recorded.digest}; distribution has {timed.target[:200]}")
            return self._target(timed.target, known)
        except _Skip as skip:
            self.skip("tag", tag, skip.reason, skip.detail)
            return None

    def _target(self, text: str, known: set[str]) -> str:
        digest = _digest(text)
        if digest in known:
            return digest
        reason = self.skipped_manifests.get(digest)
        if reason is not None:
            raise _Skip(DANGLING_TAG, f"its manifest {digest} was skipped: {reason}")
        raise _Skip(DANGLING_TAG, f"no manifest {digest} in the repository")


async def import_store(
    driver: StorageDriver,
    store: ImportStore,
    options: RegistryOptions | None = None,
    *,
    repositories: Sequence[str] = (),
    dry_run: bool = False,
    concurrency: int = 16,
    progress: Progress | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Import the distribution tree held by `driver` into `store`; `concurrency` bounds storage calls.
    `summary`, when given, is filled as the run goes (for a live display) and returned."""
    tree = DistributionTree(driver, concurrency)
    importer = Importer(
        tree,
        store,
        options,
        repositories=repositories,
        dry_run=dry_run,
        parallel_repositories=max(1, concurrency // 4),
        progress=progress,
    )
    if summary is not None:
        summary.dry_run = dry_run
        importer.summary = summary
    return await importer.run()


__all__ = [
    "Importer",
    "RepositoryDone",
    "Skipped",
    "Summary",
    "import_store",
]
