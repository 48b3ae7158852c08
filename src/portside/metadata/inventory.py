"""What is stored, for the management API and the web UI: repositories with their sizes, detailed tag pages,
storage totals.

Each page is one query: counts, sizes and times come from correlated subqueries over the registry's tables,
never from reading manifests one by one. Sizes are deduplicated the way storage is: a blob linked to a
repository counts once for it however many manifests use it, and once for the registry however many
repositories link it. Every statement is built once (the tag pages once per sort, direction and marker, on
first use), and runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    desc,
    exists,
    func,
    null,
    or_,
    select,
)
from sqlalchemy.sql.selectable import CTE

from portside.metadata.engine import Database
from portside.metadata.tables import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

TagSort = Literal["name", "published_at"]
Marker = Literal["last", "before"]
# A tag page carries each manifest's bytes up to this size (its config digest and an index's platforms are in
# them); a larger manifest's are left out, so a page's memory stays bounded whatever was pushed.
PAYLOAD_LIMIT = 64 * 1024
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class RepositoryRow:
    name: str
    created_at: datetime
    tag_count: int
    manifest_count: int
    size: int
    """Bytes of the distinct blobs linked to the repository."""
    last_manifest_at: datetime | None
    last_tag_at: datetime | None


@dataclass(frozen=True)
class TagRow:
    name: str
    created_at: datetime
    updated_at: datetime
    digest: str
    media_type: str
    artifact_type: str | None
    manifest_size: int
    size: int
    """The manifest, its blobs and, for an index, its children and theirs: each blob once."""
    payload: bytes | None
    """The manifest's bytes when at most PAYLOAD_LIMIT."""


@dataclass(frozen=True)
class TagRows:
    rows: list[TagRow]
    more: bool
    """More tags follow in the direction read."""
    adjacent: bool
    """Tags lie on the other side of the marker (a page back after `last`, a page on before `before`)."""


@dataclass(frozen=True)
class ReferrerRow:
    subject: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int


@dataclass(frozen=True)
class Totals:
    repositories: int
    tags: int
    manifests: int
    manifest_bytes: int
    blobs: int
    blob_bytes: int
    """Each blob once, as storage holds it."""
    linked_bytes: int
    """Each blob once per repository that links it: what the repositories would take without sharing."""
    uploads: int


# ---------------------------------------------------------------------------------------------- repositories

_REPO_ID = select(repositories.c.id).where(repositories.c.name == bindparam("name")).scalar_subquery()


def _repository_columns() -> tuple[ColumnElement[Any], ...]:
    r = repositories
    tag_count = select(func.count()).select_from(tags).where(tags.c.repository_id == r.c.id).scalar_subquery()
    manifest_count = (
        select(func.count()).select_from(manifests).where(manifests.c.repository_id == r.c.id).scalar_subquery()
    )
    size = (
        select(func.coalesce(func.sum(blobs.c.size), 0))
        .select_from(repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest))
        .where(repository_blobs.c.repository_id == r.c.id)
        .scalar_subquery()
    )
    last_manifest = select(func.max(manifests.c.created_at)).where(manifests.c.repository_id == r.c.id)
    last_tag = select(func.max(tags.c.updated_at)).where(tags.c.repository_id == r.c.id)
    return (
        r.c.name,
        r.c.created_at,
        tag_count.label("tag_count"),
        manifest_count.label("manifest_count"),
        size.label("size"),
        last_manifest.scalar_subquery().label("last_manifest_at"),
        last_tag.scalar_subquery().label("last_tag_at"),
    )


def _name_filter(column: ColumnElement[str]) -> ColumnElement[bool]:
    """A case-insensitive substring match against `pattern` (built by `like_pattern`)."""
    return func.lower(column).like(bindparam("pattern"), escape=_LIKE_ESCAPE)


def like_pattern(text: str) -> str:
    escaped = text.lower().replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _under(column: ColumnElement[str]) -> ColumnElement[bool]:
    """`path` itself or any name below it: the byte range between `path/` and `path0` ('0' follows '/')."""
    return or_(column == bindparam("path"), and_(column > bindparam("low"), column < bindparam("high")))


