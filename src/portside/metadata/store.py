"""The metadata store: every SQL statement Portside runs, behind typed async methods.

Each method is a plain function of a connection, handed to the `Database` (engine.py) as a read or as one
write transaction.

The store is the source of truth for what exists. Bytes are written to storage first and recorded here
afterwards, in one transaction per change, so a crash leaves at worst unreferenced bytes, never a record of
bytes that are missing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from portside.metadata.engine import Database
from portside.metadata.tables import (
    blobs,
    manifest_references,
    manifests,
    notification_outbox,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

BLOB_REF = "blob"
MANIFEST_REF = "manifest"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BlobRecord:
    digest: str
    size: int


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    payload: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations_json: str | None

    @property
    def annotations(self) -> dict[str, str] | None:
        """Parsed when asked for: only the referrers API shows them, and every pull would pay for it."""
        return json.loads(self.annotations_json) if self.annotations_json else None


@dataclass(frozen=True)
class NewManifest:
    """A validated manifest ready to be recorded, with what it references."""

    digest: str
    media_type: str
    payload: bytes
    artifact_type: str | None = None
    subject_digest: str | None = None
    annotations: dict[str, str] | None = None
    blob_refs: Sequence[str] = field(default_factory=tuple)
    manifest_refs: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class OutboxEntry:
    """An event for one notification endpoint, recorded with the change it describes."""

    endpoint: str
    event: str


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint: str
    event: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        endpoint=row.endpoint,
        event=row.event,
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


@dataclass(frozen=True)
class UploadRecord:
    id: str
    repository: str
    started_at: datetime
    updated_at: datetime
    has_data: bool = False
    """Whether bytes may have been stored; a session without is empty, with no need to ask storage."""


def _upload(row: Any) -> UploadRecord:
    return UploadRecord(row.id, row.repository, row.started_at, row.updated_at, bool(row.has_data))


_MANIFEST_COLUMNS = (
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.size,
    manifests.c.payload,
    manifests.c.artifact_type,
    manifests.c.subject_digest,
    manifests.c.annotations,
)


def _manifest(row: Row[Any]) -> ManifestRecord:
    return ManifestRecord(
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        payload=bytes(row.payload),
        artifact_type=row.artifact_type,
        subject_digest=row.subject_digest,
        annotations_json=row.annotations,
    )


class _MissingReferences(Exception):
    """Rolls the manifest transaction back when references are missing."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(digests)
        self.digests = digests


def _repo_id(name: str) -> Any:
    return select(repositories.c.id).where(repositories.c.name == name).scalar_subquery()


# The statements read on every pull, built once: SQLAlchemy remembers a statement object's cache key, so a
# prebuilt statement skips both construction and cache-key traversal, most of a lookup's cost.
_REPO = select(repositories.c.id).where(repositories.c.name == bindparam("name")).scalar_subquery()
NO_LIMIT = 2**62
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
_UPLOAD = select(uploads).where(uploads.c.id == bindparam("id"))


