"""Registry metadata: repositories, blobs and their links, manifests with their references, tags, referrers.

The source of truth for what exists. Bytes are written to storage first and recorded here afterwards, in one
transaction per change, so a crash leaves at worst unreferenced bytes, never a record of bytes that are missing.
Every statement is built once at import (or once per dialect, for upserts): SQLAlchemy then skips building and
cache-key traversal, and on SQLite the statement runs straight on the driver's cursor (engine.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.engine import Connection

from portside.metadata import outbox
from portside.metadata.engine import Database, Prepare, dialect_insert
from portside.metadata.gc import Reviews
from portside.metadata.records import BlobRecord, ManifestRecord, NewManifest, OutboxEntry, utcnow
from portside.metadata.tables import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

BLOB_REF = "blob"
MANIFEST_REF = "manifest"
# Larger pages are the whole list; the bound keeps limits inside a 64-bit SQL LIMIT.
NO_LIMIT = 2**62

_MANIFEST_COLUMNS = (
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.size,
    manifests.c.payload,
    manifests.c.artifact_type,
    manifests.c.subject_digest,
    manifests.c.annotations,
    manifests.c.keep_until,
)


def _manifest(row: Any) -> ManifestRecord:
    return ManifestRecord(
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        payload=bytes(row.payload),
        artifact_type=row.artifact_type,
        subject_digest=row.subject_digest,
        annotations_json=row.annotations,
        keep_until=row.keep_until,
    )


_REPO = select(repositories.c.id).where(repositories.c.name == bindparam("name")).scalar_subquery()
_REPOSITORY_EXISTS = select(repositories.c.id).where(repositories.c.name == bindparam("name"))
_TAGS_VERSION = select(repositories.c.tags_version).where(repositories.c.name == bindparam("name"))
_CATALOG = (
    select(repositories.c.name)
    .where(repositories.c.name > bindparam("last"))
    .order_by(repositories.c.name)
    .limit(bindparam("limit"))
)
_BLOB_IN_REPOSITORY = (
    select(blobs.c.digest, blobs.c.size)
    .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
    .where(repository_blobs.c.repository_id == _REPO, blobs.c.digest == bindparam("digest"))
)
_BLOB = select(blobs.c.digest, blobs.c.size).where(blobs.c.digest == bindparam("digest"))
_ANY_BLOB = select(blobs.c.digest).limit(1)
_REPOSITORIES_WITH_BLOB = (
    select(repositories.c.name)
    .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
    .where(repository_blobs.c.digest == bindparam("digest"))
    .order_by(repositories.c.name)
    .limit(bindparam("limit"))
)
_MANIFEST = select(*_MANIFEST_COLUMNS).where(
    manifests.c.repository_id == _REPO, manifests.c.digest == bindparam("digest")
)
_MANIFEST_BY_TAG = (
    select(*_MANIFEST_COLUMNS)
    .join(tags, tags.c.manifest_id == manifests.c.id)
    .where(tags.c.repository_id == _REPO, tags.c.name == bindparam("tag"))
)
_TAGS = (
    select(tags.c.name)
    .where(tags.c.repository_id == _REPO, tags.c.name > bindparam("last"))
    .order_by(tags.c.name)
    .limit(bindparam("limit"))
)
_TAGS_OF = (
    select(tags.c.name)
    .join(manifests, manifests.c.id == tags.c.manifest_id)
    .where(manifests.c.repository_id == _REPO, manifests.c.digest == bindparam("digest"))
    .order_by(tags.c.name)
)
_REFERRERS = (
    select(*_MANIFEST_COLUMNS)
    .where(manifests.c.repository_id == _REPO, manifests.c.subject_digest == bindparam("subject"))
    .order_by(manifests.c.created_at, manifests.c.digest)
)
_REFERRERS_OF_TYPE = _REFERRERS.where(manifests.c.artifact_type == bindparam("artifact_type"))
# Every transaction that changes a repository's content takes its row first (an upsert for a push, this for a
# delete), so transactions on one repository, garbage collection's included, never wait on each other in a cycle.
_LOCK_REPOSITORY = (
    select(repositories.c.id).where(repositories.c.name == bindparam("name")).with_for_update(key_share=True)
)
_TAG_TARGET = (
    select(manifests.c.digest)
    .join(tags, tags.c.manifest_id == manifests.c.id)
    .where(tags.c.repository_id == bindparam("repository_id"), tags.c.name == bindparam("tag"))
)
_MANIFEST_ROW = select(manifests.c.id).where(
    manifests.c.repository_id == bindparam("repository_id"), manifests.c.digest == bindparam("digest")
)
_REFERENCES = select(manifest_references.c.digest, manifest_references.c.kind).where(
    manifest_references.c.manifest_id == bindparam("manifest_id")
)
_REFERRERS_IN = select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repository_id"), manifests.c.subject_digest == bindparam("digest")
)
_LINK_STATE = select(
    repository_blobs.c.created_at,
    repository_blobs.c.touched_at,
    exists()
    .where(
        manifest_references.c.digest == repository_blobs.c.digest,
        manifest_references.c.kind == "blob",
        manifests.c.id == manifest_references.c.manifest_id,
        manifests.c.repository_id == repository_blobs.c.repository_id,
    )
    .label("referenced"),
).where(repository_blobs.c.repository_id == _REPO, repository_blobs.c.digest == bindparam("digest"))
_TOUCH_LINK = (
    update(repository_blobs)
    .where(repository_blobs.c.repository_id == _REPO, repository_blobs.c.digest == bindparam("link"))
    .values(touched_at=bindparam("now"))
)
_KEEP_MANIFEST = (
    update(manifests)
    .where(manifests.c.repository_id == _REPO, manifests.c.digest == bindparam("item"))
    .values(keep_until=bindparam("until"))
)
_KEEP_LINK = (
    update(repository_blobs)
    .where(repository_blobs.c.repository_id == _REPO, repository_blobs.c.digest == bindparam("item"))
    .values(keep_until=bindparam("until"))
)
_EXPIRED = (
    select(repositories.c.name, manifests.c.digest)
    .join(repositories, repositories.c.id == manifests.c.repository_id)
    .where(manifests.c.keep_until < bindparam("now"))
    .order_by(manifests.c.keep_until)
    .limit(bindparam("limit"))
)
_UNLINK_BLOB = delete(repository_blobs).where(
    repository_blobs.c.repository_id == _REPO, repository_blobs.c.digest == bindparam("digest")
)
_DELETE_MANIFEST = delete(manifests).where(
    manifests.c.repository_id == _REPO, manifests.c.digest == bindparam("digest")
)
_DELETE_TAG = delete(tags).where(tags.c.repository_id == _REPO, tags.c.name == bindparam("tag"))
_MANIFEST_IN_REPOSITORY = select(manifests.c.id, manifests.c.repository_id).where(
    manifests.c.repository_id == _REPO, manifests.c.digest == bindparam("digest")
)
_LINKED_BLOBS = select(repository_blobs.c.digest).where(
    repository_blobs.c.repository_id == bindparam("repository_id"),
    repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
)
_PRESENT_MANIFESTS = select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_MANIFEST_ID = select(manifests.c.id).where(
    manifests.c.repository_id == bindparam("repository_id"), manifests.c.digest == bindparam("digest")
)
_INSERT_REFERENCES = manifest_references.insert().values(
    manifest_id=bindparam("manifest_id"), digest=bindparam("digest"), kind=bindparam("kind")
)
_END_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("id"))


class _Upserts:
    """The statements that insert-or-keep, built once per dialect (SQLite and PostgreSQL differ in the class)."""

    def __init__(self, insert: Any) -> None:
        upsert_repository = insert(repositories).values(name=bindparam("name"), created_at=bindparam("now"))
        self.ensure_repository = upsert_repository.on_conflict_do_update(
            index_elements=[repositories.c.name], set_={"name": upsert_repository.excluded.name}
        ).returning(repositories.c.id)
        self.insert_blob = (
            insert(blobs)
            .values(digest=bindparam("digest"), size=bindparam("size"), created_at=bindparam("now"))
            .on_conflict_do_nothing()
        )
        link = insert(repository_blobs).values(
            repository_id=bindparam("repository_id"), digest=bindparam("digest"), created_at=bindparam("now")
        )
        # Linking a blob again counts as relying on it now (garbage collection keeps it the review delay).
        self.link_blob = link.on_conflict_do_update(
            index_elements=[repository_blobs.c.repository_id, repository_blobs.c.digest],
            set_={"touched_at": link.excluded.created_at},
        )
        self.insert_manifest = (
            insert(manifests)
            .values(
                repository_id=bindparam("repository_id"),
                digest=bindparam("digest"),
                media_type=bindparam("media_type"),
                size=bindparam("size"),
                payload=bindparam("payload"),
                artifact_type=bindparam("artifact_type"),
                subject_digest=bindparam("subject_digest"),
                annotations=bindparam("annotations"),
                created_at=bindparam("now"),
                keep_until=bindparam("keep_until"),
            )
            .on_conflict_do_nothing()
            .returning(manifests.c.id)
        )
        upsert_tag = insert(tags).values(
            repository_id=bindparam("repository_id"),
            name=bindparam("tag"),
            manifest_id=bindparam("manifest_id"),
            updated_at=bindparam("now"),
            created_at=bindparam("now"),
        )
        self.upsert_tag = upsert_tag.on_conflict_do_update(
            index_elements=[tags.c.repository_id, tags.c.name],
            set_={"manifest_id": upsert_tag.excluded.manifest_id, "updated_at": upsert_tag.excluded.updated_at},
            # Pushing a tag again to the manifest it names leaves it as it is: only a move updates it.
            where=tags.c.manifest_id != upsert_tag.excluded.manifest_id,
        )


@functools.cache
def _upserts(dialect: str) -> _Upserts:
    return _Upserts(dialect_insert(dialect))


class _MissingReferences(Exception):
    """Rolls the manifest transaction back when references are missing."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(digests)
        self.digests = digests