_REPOSITORY_PAGE = (
    select(*_repository_columns())
    .where(repositories.c.name > bindparam("last"))
    .order_by(repositories.c.name)
    .limit(bindparam("limit"))
)
_REPOSITORY_PAGE_FILTERED = _REPOSITORY_PAGE.where(_name_filter(repositories.c.name))
_REPOSITORY = select(*_repository_columns()).where(repositories.c.name == bindparam("name"))
_TAGGED_UNDER = (
    select(*_repository_columns())
    .where(
        _under(repositories.c.name),
        repositories.c.name > bindparam("last"),
        exists().where(tags.c.repository_id == repositories.c.id),
    )
    .order_by(repositories.c.name)
    .limit(bindparam("limit"))
)
_ANY_UNDER = select(repositories.c.id).where(_under(repositories.c.name)).limit(1)
_LARGEST = (
    select(repositories.c.name, func.sum(blobs.c.size).label("size"))
    .select_from(
        repositories.join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id).join(
            blobs, blobs.c.digest == repository_blobs.c.digest
        )
    )
    .group_by(repositories.c.id, repositories.c.name)
    .order_by(desc("size"), repositories.c.name)
    .limit(bindparam("limit"))
)


def _tagged_size(repository_ids: Select[Any]) -> Select[Any]:
    """Bytes of the distinct blobs that tagged manifests of the repositories reach, directly or through the
    indexes that list them (GitLab's deduplicated repository size)."""
    base = (
        select(manifests.c.id.label("id"), manifests.c.repository_id.label("repository_id"))
        .join(tags, tags.c.manifest_id == manifests.c.id)
        .where(manifests.c.repository_id.in_(repository_ids))
    )
    reachable: CTE = base.cte("reachable", recursive=True)
    child = manifests.alias("child")
    listed = manifest_references.alias("listed")
    reachable = reachable.union(
        select(child.c.id, child.c.repository_id)
        .select_from(
            reachable.join(listed, listed.c.manifest_id == reachable.c.id).join(
                child, and_(child.c.digest == listed.c.digest, child.c.repository_id == reachable.c.repository_id)
            )
        )
        .where(listed.c.kind == "manifest")
    )
    referenced = select(manifest_references.c.digest).where(
        manifest_references.c.kind == "blob", manifest_references.c.manifest_id.in_(select(reachable.c.id))
    )
    return select(func.coalesce(func.sum(blobs.c.size), 0).label("size")).where(blobs.c.digest.in_(referenced))


_TAGGED_SIZE = _tagged_size(select(repositories.c.id).where(repositories.c.name == bindparam("name")))
_TAGGED_SIZE_UNDER = _tagged_size(select(repositories.c.id).where(_under(repositories.c.name)))


# ---------------------------------------------------------------------------------------------- tags


def _manifest_size() -> ColumnElement[int]:
    """The tagged manifest's size with everything it stands for, each blob counted once."""
    m = manifests
    child = manifests.alias("child")
    listed = manifest_references.alias("listed")
    # Nested two levels deep, so correlated to the tagged manifest explicitly.
    children = (
        select(child.c.id)
        .select_from(listed.join(child, child.c.digest == listed.c.digest))
        .where(listed.c.manifest_id == m.c.id, listed.c.kind == "manifest", child.c.repository_id == m.c.repository_id)
        .correlate(m)
    )
    children_bytes = (
        select(func.coalesce(func.sum(child.c.size), 0))
        .select_from(listed.join(child, child.c.digest == listed.c.digest))
        .where(listed.c.manifest_id == m.c.id, listed.c.kind == "manifest", child.c.repository_id == m.c.repository_id)
        .scalar_subquery()
    )
    ref = manifest_references.alias("ref")
    referenced = (
        select(ref.c.digest)
        .where(ref.c.kind == "blob", or_(ref.c.manifest_id == m.c.id, ref.c.manifest_id.in_(children)))
        .correlate(m)
    )
    blob_bytes = (
        select(func.coalesce(func.sum(blobs.c.size), 0)).where(blobs.c.digest.in_(referenced)).scalar_subquery()
    )
    return (m.c.size + children_bytes + blob_bytes).label("size")


