"""Garbage collection's statements: the review queues, and the checks-and-deletes collectors run.

Every change that may orphan something queues a review in its own transaction (`queue_*`, called by
metadata/registry.py). A collector claims due reviews, then for each batch locks the rows it may delete and
checks them again in a following statement, so it sees every change committed before it took the locks
(PostgreSQL's READ COMMITTED gives each statement a fresh snapshot; SQLite runs one writer at a time). A push
that relies on a row locks it too (metadata/registry.py), so the two never both win: either the collector sees
the push's references and keeps the row, or the push finds the row gone and fails cleanly.

What is garbage (docs/operations.md has the user's version):
- a link (a repository's right to a blob) when no manifest of the repository references the blob and it was
  created or relied on (a HEAD, a repeated upload) longer than `reviewafter` ago;
- a blob (its record, then its bytes) when no repository links it;
- a manifest without tags that no index of its repository references, when `untagged` asks for it, and a
  referrer whose subject is gone, when `referrers` asks for it; one pushed less than `reviewafter` ago stays;
- a repository with no manifests, links or upload sessions.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    except_,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from portside.metadata import outbox
from portside.metadata.engine import Database, dialect_insert
from portside.metadata.records import OutboxEntry, utcnow
from portside.metadata.tables import (
    DIGEST_LENGTH,
    blobs,
    gc_blob_reviews,
    gc_link_reviews,
    gc_manifest_reviews,
    gc_repository_reviews,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

BLOB_REF, MANIFEST_REF = "blob", "manifest"
CLAIM_SECONDS = 300.0
"""How long a claimed review is left to its collector before another may take it."""


@dataclass(frozen=True)
class Policy:
    """What the collector deletes and after how long (the `gc:` section)."""

    review_after: float = 24 * 3600.0
    untagged: bool = False
    referrers: bool = True


@dataclass(frozen=True)
class DeletedManifest:
    repository_id: int
    repository: str
    digest: str
    media_type: str


@dataclass
class Outcome:
    """What a batch did."""

    reviewed: int = 0
    manifests: list[DeletedManifest] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)
    repositories: list[str] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (digest, size): records gone, bytes to remove

    def add(self, other: Outcome) -> None:
        self.reviewed += other.reviewed
        self.manifests += other.manifests
        self.links += other.links
        self.repositories += other.repositories
        self.blobs += other.blobs


# ---------------------------------------------------------------------------------------------- queueing


class _Queues:
    """The upserts that queue a review, built once per dialect: a review already queued is moved to the new time."""

    def __init__(self, insert: Any) -> None:
        self.blob = self._upsert(insert, gc_blob_reviews, ["digest"])
        self.link = self._upsert(insert, gc_link_reviews, ["repository_id", "digest"])
        self.manifest = self._upsert(insert, gc_manifest_reviews, ["repository_id", "digest"])
        self.repository = self._upsert(insert, gc_repository_reviews, ["repository_id"])

    @staticmethod
    def _upsert(insert: Any, table: Table, keys: list[str]) -> Any:
        values: dict[str, Any] = {key: bindparam(key) for key in keys}
        statement = insert(table).values(**values, review_after=bindparam("due"), event=bindparam("event"))
        return statement.on_conflict_do_update(
            index_elements=[table.c[key] for key in keys],
            set_={"review_after": statement.excluded.review_after, "event": statement.excluded.event, "attempts": 0},
        )


@functools.cache
def _queues(dialect: str) -> _Queues:
    return _Queues(dialect_insert(dialect))


class Reviews:
    """Queues reviews inside the caller's transaction (metadata/registry.py's changes)."""

    def __init__(self, database: Database, review_after: float) -> None:
        self.db = database
        self.delay = timedelta(seconds=review_after)
        self._q = _queues(database.dialect)

    def _due(self, soon: bool) -> datetime:
        return utcnow() if soon else utcnow() + self.delay

    # Rows are queued in key order, as statements on several reviews lock them, so two transactions
    # queueing or finishing overlapping reviews never wait on each other in a cycle.

    def links(self, conn: Connection, repository_id: int, digests: Iterable[str], event: str) -> None:
        due = self._due(False)
        rows = [{"repository_id": repository_id, "digest": d, "due": due, "event": event} for d in sorted(digests)]
        if rows:
            self.db.execute(conn, self._q.link, rows)

    def manifests(self, conn: Connection, repository_id: int, digests: Iterable[str], event: str) -> None:
        due = self._due(False)
        rows = [{"repository_id": repository_id, "digest": d, "due": due, "event": event} for d in sorted(digests)]
        if rows:
            self.db.execute(conn, self._q.manifest, rows)

    def blobs(self, conn: Connection, digests: Iterable[str], event: str, soon: bool = False) -> None:
        due = self._due(soon)
        rows = [{"digest": d, "due": due, "event": event} for d in sorted(digests)]
        if rows:
            self.db.execute(conn, self._q.blob, rows)

    def repository(self, conn: Connection, repository_id: int, event: str, soon: bool = False) -> None:
        params = {"repository_id": repository_id, "due": self._due(soon), "event": event}
        self.db.execute(conn, self._q.repository, params)


# ---------------------------------------------------------------------------------------------- statements

_r, _m, _rb, _t, _mr, _b = repositories.c, manifests.c, repository_blobs.c, tags.c, manifest_references.c, blobs.c


def _claim(table: Table, keys: list[str]) -> Any:
    """Take up to `limit` due reviews: move them a lease ahead, so no other collector takes them meanwhile."""
    columns = [table.c[key] for key in keys]
    due = (
        select(*columns)
        .where(table.c.review_after <= bindparam("now"))
        .order_by(table.c.review_after)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    target = columns[0] if len(columns) == 1 else tuple_(*columns)
    return (
        update(table)
        .where(target.in_(due))
        .values(review_after=bindparam("until"), attempts=table.c.attempts + 1)
        .returning(*columns, table.c.attempts)
    )


_CLAIM_MANIFESTS = _claim(gc_manifest_reviews, ["repository_id", "digest"])
_CLAIM_LINKS = _claim(gc_link_reviews, ["repository_id", "digest"])
_CLAIM_BLOBS = _claim(gc_blob_reviews, ["digest"])
_CLAIM_REPOSITORIES = _claim(gc_repository_reviews, ["repository_id"])

_DIGESTS: Any = bindparam("digests", expanding=True)
_IDS: Any = bindparam("ids", expanding=True)
_REPO: Any = bindparam("repository_id")

# Manifests: lock, then look again.
_LOCK_MANIFESTS = (
    select(_m.id, _m.digest, _m.media_type, _m.subject_digest, _m.created_at, _m.keep_until, _r.name)
    .join(repositories, _r.id == _m.repository_id)
    .where(_m.repository_id == _REPO, _m.digest.in_(_DIGESTS))
    .order_by(_m.id)
    .with_for_update(of=manifests)
)
_TAGGED = select(_t.manifest_id).where(_t.manifest_id.in_(_IDS)).distinct()
_PARENTS = (
    select(_mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .where(_m.repository_id == _REPO, _mr.kind == MANIFEST_REF, _mr.digest.in_(_DIGESTS))
    .distinct()
)
_PRESENT = select(_m.digest).where(_m.repository_id == _REPO, _m.digest.in_(_DIGESTS))
_REFERENCES_OF = select(_mr.manifest_id, _mr.digest, _mr.kind).where(_mr.manifest_id.in_(_IDS))
_REFERRERS_OF = select(_m.digest).where(_m.repository_id == _REPO, _m.subject_digest.in_(_DIGESTS))
_DELETE_MANIFESTS = delete(manifests).where(_m.id.in_(_IDS))

# Links: lock, then look again.
_LOCK_LINKS = (
    select(_rb.repository_id, _rb.digest, _rb.created_at, _rb.touched_at, _rb.keep_until)
    .where(_rb.repository_id == _REPO, _rb.digest.in_(_DIGESTS))
    .order_by(_rb.digest)
    .with_for_update()
)
_REFERENCED = (
    select(_mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .where(_m.repository_id == _REPO, _mr.kind == BLOB_REF, _mr.digest.in_(_DIGESTS))
    .distinct()
)
_DELETE_LINK = delete(repository_blobs).where(_rb.repository_id == _REPO, _rb.digest == bindparam("digest"))
_DONE_LINK = delete(gc_link_reviews).where(
    gc_link_reviews.c.repository_id == _REPO, gc_link_reviews.c.digest == bindparam("digest")
)

# Blobs: lock, then look again (the caller holds the digests' locks, so no push races the bytes).
_LOCK_BLOBS = select(_b.digest).where(_b.digest.in_(_DIGESTS)).order_by(_b.digest).with_for_update()
_LINKED = select(_rb.digest).where(_rb.digest.in_(_DIGESTS)).distinct()
_DELETE_BLOBS = delete(blobs).where(_b.digest.in_(_DIGESTS)).returning(_b.digest, _b.size)

# Repositories: lock, then look again.
_LOCK_REPOSITORIES = select(_r.id, _r.name).where(_r.id.in_(_IDS)).order_by(_r.id).with_for_update()
_EMPTY = select(_r.id, _r.name).where(
    _r.id.in_(_IDS),
    ~exists().where(_m.repository_id == _r.id),
    ~exists().where(_rb.repository_id == _r.id),
    ~exists().where(uploads.c.repository == _r.name),
)
_DELETE_REPOSITORIES = delete(repositories).where(_r.id.in_(_IDS))


def _done(table: Table) -> Any:
    if "repository_id" in table.c and "digest" in table.c:
        return delete(table).where(table.c.repository_id == _REPO, table.c.digest.in_(_DIGESTS))
    if "digest" in table.c:
        return delete(table).where(table.c.digest.in_(_DIGESTS))
    return delete(table).where(table.c.repository_id.in_(_IDS))


def _later(table: Table) -> Any:
    """Postpone one review (a link or manifest still young) to when it may be garbage."""
    return (
        update(table)
        .where(table.c.repository_id == bindparam("repo"), table.c.digest == bindparam("item"))
        .values(review_after=bindparam("due"), attempts=0)
    )


def _backoff(table: Table) -> Any:
    keys = (
        and_(table.c.repository_id == _REPO, table.c.digest.in_(_DIGESTS))
        if "repository_id" in table.c and "digest" in table.c
        else table.c.digest.in_(_DIGESTS)
    )
    return update(table).where(keys).values(review_after=bindparam("due"))


_DONE = {t.name: _done(t) for t in (gc_manifest_reviews, gc_link_reviews, gc_blob_reviews, gc_repository_reviews)}
_LATER = {t.name: _later(t) for t in (gc_manifest_reviews, gc_link_reviews)}
_BACKOFF_BLOBS = _backoff(gc_blob_reviews)

# Queue depth and the oldest due review, for metrics.
_QUEUE_STATS: dict[str, Any] = {
    name: select(func.count().label("n"), func.min(table.c.review_after).label("oldest")).where(
        table.c.review_after <= bindparam("now")
    )
    for name, table in (
        ("manifests", gc_manifest_reviews),
        ("links", gc_link_reviews),
        ("blobs", gc_blob_reviews),
        ("repositories", gc_repository_reviews),
    )
}
_QUEUE_SIZES: dict[str, Any] = {
    name: select(func.count().label("n")).select_from(table)
    for name, table in (
        ("manifests", gc_manifest_reviews),
        ("links", gc_link_reviews),
        ("blobs", gc_blob_reviews),
        ("repositories", gc_repository_reviews),
    )
}


def _by_repository(items: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    """Items grouped by repository, repositories in id order (the order their rows are locked in)."""
    grouped: dict[int, list[str]] = defaultdict(list)
    for repository_id, digest in items:
        grouped[repository_id].append(digest)
    return {repository_id: sorted(grouped[repository_id]) for repository_id in sorted(grouped)}


def _seen(created: datetime, touched: datetime | None) -> datetime:
    return max(created, touched) if touched is not None else created


def _kept_until(by_delay: datetime, by_cache: datetime | None) -> datetime:
    """How long a row is kept: the review delay past when it was last relied on, or a cache's retention."""
    return max(by_delay, by_cache) if by_cache is not None else by_delay