class _Writes:
    """The statements of every push, built once per dialect (upserts differ between SQLite and PostgreSQL)."""

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
        self.link_blob = (
            insert(repository_blobs)
            .values(repository_id=bindparam("repository_id"), digest=bindparam("digest"), created_at=bindparam("now"))
            .on_conflict_do_nothing()
        )
        self.linked_blobs = select(repository_blobs.c.digest).where(
            repository_blobs.c.repository_id == bindparam("repository_id"),
            repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
        )
        self.present_manifests = select(manifests.c.digest).where(
            manifests.c.repository_id == bindparam("repository_id"),
            manifests.c.digest.in_(bindparam("digests", expanding=True)),
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
            )
            .on_conflict_do_nothing()
            .returning(manifests.c.id)
        )
        self.manifest_id = select(manifests.c.id).where(
            manifests.c.repository_id == bindparam("repository_id"), manifests.c.digest == bindparam("digest")
        )
        self.insert_references = (
            insert(manifest_references)
            .values(manifest_id=bindparam("manifest_id"), digest=bindparam("digest"), kind=bindparam("kind"))
            .on_conflict_do_nothing()
        )
        upsert_tag = insert(tags).values(
            repository_id=bindparam("repository_id"),
            name=bindparam("tag"),
            manifest_id=bindparam("manifest_id"),
            updated_at=bindparam("now"),
        )
        self.upsert_tag = upsert_tag.on_conflict_do_update(
            index_elements=[tags.c.repository_id, tags.c.name],
            set_={"manifest_id": upsert_tag.excluded.manifest_id, "updated_at": upsert_tag.excluded.updated_at},
        )
        self.create_upload = uploads.insert().values(
            id=bindparam("id"),
            repository=bindparam("repository"),
            started_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        self.delete_upload = delete(uploads).where(uploads.c.id == bindparam("id"))
        self.insert_event = notification_outbox.insert().values(
            endpoint=bindparam("endpoint"),
            event=bindparam("event"),
            created_at=bindparam("created_at"),
            next_attempt_at=bindparam("next_attempt_at"),
        )


@functools.cache
def _writes(dialect: str) -> _Writes:
    """Built on first use, importing only the dialect in use."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return _Writes(postgresql.insert)
    from sqlalchemy.dialects import sqlite

    return _Writes(sqlite.insert)


class MetadataStore:
    def __init__(self, database: Database) -> None:
        self.db = database
        self._w = _writes("postgresql" if database.dialect == "postgresql" else "sqlite")

    async def close(self) -> None:
        await self.db.dispose()

    async def migrate(self) -> None:
        """Bring the schema up to date (Alembic is imported only here, so serving processes skip it)."""
        from portside.metadata.engine import migrate

        await migrate(self.db)

    async def _all(self, statement: Any) -> Sequence[Row[Any]]:
        return await self.db.read(lambda conn: conn.execute(statement).all())

    async def _first(self, statement: Any) -> Row[Any] | None:
        return await self.db.read(lambda conn: conn.execute(statement).first())

    async def _fetch(self, prebuilt: Any, **params: Any) -> Sequence[Any]:
        """Rows of one of the module's prebuilt queries (never an ad hoc one: the database keeps each)."""
        return await self.db.fetch(prebuilt, params)

    async def _fetch_one(self, prebuilt: Any, **params: Any) -> Any:
        rows = await self.db.fetch(prebuilt, params)
        return rows[0] if rows else None

    def _ensure_repository(self, conn: Connection, name: str, now: datetime) -> int:
        return int(self.db.execute(conn, self._w.ensure_repository, {"name": name, "now": now}).scalar())

    def _outbox(self, conn: Connection, entries: Sequence[OutboxEntry]) -> None:
        if entries:
            now = utcnow()
            self.db.execute(
                conn,
                self._w.insert_event,
                [
                    {"endpoint": e.endpoint, "event": e.event, "created_at": now, "next_attempt_at": now}
                    for e in entries
                ],
            )

    async def ping(self) -> None:
        await self._first(select(1))

    # ------------------------------------------------------------------ repositories

    async def repository_exists(self, name: str) -> bool:
        return await self._fetch_one(_REPOSITORY_EXISTS, name=name) is not None

    async def catalog(self, last: str | None, limit: int) -> list[str]:
        return [row.name for row in await self._fetch(_CATALOG, last=last or "", limit=limit)]

    # ------------------------------------------------------------------ blobs

    async def blob_in_repository(self, name: str, digest: str) -> BlobRecord | None:
        row = await self._fetch_one(_BLOB_IN_REPOSITORY, name=name, digest=digest)
        return None if row is None else BlobRecord(row.digest, row.size)

    async def blob(self, digest: str) -> BlobRecord | None:
        row = await self._fetch_one(_BLOB, digest=digest)
        return None if row is None else BlobRecord(row.digest, row.size)

    async def repositories_with_blob(self, digest: str, limit: int = 100) -> list[str]:
        stmt = (
            select(repositories.c.name)
            .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
            .where(repository_blobs.c.digest == digest)
            .order_by(repositories.c.name)
            .limit(limit)
        )
        return [row.name for row in await self._all(stmt)]

    def _link_blob(self, conn: Connection, name: str, digest: str, size: int) -> None:
        now = utcnow()
        repository_id = self._ensure_repository(conn, name, now)
        self.db.execute(conn, self._w.insert_blob, {"digest": digest, "size": size, "now": now})
        self.db.execute(conn, self._w.link_blob, {"repository_id": repository_id, "digest": digest, "now": now})

    async def link_blob(self, name: str, digest: str, size: int, outbox: Sequence[OutboxEntry] = ()) -> None:
        """Record that the blob's bytes are stored and that `name` may use them."""

        def work(conn: Connection) -> None:
            self._link_blob(conn, name, digest, size)
            self._outbox(conn, outbox)

        await self.db.write(work)

    def _delete_counting(self, statement: Any, outbox: Sequence[OutboxEntry]) -> Any:
        """A delete whose events are recorded only when it removed something."""

        def work(conn: Connection) -> bool:
            removed = bool(conn.execute(statement).rowcount)
            if removed:
                self._outbox(conn, outbox)
            return removed

        return work

    async def unlink_blob(self, name: str, digest: str, outbox: Sequence[OutboxEntry] = ()) -> bool:
        statement = delete(repository_blobs).where(
            repository_blobs.c.repository_id == _repo_id(name), repository_blobs.c.digest == digest
        )
        return bool(await self.db.write(self._delete_counting(statement, outbox)))

    # ------------------------------------------------------------------ manifests and tags

    async def manifest(self, name: str, digest: str) -> ManifestRecord | None:
        row = await self._fetch_one(_MANIFEST, name=name, digest=digest)
        return None if row is None else _manifest(row)

    async def manifest_by_tag(self, name: str, tag: str) -> ManifestRecord | None:
        row = await self._fetch_one(_MANIFEST_BY_TAG, name=name, tag=tag)
        return None if row is None else _manifest(row)

    def _missing(
        self, conn: Connection, repository_id: int, blob_refs: Iterable[str], manifest_refs: Iterable[str]
    ) -> list[str]:
        wanted_blobs, wanted_manifests = set(blob_refs), set(manifest_refs)
        found: set[str] = set()
        if wanted_blobs:
            params = {"repository_id": repository_id, "digests": list(wanted_blobs)}
            found.update(row.digest for row in self.db.execute(conn, self._w.linked_blobs, params).rows)
        if wanted_manifests:
            params = {"repository_id": repository_id, "digests": list(wanted_manifests)}
            found.update(row.digest for row in self.db.execute(conn, self._w.present_manifests, params).rows)
        ordered = [*dict.fromkeys([*blob_refs, *manifest_refs])]
        return [digest for digest in ordered if digest not in found]

    async def put_manifest(
        self, name: str, new: NewManifest, tag: str | None = None, outbox: Sequence[OutboxEntry] = ()
    ) -> list[str]:
        """Record the manifest (and move `tag` to it) unless references are missing; returns those missing."""
        now = utcnow()

        def work(conn: Connection) -> None:
            self._put_manifest(conn, name, new, tag, now)
            self._outbox(conn, outbox)

        try:
            await self.db.write(work)
        except _MissingReferences as exc:
            return exc.digests
        return []

    def _put_manifest(self, conn: Connection, name: str, new: NewManifest, tag: str | None, now: datetime) -> None:
        repository_id = self._ensure_repository(conn, name, now)
        missing = self._missing(conn, repository_id, new.blob_refs, new.manifest_refs)
        if missing:
            raise _MissingReferences(missing)
        inserted = self.db.execute(
            conn,
            self._w.insert_manifest,
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
            },
        )
        manifest_id = inserted.scalar()
        if manifest_id is None:
            params = {"repository_id": repository_id, "digest": new.digest}
            manifest_id = self.db.execute(conn, self._w.manifest_id, params).scalar()
        else:
            refs = [{"manifest_id": manifest_id, "digest": d, "kind": BLOB_REF} for d in set(new.blob_refs)]
            refs += [{"manifest_id": manifest_id, "digest": d, "kind": MANIFEST_REF} for d in set(new.manifest_refs)]
            if refs:
                self.db.execute(conn, self._w.insert_references, refs)
        if tag is not None:
            self._upsert_tag(conn, repository_id, tag, manifest_id, now)

    def _upsert_tag(self, conn: Connection, repository_id: int, tag: str, manifest_id: int, now: datetime) -> None:
        params = {"repository_id": repository_id, "tag": tag, "manifest_id": manifest_id, "now": now}
        self.db.execute(conn, self._w.upsert_tag, params)

    async def delete_manifest(self, name: str, digest: str, outbox: Sequence[OutboxEntry] = ()) -> bool:
        """Delete the manifest, its references and every tag on it."""
        statement = delete(manifests).where(manifests.c.repository_id == _repo_id(name), manifests.c.digest == digest)
        return bool(await self.db.write(self._delete_counting(statement, outbox)))

    async def set_tag(self, name: str, tag: str, digest: str) -> bool:
        """Point `tag` at an existing manifest; False when the repository has no such manifest."""
        now = utcnow()

        def work(conn: Connection) -> bool:
            row = conn.execute(
                select(manifests.c.id, manifests.c.repository_id).where(
                    manifests.c.repository_id == _repo_id(name), manifests.c.digest == digest
                )
            ).first()
            if row is None:
                return False
            self._upsert_tag(conn, row.repository_id, tag, row.id, now)
            return True

        return await self.db.write(work)

    async def delete_tag(self, name: str, tag: str, outbox: Sequence[OutboxEntry] = ()) -> bool:
        statement = delete(tags).where(tags.c.repository_id == _repo_id(name), tags.c.name == tag)
        return bool(await self.db.write(self._delete_counting(statement, outbox)))

    async def tags(self, name: str, last: str | None, limit: int | None) -> list[str]:
        rows = await self._fetch(_TAGS, name=name, last=last or "", limit=NO_LIMIT if limit is None else limit)
        return [row.name for row in rows]

    async def tags_version(self, name: str) -> int | None:
        """A number that changes whenever a tag of the repository appears or goes; None for no repository."""
        row = await self._fetch_one(_TAGS_VERSION, name=name)
        return None if row is None else int(row.tags_version)

    async def tags_of(self, name: str, digest: str) -> list[str]:
        return [row.name for row in await self._fetch(_TAGS_OF, name=name, digest=digest)]

    async def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[ManifestRecord]:
        stmt = (
            select(*_MANIFEST_COLUMNS)
            .where(manifests.c.repository_id == _repo_id(name), manifests.c.subject_digest == subject)
            .order_by(manifests.c.created_at, manifests.c.digest)
        )
        if artifact_type is not None:
            stmt = stmt.where(manifests.c.artifact_type == artifact_type)
        return [_manifest(row) for row in await self._all(stmt)]

    # ------------------------------------------------------------------ uploads

    async def create_upload(self, upload_id: str, repository: str) -> UploadRecord:
        now = utcnow()
        params = {"id": upload_id, "repository": repository, "now": now}
        await self.db.write(lambda conn: self.db.execute(conn, self._w.create_upload, params))
        return UploadRecord(upload_id, repository, now, now)

    async def upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._fetch_one(_UPLOAD, id=upload_id)
        return None if row is None else _upload(row)

    async def mark_upload_data(self, upload_id: str) -> None:
        """Before bytes are stored into a session: mark it active (so purging leaves it alone) and not empty."""
        statement = update(uploads).where(uploads.c.id == upload_id).values(updated_at=utcnow(), has_data=True)
        await self.db.write(lambda conn: conn.execute(statement))

    async def delete_upload(self, upload_id: str) -> bool:
        statement = delete(uploads).where(uploads.c.id == upload_id)
        return bool(await self.db.write(lambda conn: conn.execute(statement).rowcount))

    async def finish_upload(
        self, upload_id: str, name: str, digest: str, size: int, outbox: Sequence[OutboxEntry] = ()
    ) -> None:
        """Link the committed blob into the repository and end the session, atomically."""

        def work(conn: Connection) -> None:
            self._link_blob(conn, name, digest, size)
            self.db.execute(conn, self._w.delete_upload, {"id": upload_id})
            self._outbox(conn, outbox)

        await self.db.write(work)

    async def upload_count(self) -> int:
        row = await self._first(select(func.count().label("n")).select_from(uploads))
        return int(row.n) if row is not None else 0

    async def stale_uploads(self, updated_before: datetime, limit: int = 1000) -> list[UploadRecord]:
        stmt = select(uploads).where(uploads.c.updated_at < updated_before).order_by(uploads.c.updated_at).limit(limit)
        return [_upload(row) for row in await self._all(stmt)]

    # ------------------------------------------------------------------ notification outbox

    async def add_events(self, outbox: Sequence[OutboxEntry]) -> None:
        """Record events that go with no change (pulls)."""
        if outbox:
            await self.db.write(lambda conn: self._outbox(conn, outbox))

    async def due_endpoints(self) -> dict[str, datetime]:
        """Endpoints with undelivered events, and when the first of them may be tried."""
        o = notification_outbox.c
        head = select(o.endpoint, func.min(o.id).label("head")).where(o.delivered_at.is_(None)).group_by(o.endpoint)
        joined = head.subquery()
        stmt = select(o.endpoint, o.next_attempt_at, o.claimed_until).join(joined, o.id == joined.c.head)
        return {
            row.endpoint: max(row.next_attempt_at, row.claimed_until or row.next_attempt_at)
            for row in await self._all(stmt)
        }

    async def claim_deliveries(self, endpoint: str, limit: int, lease_seconds: float) -> list[Delivery]:
        """The oldest undelivered events of one endpoint, leased to the caller, when their turn has come and no
        one else holds a lease on that endpoint (so one endpoint's events go out in order)."""
        o = notification_outbox.c
        now = utcnow()

        def work(conn: Connection) -> list[Delivery]:
            rows = conn.execute(
                select(notification_outbox)
                .where(o.endpoint == endpoint, o.delivered_at.is_(None))
                .order_by(o.id)
                .limit(limit)
                .with_for_update()  # PostgreSQL: concurrent claimers queue here; SQLite holds the write lock
            ).all()
            if not rows or rows[0].next_attempt_at > now:
                return []
            if any(row.claimed_until is not None and row.claimed_until > now for row in rows):
                return []
            until = now + timedelta(seconds=lease_seconds)
            conn.execute(update(notification_outbox).where(o.id.in_([r.id for r in rows])).values(claimed_until=until))
            return [_delivery(row) for row in rows]

        return await self.db.write(work)

    async def mark_delivered(self, ids: Sequence[int]) -> None:
        statement = (
            update(notification_outbox)
            .where(notification_outbox.c.id.in_(ids))
            .values(delivered_at=utcnow(), claimed_until=None, last_error=None)
        )
        await self.db.write(lambda conn: conn.execute(statement))

    async def mark_failed(self, ids: Sequence[int], error: str, retry_at: datetime) -> None:
        o = notification_outbox.c
        statement = (
            update(notification_outbox)
            .where(o.id.in_(ids))
            .values(attempts=o.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at, claimed_until=None)
        )
        await self.db.write(lambda conn: conn.execute(statement))

    async def deliveries(
        self, status: str | None = None, endpoint: str | None = None, failed_after: int = 1, limit: int = 1000
    ) -> list[Delivery]:
        """Outbox rows, oldest first; `status` is pending, failed (at least `failed_after` attempts) or delivered."""
        o = notification_outbox.c
        stmt = select(notification_outbox).order_by(o.id).limit(limit)
        if endpoint is not None:
            stmt = stmt.where(o.endpoint == endpoint)
        if status == "delivered":
            stmt = stmt.where(o.delivered_at.is_not(None))
        elif status == "pending":
            stmt = stmt.where(o.delivered_at.is_(None))
        elif status == "failed":
            stmt = stmt.where(o.delivered_at.is_(None), o.attempts >= failed_after)
        return [_delivery(row) for row in await self._all(stmt)]

    async def replay(
        self, ids: Sequence[int] = (), endpoint: str | None = None, failed_after: int | None = None
    ) -> int:
        """Queue deliveries again, now: those in `ids`, or those with at least `failed_after` failed attempts."""
        o = notification_outbox.c
        stmt = update(notification_outbox).values(
            delivered_at=None, attempts=0, next_attempt_at=utcnow(), claimed_until=None
        )
        if ids:
            stmt = stmt.where(o.id.in_(ids))
        elif failed_after is not None:
            stmt = stmt.where(o.delivered_at.is_(None), o.attempts >= failed_after)
        else:
            return 0
        if endpoint is not None:
            stmt = stmt.where(o.endpoint == endpoint)
        return int(await self.db.write(lambda conn: conn.execute(stmt).rowcount))

    async def pending_counts(self) -> dict[str, int]:
        o = notification_outbox.c
        stmt = select(o.endpoint, func.count().label("n")).where(o.delivered_at.is_(None)).group_by(o.endpoint)
        return {row.endpoint: int(row.n) for row in await self._all(stmt)}

    async def prune_delivered(self, before: datetime) -> int:
        statement = delete(notification_outbox).where(notification_outbox.c.delivered_at < before)
        return int(await self.db.write(lambda conn: conn.execute(statement).rowcount))

    async def counts(self) -> dict[str, int]:
        """Row counts per table, for tooling and tests."""
        tables = (repositories, blobs, repository_blobs, manifests, manifest_references, tags, uploads)

        def work(conn: Connection) -> dict[str, int]:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables}

        return await self.db.read(work)


__all__ = [
    "BLOB_REF",
    "MANIFEST_REF",
    "BlobRecord",
    "Delivery",
    "ManifestRecord",
    "MetadataStore",
    "NewManifest",
    "OutboxEntry",
    "UploadRecord",
]