def _key(table: Any, sort: TagSort) -> tuple[tuple[ColumnElement[Any], str], ...]:
    """The columns a sort orders by, with the parameter each is compared against at a marker."""
    if sort == "name":
        return ((table.c.name, "marker_name"),)
    return ((table.c.updated_at, "marker_time"), (table.c.name, "marker_name"))


def _beyond(key: tuple[tuple[ColumnElement[Any], str], ...], greater: bool, strict: bool) -> ColumnElement[bool]:
    """Rows whose key is after (`greater`) or before the marker in lexicographic order."""
    (column, param), *rest = key
    marker: Any = bindparam(param)
    if not rest:
        last: ColumnElement[bool]
        if greater:
            last = column > marker if strict else column >= marker
        else:
            last = column < marker if strict else column <= marker
        return last
    return or_(
        column > marker if greater else column < marker, and_(column == marker, _beyond(tuple(rest), greater, strict))
    )


@functools.cache
def tag_page_statement(sort: TagSort, descending: bool, marker: Marker | None, filtered: bool) -> Select[Any]:
    """A page of a repository's tags with their manifests, in the order asked for. Before a marker the rows
    come nearest first (the caller turns them round); `adjacent` says whether the other side has tags."""
    t, m = tags, manifests
    payload = case((m.c.size <= PAYLOAD_LIMIT, m.c.payload), else_=null())
    columns: list[ColumnElement[Any]] = [
        t.c.name,
        t.c.created_at,
        t.c.updated_at,
        m.c.digest,
        m.c.media_type,
        m.c.artifact_type,
        m.c.size.label("manifest_size"),
        _manifest_size(),
        payload.label("payload"),
    ]
    ascending = not descending
    if marker is not None:
        other = tags.alias("other")
        # The other side of the marker, the marker itself included.
        toward = (marker == "last") != ascending
        condition = [other.c.repository_id == _REPO_ID, _beyond(_key(other, sort), toward, strict=False)]
        if filtered:
            condition.append(_name_filter(other.c.name))
        columns.append(exists().where(*condition).label("adjacent"))
    statement = select(*columns).select_from(t.join(m, m.c.id == t.c.manifest_id)).where(t.c.repository_id == _REPO_ID)
    if filtered:
        statement = statement.where(_name_filter(t.c.name))
    forward = ascending != (marker == "before")
    if marker is not None:
        statement = statement.where(_beyond(_key(t, sort), forward, strict=True))
    order = [column if forward else column.desc() for column, _ in _key(t, sort)]
    return statement.order_by(*order).limit(bindparam("limit"))


_REFERRERS_OF = (
    select(
        manifests.c.subject_digest.label("subject"),
        manifests.c.digest,
        manifests.c.media_type,
        manifests.c.artifact_type,
        manifests.c.size,
    )
    .where(manifests.c.repository_id == _REPO_ID, manifests.c.subject_digest.in_(bindparam("subjects", expanding=True)))
    .order_by(manifests.c.created_at, manifests.c.digest)
)


# ---------------------------------------------------------------------------------------------- totals


def _count(table: Any) -> ColumnElement[int]:
    return select(func.count()).select_from(table).scalar_subquery()


_TOTALS = select(
    _count(repositories).label("repositories"),
    _count(tags).label("tags"),
    _count(manifests).label("manifests"),
    select(func.coalesce(func.sum(manifests.c.size), 0)).scalar_subquery().label("manifest_bytes"),
    _count(blobs).label("blobs"),
    select(func.coalesce(func.sum(blobs.c.size), 0)).scalar_subquery().label("blob_bytes"),
    select(func.coalesce(func.sum(blobs.c.size), 0))
    .select_from(repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest))
    .scalar_subquery()
    .label("linked_bytes"),
    _count(uploads).label("uploads"),
)


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(
        name=row.name,
        created_at=row.created_at,
        tag_count=int(row.tag_count),
        manifest_count=int(row.manifest_count),
        size=int(row.size),
        last_manifest_at=row.last_manifest_at,
        last_tag_at=row.last_tag_at,
    )


