"""The statements of `portside import`: what a repository already holds, and recording what it adopts.

Imported content is recorded in the same rows, with the same values, as `MetadataStore.put_manifest` and
`link_blob` write for a push, so nothing tells an imported manifest from a pushed one. A repository's
changes are one transaction: a crash leaves each repository either as it was or with everything the
import recorded for it. Only differences are written, so importing an unchanged store again writes nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from portside.metadata.engine import Database
from portside.metadata.records import NewManifest
from portside.metadata.registry import BLOB_REF, MANIFEST_REF
from portside.metadata.tables import blobs, manifest_references, manifests, repositories, repository_blobs, tags

T = TypeVar("T")
CHUNK = 500
"""Values per IN list or multi-row statement: well below every backend's parameter limit."""


@dataclass(frozen=True)
class RecordedTag:
    digest: str
    updated_at: datetime


@dataclass
class RepositoryState:
    """What the metadata store holds for a repository (all empty when it has no such repository)."""

    blobs: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    tags: dict[str, RecordedTag] = field(default_factory=dict)


@dataclass
class ImportBatch:
    """Changes to one repository, recorded together. `manifests` come in dependency order (children before
    the indexes that list them); `tags` maps a tag to the digest it moves to, a manifest recorded already or
    in this batch."""

    blobs: list[tuple[str, int]] = field(default_factory=list)
    manifests: list[NewManifest] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.blobs or self.manifests or self.tags)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class _Statements:
    """Built once per dialect (upserts differ between SQLite and PostgreSQL), so the database keeps each."""

    def __init__(self, insert: Any) -> None:
        upsert_repository = insert(repositories).values(name=bindparam("name"), created_at=bindparam("now"))
        self.ensure_repository = upsert_repository.on_conflict_do_update(
            index_elements=[repositories.c.name], set_={"name": upsert_repository.excluded.name}
        ).returning(repositories.c.id)
        self.repository_id = select(repositories.c.id).where(repositories.c.name == bindparam("name"))
        self.any_repository = select(repositories.c.id).limit(1)
        self.linked = select(repository_blobs.c.digest).where(
            repository_blobs.c.repository_id == bindparam("repository_id")
        )
        self.manifest_digests = select(manifests.c.digest).where(
            manifests.c.repository_id == bindparam("repository_id")
        )
        self.tags = (
            select(tags.c.name, manifests.c.digest, tags.c.updated_at)
            .join(manifests, manifests.c.id == tags.c.manifest_id)
            .where(tags.c.repository_id == bindparam("repository_id"))
        )
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
        )
        self.manifest_ids = select(manifests.c.id, manifests.c.digest).where(
            manifests.c.repository_id == bindparam("repository_id"),
            manifests.c.digest.in_(bindparam("digests", expanding=True)),
        )
        self.insert_reference = (
            insert(manifest_references)
            .values(manifest_id=bindparam("manifest_id"), digest=bindparam("digest"), kind=bindparam("kind"))
            .on_conflict_do_nothing()
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
        )


@functools.cache
def _statements(dialect: str) -> _Statements:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return _Statements(postgresql.insert)
    from sqlalchemy.dialects import sqlite

    return _Statements(sqlite.insert)


class ImportStore:
    """Reads and writes of the import, run by a metadata `Database` (SQLite or PostgreSQL)."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._s = _statements("postgresql" if database.dialect == "postgresql" else "sqlite")

    async def any_repository(self) -> bool:
        """Whether the store knows any repository at all."""
        return bool(await self.db.read(lambda conn: self.db.execute(conn, self._s.any_repository, {}).rows))

    async def state(self, name: str) -> RepositoryState:
        """The repository's linked blobs, manifests and tags, as one consistent read."""
        s = self._s

        def work(conn: Connection) -> RepositoryState:
            found = self.db.execute(conn, s.repository_id, {"name": name}).rows
            if not found:
                return RepositoryState()
            params = {"repository_id": found[0].id}
            return RepositoryState(
                blobs={row.digest for row in self.db.execute(conn, s.linked, params).rows},
                manifests={row.digest for row in self.db.execute(conn, s.manifest_digests, params).rows},
                tags={
                    row.name: RecordedTag(row.digest, row.updated_at)
                    for row in self.db.execute(conn, s.tags, params).rows
                },
            )

        return await self.db.read(work)

    async def record(self, name: str, batch: ImportBatch, now: datetime) -> None:
        """Record a repository's changes in one transaction, with `now` as their time."""
        s = self._s

        def work(conn: Connection) -> None:
            run = self.db.execute
            repository_id = int(run(conn, s.ensure_repository, {"name": name, "now": now}).scalar())
            for linked in _chunks(batch.blobs):
                run(conn, s.insert_blob, [{"digest": d, "size": size, "now": now} for d, size in linked])
                run(conn, s.link_blob, [{"repository_id": repository_id, "digest": d, "now": now} for d, _ in linked])
            for recorded in _chunks(batch.manifests):
                run(conn, s.insert_manifest, [_manifest_row(repository_id, new, now) for new in recorded])
                ids = self._ids(conn, repository_id, [new.digest for new in recorded])
                references = [
                    {"manifest_id": ids[new.digest], "digest": digest, "kind": kind}
                    for new in recorded
                    for kind, digests in ((BLOB_REF, new.blob_refs), (MANIFEST_REF, new.manifest_refs))
                    for digest in dict.fromkeys(digests)
                ]
                for refs in _chunks(references):
                    run(conn, s.insert_reference, list(refs))
            targets = sorted(set(batch.tags.values()))
            ids = {}
            for digests in _chunks(targets):
                ids.update(self._ids(conn, repository_id, list(digests)))
            moves = [
                {"repository_id": repository_id, "tag": tag, "manifest_id": ids[digest], "now": now}
                for tag, digest in sorted(batch.tags.items())
            ]
            for tagged in _chunks(moves):
                run(conn, s.upsert_tag, list(tagged))

        await self.db.write(work)

    def _ids(self, conn: Connection, repository_id: int, digests: list[str]) -> dict[str, int]:
        params = {"repository_id": repository_id, "digests": digests}
        return {row.digest: int(row.id) for row in self.db.execute(conn, self._s.manifest_ids, params).rows}


def _manifest_row(repository_id: int, new: NewManifest, now: datetime) -> dict[str, Any]:
    """The manifest's row exactly as a push records it."""
    return {
        "repository_id": repository_id,
        "digest": new.digest,
        "media_type": new.media_type,
        "size": len(new.payload),
        "payload": new.payload,
        "artifact_type": new.artifact_type,
        "subject_digest": new.subject_digest,
        "annotations": json.dumps(new.annotations) if new.annotations else None,
        "now": now,
    }


__all__ = ["ImportBatch", "ImportStore", "RecordedTag", "RepositoryState"]