# ---------------------------------------------------------------------------------------------- the collector's side


class GCMetadata:
    """The collector's transactions. Each takes a batch and returns what it deleted."""

    def __init__(self, database: Database, policy: Policy) -> None:
        self.db = database
        self.policy = policy
        self.reviews = Reviews(database, policy.review_after)

    @property
    def delay(self) -> timedelta:
        return timedelta(seconds=self.policy.review_after)

    # ---------------------------------------------------------------- claims

    async def _claim(self, statement: Any, limit: int) -> list[Any]:
        now = utcnow()
        params = {"now": now, "until": now + timedelta(seconds=CLAIM_SECONDS), "limit": limit}
        return list(await self.db.write(lambda conn: self.db.execute(conn, statement, params).rows))

    async def claim_manifests(self, limit: int) -> list[tuple[int, str]]:
        return [(row.repository_id, row.digest) for row in await self._claim(_CLAIM_MANIFESTS, limit)]

    async def claim_links(self, limit: int) -> list[tuple[int, str]]:
        return [(row.repository_id, row.digest) for row in await self._claim(_CLAIM_LINKS, limit)]

    async def claim_blobs(self, limit: int) -> list[tuple[str, int]]:
        """Due blob reviews, with how many times each was taken (to back off one that keeps failing)."""
        return [(row.digest, row.attempts) for row in await self._claim(_CLAIM_BLOBS, limit)]

    async def claim_repositories(self, limit: int) -> list[int]:
        return [row.repository_id for row in await self._claim(_CLAIM_REPOSITORIES, limit)]

    # ---------------------------------------------------------------- manifests

    async def review_manifests(
        self, items: Sequence[tuple[int, str]], events: Any = None, untagged: bool | None = None
    ) -> Outcome:
        """Delete the manifests among `items` ((repository id, digest)) that are garbage now; the rest are
        kept (their review dropped) or, when young, reviewed again later. `events` makes the delete events
        of the manifests removed; `untagged` overrides the policy (the command's `--delete-untagged`)."""
        delete_untagged = self.policy.untagged if untagged is None else untagged

        def work(conn: Connection) -> Outcome:
            outcome = Outcome()
            for repository_id, digests in _by_repository(items).items():
                outcome.add(self._manifests_in(conn, repository_id, digests, delete_untagged, events))
            return outcome

        return await self.db.write(work)

    def _manifests_in(
        self, conn: Connection, repository_id: int, digests: list[str], untagged: bool, events: Any
    ) -> Outcome:
        db, now = self.db, utcnow()
        outcome = Outcome(reviewed=len(digests))
        # Every transaction that changes a repository's content locks its row first, so none waits on another.
        db.execute(conn, _LOCK_REPOSITORIES, {"ids": [repository_id]})
        found = db.execute(conn, _LOCK_MANIFESTS, {"repository_id": repository_id, "digests": digests}).rows
        ids = [row.id for row in found]
        tagged = {row.manifest_id for row in db.execute(conn, _TAGGED, {"ids": ids}).rows} if ids else set()
        present = [row.digest for row in found]
        params = {"repository_id": repository_id, "digests": present}
        parents = {row.digest for row in db.execute(conn, _PARENTS, params).rows} if present else set()
        subjects = [row.subject_digest for row in found if row.subject_digest]
        params = {"repository_id": repository_id, "digests": subjects}
        kept_subjects = {row.digest for row in db.execute(conn, _PRESENT, params).rows} if subjects else set()
        doomed: list[Any] = []
        postponed: set[str] = set()
        for row in found:
            if row.id in tagged or row.digest in parents:
                continue
            keep = _kept_until(row.created_at + self.delay, row.keep_until)
            if keep > now:  # pushed by digest (perhaps before its index or its tag), or a cache keeps it
                later = {"repo": repository_id, "item": row.digest, "due": keep}
                db.execute(conn, _LATER[gc_manifest_reviews.name], later)
                postponed.add(row.digest)
            elif row.subject_digest:
                if row.subject_digest not in kept_subjects and self.policy.referrers:
                    doomed.append(row)
            elif untagged:
                doomed.append(row)
        requeued: set[str] = set()
        if doomed:
            requeued = self._delete_manifests(conn, repository_id, doomed, events, outcome)
        # A review just queued for what a deleted manifest held is not this batch's to finish.
        finished = [d for d in digests if d not in postponed and d not in requeued]
        if finished:
            db.execute(conn, _DONE[gc_manifest_reviews.name], {"repository_id": repository_id, "digests": finished})
        return outcome

    def _delete_manifests(
        self, conn: Connection, repository_id: int, doomed: list[Any], events: Any, outcome: Outcome
    ) -> set[str]:
        """Delete `doomed` and queue reviews of what they held; returns the manifests queued for review."""
        db = self.db
        ids = [row.id for row in doomed]
        references = db.execute(conn, _REFERENCES_OF, {"ids": ids}).rows
        gone = [row.digest for row in doomed]
        params = {"repository_id": repository_id, "digests": gone}
        referrers = [row.digest for row in db.execute(conn, _REFERRERS_OF, params).rows]
        db.execute(conn, _DELETE_MANIFESTS, {"ids": ids})
        # What the deleted manifests kept may now be garbage itself: look at it after the review delay.
        self.reviews.links(conn, repository_id, {r.digest for r in references if r.kind == BLOB_REF}, "manifest_delete")
        children = {r.digest for r in references if r.kind == MANIFEST_REF}
        requeued = (children | set(referrers)) - set(gone)
        self.reviews.manifests(conn, repository_id, requeued, "manifest_delete")
        entries: list[OutboxEntry] = []
        for row in doomed:
            outcome.manifests.append(DeletedManifest(repository_id, row.name, row.digest, row.media_type))
            if events is not None:
                entries += events.entries("delete", {"repository": row.name, "digest": row.digest})
        outbox.record(db, conn, entries)
        self.reviews.repository(conn, repository_id, "manifest_delete", soon=True)
        return requeued

    # ---------------------------------------------------------------- links

    async def review_links(self, items: Sequence[tuple[int, str]]) -> Outcome:
        """Delete the links among `items` that no manifest references and nobody relied on recently."""
        return await self.db.write(lambda conn: self._links_in(conn, items))

    def _links_in(self, conn: Connection, items: Sequence[tuple[int, str]]) -> Outcome:
        db, now = self.db, utcnow()
        outcome = Outcome(reviewed=len(items))
        wanted = set(items)
        if not wanted:
            return outcome
        ids = sorted({repository_id for repository_id, _ in wanted})
        names = {row.id: row.name for row in db.execute(conn, _LOCK_REPOSITORIES, {"ids": ids}).rows}
        found: list[Any] = []
        referenced: set[tuple[int, str]] = set()
        # Looked up a repository at a time, so each lookup goes by the repository's own few manifests (a layer
        # that many repositories share would make a lookup by digest slow); the changes below are one statement
        # for the whole batch.
        for repository_id, digests in _by_repository(wanted).items():
            params = {"repository_id": repository_id, "digests": digests}
            rows = db.execute(conn, _LOCK_LINKS, params).rows
            if rows:
                found += rows
                referenced.update((repository_id, r.digest) for r in db.execute(conn, _REFERENCED, params).rows)
        doomed: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        for row in found:
            if (row.repository_id, row.digest) in referenced:
                continue
            keep = _kept_until(_seen(row.created_at, row.touched_at) + self.delay, row.keep_until)
            if keep > now:
                later.append({"repo": row.repository_id, "item": row.digest, "due": keep})
            else:
                doomed.append({"repository_id": row.repository_id, "digest": row.digest})
        if later:
            db.execute(conn, _LATER[gc_link_reviews.name], later)
        if doomed:
            db.execute(conn, _DELETE_LINK, doomed)
            self.reviews.blobs(conn, {link["digest"] for link in doomed}, "link_delete", soon=True)
            outcome.links += [(names[link["repository_id"]], link["digest"]) for link in doomed]
            outcome.repositories += self._delete_if_empty(conn, sorted({link["repository_id"] for link in doomed}))
        postponed = {(item["repo"], item["item"]) for item in later}
        finished = [{"repository_id": r, "digest": d} for r, d in sorted(wanted - postponed)]
        if finished:
            db.execute(conn, _DONE_LINK, finished)
        return outcome

    def _delete_if_empty(self, conn: Connection, ids: list[int]) -> list[str]:
        self.db.execute(conn, _LOCK_REPOSITORIES, {"ids": ids})
        empty = self.db.execute(conn, _EMPTY, {"ids": ids}).rows
        if empty:
            self.db.execute(conn, _DELETE_REPOSITORIES, {"ids": [row.id for row in empty]})
        return [row.name for row in empty]

    # ---------------------------------------------------------------- repositories

    async def review_repositories(self, ids: Sequence[int]) -> Outcome:
        """Delete the repositories among `ids` that hold nothing any more."""

        def work(conn: Connection) -> Outcome:
            outcome = Outcome(reviewed=len(ids))
            outcome.repositories += self._delete_if_empty(conn, list(ids))
            self.db.execute(conn, _DONE[gc_repository_reviews.name], {"ids": list(ids)})
            return outcome

        return await self.db.write(work)

    # ---------------------------------------------------------------- blobs

    async def delete_unlinked_blobs(self, digests: Sequence[str]) -> tuple[list[tuple[str, int]], list[str]]:
        """Delete the records of the blobs among `digests` that no repository links. Returns those deleted
        (digest, size) and the digests that have no record at all: the bytes of both may go. The caller holds
        the digests' locks and removes the bytes, then calls `bytes_removed`."""

        def work(conn: Connection) -> tuple[list[tuple[str, int]], list[str]]:
            db = self.db
            present = {row.digest for row in db.execute(conn, _LOCK_BLOBS, {"digests": list(digests)}).rows}
            linked: set[str] = set()
            if present:
                linked = {row.digest for row in db.execute(conn, _LINKED, {"digests": list(present)}).rows}
            unlinked = sorted(present - linked)
            deleted = db.execute(conn, _DELETE_BLOBS, {"digests": unlinked}).rows if unlinked else []
            if linked:
                db.execute(conn, _DONE[gc_blob_reviews.name], {"digests": sorted(linked)})
            return [(row.digest, int(row.size)) for row in deleted], sorted(set(digests) - present)

        return await self.db.write(work)

    async def bytes_removed(self, digests: Sequence[str]) -> None:
        """The bytes of these blobs are gone: their reviews are done."""
        if digests:
            params = {"digests": list(digests)}
            await self.db.write(lambda conn: self.db.execute(conn, _DONE[gc_blob_reviews.name], params))

    async def bytes_failed(self, digests: Sequence[str], attempts: int) -> None:
        """Removing these bytes failed: try again later, backing off."""
        if digests:
            seconds = min(self.policy.review_after, 2.0 ** min(attempts, 20))
            params = {"digests": list(digests), "due": utcnow() + timedelta(seconds=seconds)}
            await self.db.write(lambda conn: self.db.execute(conn, _BACKOFF_BLOBS, params))

    async def queue_blobs(self, digests: Sequence[str], event: str) -> None:
        """Queue blob reviews due now (bytes the command found without a record, say)."""
        await self.db.write(lambda conn: self.reviews.blobs(conn, digests, event, soon=True))

    # ---------------------------------------------------------------- state, for metrics

    async def queue_stats(self) -> dict[str, tuple[int, float, int]]:
        """Per queue: reviews due now, the age in seconds of the oldest due one, and reviews queued in all."""
        now = utcnow()
        out: dict[str, tuple[int, float, int]] = {}
        for name, statement in _QUEUE_STATS.items():
            row = (await self.db.fetch(statement, {"now": now}))[0]
            total = (await self.db.fetch(_QUEUE_SIZES[name], {}))[0]
            lag = (now - row.oldest).total_seconds() if row.oldest is not None else 0.0
            out[name] = (int(row.n), lag, int(total.n))
        return out