def _range(path: str) -> dict[str, str]:
    return {"path": path, "low": path + "/", "high": path + "0"}


class InventoryMetadata:
    """The read side of the management API and the UI (nothing here writes)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def repositories(self, last: str | None, limit: int, name: str | None = None) -> list[RepositoryRow]:
        """Repositories in byte order after `last`; with `name`, those whose name contains it (any case)."""
        params: dict[str, Any] = {"last": last or "", "limit": limit}
        statement = _REPOSITORY_PAGE
        if name:
            statement, params["pattern"] = _REPOSITORY_PAGE_FILTERED, like_pattern(name)
        return [_repository(row) for row in await self.db.fetch(statement, params)]

    async def repository(self, name: str) -> RepositoryRow | None:
        rows = await self.db.fetch(_REPOSITORY, {"name": name})
        return _repository(rows[0]) if rows else None

    async def tagged_under(self, path: str, last: str | None, limit: int) -> list[RepositoryRow]:
        """`path` and the repositories below it that have at least one tag, in byte order after `last`."""
        params = {**_range(path), "last": last or "", "limit": limit}
        return [_repository(row) for row in await self.db.fetch(_TAGGED_UNDER, params)]

    async def any_under(self, path: str) -> bool:
        return bool(await self.db.fetch(_ANY_UNDER, _range(path)))

    async def tagged_size(self, name: str, descendants: bool = False) -> int:
        if descendants:
            rows = await self.db.fetch(_TAGGED_SIZE_UNDER, _range(name))
        else:
            rows = await self.db.fetch(_TAGGED_SIZE, {"name": name})
        return int(rows[0].size) if rows else 0

    async def tags(
        self,
        name: str,
        limit: int,
        sort: TagSort = "name",
        descending: bool = False,
        marker: Marker | None = None,
        marker_name: str = "",
        marker_time: datetime | None = None,
        contains: str | None = None,
    ) -> TagRows:
        """A page of at most `limit` tags after (`last`) or before (`before`) the marker, in the sort's order."""
        statement = tag_page_statement(sort, descending, marker, bool(contains))
        params: dict[str, Any] = {"name": name, "limit": limit + 1, "marker_name": marker_name}
        if sort == "published_at":
            params["marker_time"] = marker_time
        if contains:
            params["pattern"] = like_pattern(contains)
        rows = list(await self.db.fetch(statement, params))
        adjacent = bool(rows[0].adjacent) if rows and marker is not None else False
        more = len(rows) > limit
        found = [
            TagRow(
                name=row.name,
                created_at=row.created_at,
                updated_at=row.updated_at,
                digest=row.digest,
                media_type=row.media_type,
                artifact_type=row.artifact_type,
                manifest_size=int(row.manifest_size),
                size=int(row.size),
                payload=None if row.payload is None else bytes(row.payload),
            )
            for row in rows[:limit]
        ]
        if marker == "before":
            found.reverse()
        return TagRows(found, more, adjacent)

    async def referrers_of(self, name: str, subjects: Sequence[str]) -> list[ReferrerRow]:
        """The referrers of each of `subjects` in the repository, oldest first."""
        if not subjects:
            return []
        rows = await self.db.fetch(_REFERRERS_OF, {"name": name, "subjects": list(subjects)})
        return [ReferrerRow(r.subject, r.digest, r.media_type, r.artifact_type, int(r.size)) for r in rows]

    async def totals(self) -> Totals:
        row = (await self.db.fetch(_TOTALS, {}))[0]
        return Totals(**{key: int(getattr(row, key)) for key in Totals.__dataclass_fields__})

    async def largest(self, limit: int) -> list[tuple[str, int]]:
        """The repositories that link the most bytes, largest first."""
        return [(row.name, int(row.size)) for row in await self.db.fetch(_LARGEST, {"limit": limit})]