class RegistryMetadata:
    """`reviews` queues garbage collection's reviews with each change that may orphan something (None when
    online collection is off); `review_after` is the review delay, which a blob HEAD renews for its link."""

    def __init__(self, database: Database, reviews: Reviews | None = None, review_after: float = 24 * 3600.0) -> None:
        self.db = database
        self._u = _upserts(database.dialect)
        self.reviews = reviews
        self.review_after = review_after

    async def _one(self, statement: Any, **params: Any) -> Any:
        rows = await self.db.fetch(statement, params)
        return rows[0] if rows else None

    def _ensure_repository(self, conn: Connection, name: str, now: datetime) -> int:
        return int(self.db.execute(conn, self._u.ensure_repository, {"name": name, "now": now}).scalar())

    def _lock_repository(self, conn: Connection, name: str) -> int | None:
        found = self.db.execute(conn, _LOCK_REPOSITORY, {"name": name}).scalar()
        return None if found is None else int(found)

    # ------------------------------------------------------------------ repositories

    async def repository_exists(self, name: str) -> bool:
        return await self._one(_REPOSITORY_EXISTS, name=name) is not None

    async def catalog(self, last: str | None, limit: int) -> list[str]:
        return [row.name for row in await self.db.fetch(_CATALOG, {"last": last or "", "limit": limit})]

    # ------------------------------------------------------------------ blobs

    async def blob_in_repository(self, name: str, digest: str) -> BlobRecord | None:
        row = await self._one(_BLOB_IN_REPOSITORY, name=name, digest=digest)
        return None if row is None else BlobRecord(row.digest, row.size)

    async def blob(self, digest: str) -> BlobRecord | None:
        row = await self._one(_BLOB, digest=digest)
        return None if row is None else BlobRecord(row.digest, row.size)

    async def any_blob(self) -> bool:
        """Whether the store records any blob at all."""
        return await self._one(_ANY_BLOB) is not None

    async def repositories_with_blob(self, digest: str, limit: int = 100) -> list[str]:
        return [row.name for row in await self.db.fetch(_REPOSITORIES_WITH_BLOB, {"digest": digest, "limit": limit})]

    def _link_blob(self, conn: Connection, name: str, digest: str, size: int, event: str) -> None:
        now = utcnow()
        repository_id = self._ensure_repository(conn, name, now)
        self.db.execute(conn, self._u.insert_blob, {"digest": digest, "size": size, "now": now})
        self.db.execute(conn, self._u.link_blob, {"repository_id": repository_id, "digest": digest, "now": now})
        if self.reviews is not None:  # no manifest may ever come for it
            self.reviews.links(conn, repository_id, [digest], event)

    async def link_blob(
        self,
        name: str,
        digest: str,
        size: int,
        entries: Sequence[OutboxEntry] = (),
        event: str = "blob_mount",
        before: Prepare | None = None,
    ) -> None:
        """Record that the blob's bytes are stored and that `name` may use them; `before` (a blocking step
        that makes the bytes durable) runs first, off the loop, and the record is made only if it succeeds."""

        def work(conn: Connection) -> None:
            self._link_blob(conn, name, digest, size, event)
            outbox.record(self.db, conn, entries)

        await self.db.write(work, before)

    async def finish_upload(
        self,
        upload_id: str,
        name: str,
        digest: str,
        size: int,
        entries: Sequence[OutboxEntry] = (),
        before: Prepare | None = None,
    ) -> None:
        """Link the committed blob into the repository and end its upload session, atomically (after
        `before`, as in `link_blob`)."""

        def work(conn: Connection) -> None:
            self._link_blob(conn, name, digest, size, "blob_upload")
            self.db.execute(conn, _END_UPLOAD, {"id": upload_id})
            outbox.record(self.db, conn, entries)

        await self.db.write(work, before)

    async def unlink_blob(self, name: str, digest: str, entries: Sequence[OutboxEntry] = ()) -> bool:
        def work(conn: Connection) -> bool:
            repository_id = self._lock_repository(conn, name)
            if repository_id is None:
                return False
            if self.db.execute(conn, _UNLINK_BLOB, {"name": name, "digest": digest}).rowcount == 0:
                return False
            outbox.record(self.db, conn, entries)
            if self.reviews is not None:
                self.reviews.blobs(conn, [digest], "blob_unlink")
                self.reviews.repository(conn, repository_id, "blob_unlink")
            return True

        return bool(await self.db.write(work))

    async def cache_until(self, name: str, digest: str, until: datetime, manifest: bool) -> None:
        """A pull-through cache served the manifest (or the blob) again: keep it until `until`."""
        statement = _KEEP_MANIFEST if manifest else _KEEP_LINK
        params = {"name": name, "item": digest, "until": until}
        await self.db.write(lambda conn: self.db.execute(conn, statement, params))

    async def expired_cache(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(repository, digest) of cached manifests no pull kept past `now`, oldest first."""
        rows = await self.db.fetch(_EXPIRED, {"now": now, "limit": limit})
        return [(row.name, row.digest) for row in rows]

    async def keep_link(self, name: str, digest: str) -> bool:
        """A client was told that `name` holds the blob: keep the link for at least the review delay even if
        no manifest comes to reference it. False when the link is gone."""
        row = await self._one(_LINK_STATE, name=name, digest=digest)
        if row is None:
            return False
        if row.referenced:
            return True  # a manifest keeps it; deleting that manifest queues a review the delay later
        params = {"name": name, "link": digest, "now": utcnow()}
        return bool(await self.db.write(lambda conn: self.db.execute(conn, _TOUCH_LINK, params).rowcount > 0))

    # ------------------------------------------------------------------ manifests and tags

    async def manifest(self, name: str, digest: str) -> ManifestRecord | None:
        row = await self._one(_MANIFEST, name=name, digest=digest)
        return None if row is None else _manifest(row)

    async def manifest_by_tag(self, name: str, tag: str) -> ManifestRecord | None:
        row = await self._one(_MANIFEST_BY_TAG, name=name, tag=tag)
        return None if row is None else _manifest(row)

    def _missing(
        self, conn: Connection, repository_id: int, blob_refs: Iterable[str], manifest_refs: Iterable[str]
    ) -> list[str]:
        wanted_blobs, wanted_manifests = set(blob_refs), set(manifest_refs)
        found: set[str] = set()
        if wanted_blobs:
            params = {"repository_id": repository_id, "digests": list(wanted_blobs)}
            found.update(row.digest for row in self.db.execute(conn, _LINKED_BLOBS, params).rows)
        if wanted_manifests:
            params = {"repository_id": repository_id, "digests": list(wanted_manifests)}
            found.update(row.digest for row in self.db.execute(conn, _PRESENT_MANIFESTS, params).rows)
        ordered = [*dict.fromkeys([*blob_refs, *manifest_refs])]
        return [digest for digest in ordered if digest not in found]

    async def put_manifest(
        self,
        name: str,
        new: NewManifest,
        tag: str | None = None,
        entries: Sequence[OutboxEntry] = (),
        *,
        cached_until: datetime | None = None,
    ) -> list[str]:
        """Record the manifest (and move `tag` to it) unless references are missing; returns those missing.

        With `cached_until` it is a pull-through cache's copy: recorded whether or not its content has been
        fetched yet (its references are recorded all the same), and kept until then."""
        now = utcnow()

        def work(conn: Connection) -> None:
            self._put_manifest(conn, name, new, tag, now, cached_until)
            outbox.record(self.db, conn, entries)

        try:
            await self.db.write(work)
        except _MissingReferences as exc:
            return exc.digests
        return []

    def _put_manifest(
        self, conn: Connection, name: str, new: NewManifest, tag: str | None, now: datetime, cached: datetime | None
    ) -> None:
        repository_id = self._ensure_repository(conn, name, now)
        missing = [] if cached is not None else self._missing(conn, repository_id, new.blob_refs, new.manifest_refs)
        if missing:
            raise _MissingReferences(missing)
        inserted = self.db.execute(
            conn,
            self._u.insert_manifest,
            {
                "repository_id": repository_id,
                "digest": new.digest,
                "media_type": new.media_type,
                "size": len(new.payload),
                "payload": new.payload,
                "artifact_type": new.artifact_type,
                "subject_digest": new.subject_digest,
                "annotations": json.dumps(new.annotations) if new.annotations else None,
                "now": now,
                "keep_until": cached,
            },
        )
        manifest_id = inserted.scalar()
        if manifest_id is None:
            params = {"repository_id": repository_id, "digest": new.digest}
            manifest_id = self.db.execute(conn, _MANIFEST_ID, params).scalar()
        else:
            refs = [{"manifest_id": manifest_id, "digest": d, "kind": BLOB_REF} for d in set(new.blob_refs)]
            refs += [{"manifest_id": manifest_id, "digest": d, "kind": MANIFEST_REF} for d in set(new.manifest_refs)]
            if refs:
                self.db.execute(conn, _INSERT_REFERENCES, refs)
            if tag is None and self.reviews is not None and cached is None:  # no tag yet: perhaps never one
                self.reviews.manifests(conn, repository_id, [new.digest], "manifest_upload")
        if tag is not None:
            self._upsert_tag(conn, repository_id, tag, manifest_id, new.digest, now)

    def _upsert_tag(
        self, conn: Connection, repository_id: int, tag: str, manifest_id: int, digest: str, now: datetime
    ) -> None:
        if self.reviews is not None:  # the manifest the tag leaves may be left with none
            previous = self.db.execute(conn, _TAG_TARGET, {"repository_id": repository_id, "tag": tag}).scalar()
            if previous is not None and previous != digest:
                self.reviews.manifests(conn, repository_id, [previous], "tag_switch")
        params = {"repository_id": repository_id, "tag": tag, "manifest_id": manifest_id, "now": now}
        self.db.execute(conn, self._u.upsert_tag, params)

    async def delete_manifest(self, name: str, digest: str, entries: Sequence[OutboxEntry] = ()) -> bool:
        """Delete the manifest, its references and every tag on it."""

        def work(conn: Connection) -> bool:
            repository_id = self._lock_repository(conn, name)
            if repository_id is None:
                return False
            params = {"repository_id": repository_id, "digest": digest}
            manifest_id = self.db.execute(conn, _MANIFEST_ROW, params).scalar()
            if manifest_id is None:
                return False
            references = self.db.execute(conn, _REFERENCES, {"manifest_id": manifest_id}).rows
            referrers = [row.digest for row in self.db.execute(conn, _REFERRERS_IN, params).rows]
            self.db.execute(conn, _DELETE_MANIFEST, {"name": name, "digest": digest})
            outbox.record(self.db, conn, entries)
            if self.reviews is not None:  # what it kept may now be kept by nothing
                blob_refs = {r.digest for r in references if r.kind == BLOB_REF}
                self.reviews.links(conn, repository_id, blob_refs, "manifest_delete")
                children = {r.digest for r in references if r.kind == MANIFEST_REF}
                self.reviews.manifests(conn, repository_id, children | set(referrers), "manifest_delete")
                self.reviews.repository(conn, repository_id, "manifest_delete")
            return True

        return bool(await self.db.write(work))

    async def set_tag(self, name: str, tag: str, digest: str) -> bool:
        """Point `tag` at an existing manifest; False when the repository has no such manifest."""
        now = utcnow()

        def work(conn: Connection) -> bool:
            if self._lock_repository(conn, name) is None:
                return False
            rows = self.db.execute(conn, _MANIFEST_IN_REPOSITORY, {"name": name, "digest": digest}).rows
            if not rows:
                return False
            self._upsert_tag(conn, rows[0].repository_id, tag, rows[0].id, digest, now)
            return True

        return await self.db.write(work)

    async def delete_tag(self, name: str, tag: str, entries: Sequence[OutboxEntry] = ()) -> bool:
        def work(conn: Connection) -> bool:
            repository_id = self._lock_repository(conn, name)
            if repository_id is None:
                return False
            target = self.db.execute(conn, _TAG_TARGET, {"repository_id": repository_id, "tag": tag}).scalar()
            if target is None:
                return False
            self.db.execute(conn, _DELETE_TAG, {"name": name, "tag": tag})
            outbox.record(self.db, conn, entries)
            if self.reviews is not None:
                self.reviews.manifests(conn, repository_id, [target], "tag_delete")
            return True

        return bool(await self.db.write(work))

    async def tags(self, name: str, last: str | None = None, limit: int | None = None) -> list[str]:
        params = {"name": name, "last": last or "", "limit": NO_LIMIT if limit is None else limit}
        return [row.name for row in await self.db.fetch(_TAGS, params)]

    async def tags_version(self, name: str) -> int | None:
        """A number that changes whenever a tag of the repository appears or goes; None for no repository."""
        row = await self._one(_TAGS_VERSION, name=name)
        return None if row is None else int(row.tags_version)

    async def tags_of(self, name: str, digest: str) -> list[str]:
        return [row.name for row in await self.db.fetch(_TAGS_OF, {"name": name, "digest": digest})]

    async def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[ManifestRecord]:
        if artifact_type is None:
            rows = await self.db.fetch(_REFERRERS, {"name": name, "subject": subject})
        else:
            params = {"name": name, "subject": subject, "artifact_type": artifact_type}
            rows = await self.db.fetch(_REFERRERS_OF_TYPE, params)
        return [_manifest(row) for row in rows]