# ---------------------------------------------------------------------------------------------- marking, for the
# one-shot collection and fsck: the store read in pages (memory bounded by a page, whatever the store's size)

_REPOSITORY_PAGE = select(_r.id).where(_r.id > bindparam("after")).order_by(_r.id).limit(bindparam("limit"))
_MANIFESTS_OF = (
    select(
        _m.repository_id,
        _m.id,
        _m.digest,
        _m.subject_digest,
        func.coalesce(_m.keep_until, _m.created_at).label("created_at"),
        exists().where(_t.manifest_id == _m.id).label("tagged"),
    )
    .where(_m.repository_id.in_(_IDS))
    .order_by(_m.repository_id, _m.id)
)
_CHILDREN_OF = (
    select(_m.repository_id, _mr.manifest_id, _mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .where(_m.repository_id.in_(_IDS), _mr.kind == MANIFEST_REF)
)
_BLOB_PAGE = (
    select(_b.digest, _b.size).where(_b.digest > bindparam("after")).order_by(_b.digest).limit(bindparam("limit"))
)
_REFERENCING = (
    select(_mr.digest, _m.repository_id, _mr.manifest_id)
    .join(manifests, _m.id == _mr.manifest_id)
    .where(_mr.kind == BLOB_REF, _mr.digest.in_(_DIGESTS))
)
_LINKS_OF = select(_rb.digest, _rb.repository_id, _rb.created_at, _rb.touched_at).where(_rb.digest.in_(_DIGESTS))
_EMPTY_REPOSITORIES = (
    select(_r.id)
    .where(
        ~exists().where(_m.repository_id == _r.id),
        ~exists().where(_rb.repository_id == _r.id),
        ~exists().where(uploads.c.repository == _r.name),
    )
    .order_by(_r.id)
)
_WITH_UPLOADS = select(_r.id).where(exists().where(uploads.c.repository == _r.name))
_MISSING_LINKS = (
    select(_r.name, _m.digest.label("manifest"), _mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .join(repositories, _r.id == _m.repository_id)
    .where(
        _mr.kind == BLOB_REF,
        _m.keep_until.is_(None),  # a cache fetches what a manifest references when it is pulled
        ~exists().where(_rb.repository_id == _m.repository_id, _rb.digest == _mr.digest),
    )
    .order_by(_r.name, _m.digest)
)
_child = manifests.alias("child")
_MISSING_CHILDREN = (
    select(_r.name, _m.digest.label("manifest"), _mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .join(repositories, _r.id == _m.repository_id)
    .where(
        _mr.kind == MANIFEST_REF,
        _m.keep_until.is_(None),
        ~exists().where(_child.c.repository_id == _m.repository_id, _child.c.digest == _mr.digest),
    )
    .order_by(_r.name, _m.digest)
)


_IDLE_LINKS = (
    select(_rb.repository_id, _rb.digest)
    .where(
        _rb.repository_id.in_(_IDS),
        func.coalesce(_rb.touched_at, _rb.created_at) < bindparam("cutoff"),
        or_(_rb.keep_until.is_(None), _rb.keep_until < bindparam("now")),
    )
    .order_by(_rb.repository_id, _rb.digest)
)
# Read beside the links rather than as a correlated NOT EXISTS: the planner of SQLite would look the references
# up by digest, which a layer shared by many manifests makes slow; by repository each is a few rows.
_REFERENCED_IN = (
    select(_m.repository_id, _mr.digest)
    .join(manifests, _m.id == _mr.manifest_id)
    .where(_m.repository_id.in_(_IDS), _mr.kind == BLOB_REF)
)
_UNLINKED_BLOBS = (
    select(_b.digest, _b.size)
    .where(_b.digest > bindparam("after"), ~exists().where(_rb.digest == _b.digest))
    .order_by(_b.digest)
    .limit(bindparam("limit"))
)


# For a dry run: the manifests a run would delete, in a temporary table of the reading connection, and from
# them the links that would go (idle, and referenced by no manifest that stays), so the blobs and repositories
# their going would orphan are found by the database with a lookup by key per link, page by page.
_scratch = MetaData()
gc_marked = Table("gc_marked", _scratch, Column("id", BigInteger, primary_key=True), prefixes=["TEMPORARY"])
gc_doomed = Table(
    "gc_doomed",
    _scratch,
    Column("repository_id", BigInteger, primary_key=True),
    Column("digest", String(DIGEST_LENGTH), primary_key=True),
    prefixes=["TEMPORARY"],
)
_MARK = gc_marked.insert().values(id=bindparam("marked"))
_d = gc_doomed.c
# A set difference, not a correlated lookup per link: a layer that many manifests share would make that slow.
_DOOM = gc_doomed.insert().from_select(
    ["repository_id", "digest"],
    except_(
        select(_rb.repository_id, _rb.digest).where(
            func.coalesce(_rb.touched_at, _rb.created_at) < bindparam("cutoff"),
            or_(_rb.keep_until.is_(None), _rb.keep_until < bindparam("now")),
        ),
        select(_m.repository_id, _mr.digest)
        .join(manifests, _m.id == _mr.manifest_id)
        .where(_mr.kind == BLOB_REF, ~_m.id.in_(select(gc_marked.c.id))),
    ),
)
_STAYS = ~exists().where(_d.repository_id == _rb.repository_id, _d.digest == _rb.digest)

_LINKS_WOULD_GO = (
    select(_d.repository_id, _d.digest)
    .where(tuple_(_d.repository_id, _d.digest) > tuple_(bindparam("after_repo"), bindparam("after_digest")))
    .order_by(_d.repository_id, _d.digest)
    .limit(bindparam("limit"))
)
_BLOBS_WOULD_GO = (
    select(_b.digest, _b.size)
    .where(_b.digest > bindparam("after"), ~exists().where(_rb.digest == _b.digest, _STAYS))
    .order_by(_b.digest)
    .limit(bindparam("limit"))
)
_REPOSITORIES_WOULD_GO = select(_r.id, _r.name).where(
    ~exists().where(_m.repository_id == _r.id, ~_m.id.in_(select(gc_marked.c.id))),
    ~exists().where(_rb.repository_id == _r.id, _STAYS),
    ~exists().where(uploads.c.repository == _r.name),
)
_REFERRERS_WITH_SUBJECT = (
    select(
        _m.repository_id,
        _m.id,
        _m.digest,
        _m.subject_digest,
        func.coalesce(_m.keep_until, _m.created_at).label("created_at"),
        exists().where(_t.manifest_id == _m.id).label("tagged"),
        exists()
        .where(_child.c.repository_id == _m.repository_id, _child.c.digest == _m.subject_digest)
        .label("subject_present"),
    )
    .where(_m.subject_digest.is_not(None))
    .order_by(_m.repository_id, _m.id)
)


@dataclass
class WouldGo:
    links: int = 0
    blobs: int = 0
    bytes: int = 0
    repositories: int = 0


@dataclass(frozen=True)
class ManifestRow:
    repository_id: int
    id: int
    digest: str
    subject: str | None
    created_at: datetime
    tagged: bool


@dataclass(frozen=True)
class LinkRow:
    repository_id: int
    seen: datetime
    referenced_by: tuple[int, ...]
    """The manifests of the link's repository that reference the blob."""


class Marking:
    """Reads of the whole store, page by page."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def repository_ids(self, after: int, limit: int) -> list[int]:
        return [row.id for row in await self.db.fetch(_REPOSITORY_PAGE, {"after": after, "limit": limit})]

    async def manifests(self, repository_ids: Sequence[int]) -> tuple[list[ManifestRow], list[tuple[int, int, str]]]:
        """The manifests of some repositories, and their index children (repository id, parent id, digest)."""
        params = {"ids": list(repository_ids)}
        rows = [
            ManifestRow(r.repository_id, r.id, r.digest, r.subject_digest, r.created_at, bool(r.tagged))
            for r in await self.db.fetch(_MANIFESTS_OF, params)
        ]
        children = [(r.repository_id, r.manifest_id, r.digest) for r in await self.db.fetch(_CHILDREN_OF, params)]
        return rows, children

    async def blobs(self, after: str, limit: int) -> list[tuple[str, int]]:
        """Blob records in digest order after `after`."""
        return [
            (row.digest, int(row.size)) for row in await self.db.fetch(_BLOB_PAGE, {"after": after, "limit": limit})
        ]

    async def links(self, digests: Sequence[str]) -> dict[str, list[LinkRow]]:
        """The links of these blobs, each with the manifests of its repository that reference the blob."""
        params = {"digests": list(digests)}
        referencing: dict[tuple[str, int], list[int]] = defaultdict(list)
        for row in await self.db.fetch(_REFERENCING, params):
            referencing[(row.digest, row.repository_id)].append(row.manifest_id)
        out: dict[str, list[LinkRow]] = defaultdict(list)
        for row in await self.db.fetch(_LINKS_OF, params):
            seen = _seen(row.created_at, row.touched_at)
            out[row.digest].append(
                LinkRow(row.repository_id, seen, tuple(referencing[(row.digest, row.repository_id)]))
            )
        return out

    async def garbage_links(self, repository_ids: Sequence[int], cutoff: datetime) -> list[tuple[int, str]]:
        """Links of these repositories that no manifest references and nobody relied on since `cutoff`."""
        params = {"ids": list(repository_ids), "cutoff": cutoff, "now": utcnow()}
        referenced = {(row.repository_id, row.digest) for row in await self.db.fetch(_REFERENCED_IN, params)}
        idle = await self.db.fetch(_IDLE_LINKS, params)
        return [(row.repository_id, row.digest) for row in idle if (row.repository_id, row.digest) not in referenced]

    async def unlinked_blobs(self, after: str, limit: int) -> list[tuple[str, int]]:
        """Blob records no repository links, in digest order after `after`."""
        rows = await self.db.fetch(_UNLINKED_BLOBS, {"after": after, "limit": limit})
        return [(row.digest, int(row.size)) for row in rows]

    async def repositories_with_uploads(self) -> set[int]:
        return {row.id for row in await self.db.fetch(_WITH_UPLOADS, {})}

    async def referrers(self) -> list[tuple[ManifestRow, bool]]:
        """Every manifest with a subject, and whether its subject is in its repository."""
        return [
            (
                ManifestRow(r.repository_id, r.id, r.digest, r.subject_digest, r.created_at, bool(r.tagged)),
                bool(r.subject_present),
            )
            for r in await self.db.fetch(_REFERRERS_WITH_SUBJECT, {})
        ]

    async def would_go(
        self, marked: Iterable[int], cutoff: datetime, removed: Callable[[str, str, int], None], page: int = 1000
    ) -> WouldGo:
        """What a run would remove besides the `marked` manifests: links no manifest that stays references and
        nobody relied on since `cutoff`, blobs whose every link goes, repositories left with nothing. Read in
        one connection, page by page; `removed(kind, item, bytes)` hears of each."""
        marked = list(marked)
        db = self.db

        def work(conn: Connection) -> WouldGo:
            gc_marked.create(conn)
            gc_doomed.create(conn)
            try:
                for start in range(0, len(marked), 500):
                    db.execute(conn, _MARK, [{"marked": m} for m in marked[start : start + 500]])
                db.execute(conn, _DOOM, {"cutoff": cutoff, "now": utcnow()})
                return _would_go(db, conn, removed, page)
            finally:
                gc_doomed.drop(conn)
                gc_marked.drop(conn)

        return await db.read(work)

    async def empty_repositories(self) -> list[int]:
        return [row.id for row in await self.db.fetch(_EMPTY_REPOSITORIES, {})]

    async def broken_references(self) -> list[tuple[str, str, str, str]]:
        """(repository, manifest, kind, digest) of references to blobs the repository does not link or to
        children it does not hold."""
        out = [(row.name, row.manifest, BLOB_REF, row.digest) for row in await self.db.fetch(_MISSING_LINKS, {})]
        out += [
            (row.name, row.manifest, MANIFEST_REF, row.digest) for row in await self.db.fetch(_MISSING_CHILDREN, {})
        ]
        return out


def _would_go(db: Database, conn: Connection, removed: Callable[[str, str, int], None], page: int) -> WouldGo:
    out = WouldGo()
    after_repo, after_digest = 0, ""
    while rows := db.execute(
        conn, _LINKS_WOULD_GO, {"after_repo": after_repo, "after_digest": after_digest, "limit": page}
    ).rows:
        out.links += len(rows)
        for row in rows:
            removed("link", f"{row.repository_id}@{row.digest}", 0)
        after_repo, after_digest = rows[-1].repository_id, rows[-1].digest
    after = ""
    while rows := db.execute(conn, _BLOBS_WOULD_GO, {"after": after, "limit": page}).rows:
        out.blobs += len(rows)
        for row in rows:
            out.bytes += int(row.size)
            removed("blob", row.digest, int(row.size))
        after = rows[-1].digest
    for row in db.execute(conn, _REPOSITORIES_WOULD_GO, {}).rows:
        out.repositories += 1
        removed("repository", row.name, 0)
    return out
