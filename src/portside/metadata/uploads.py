"""Upload sessions: one row per resumable upload, so any worker or instance can continue it.

A session ends when its blob is committed (`RegistryMetadata.finish_upload`, which links the blob in the same
transaction), when it is cancelled, or when upload purging removes it after it has been idle too long.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from portside.metadata.engine import Database
from portside.metadata.records import UploadRecord, utcnow
from portside.metadata.tables import uploads

_CREATE = uploads.insert().values(
    id=bindparam("id"), repository=bindparam("repository"), started_at=bindparam("now"), updated_at=bindparam("now")
)
_GET = select(uploads).where(uploads.c.id == bindparam("id"))
_MARK_DATA = (
    update(uploads).where(uploads.c.id == bindparam("upload_id")).values(updated_at=bindparam("now"), has_data=True)
)
_DELETE = delete(uploads).where(uploads.c.id == bindparam("id"))
_COUNT = select(func.count().label("n")).select_from(uploads)
_STALE = (
    select(uploads)
    .where(uploads.c.updated_at < bindparam("before"))
    .order_by(uploads.c.updated_at)
    .limit(bindparam("limit"))
)


def _upload(row: Any) -> UploadRecord:
    return UploadRecord(row.id, row.repository, row.started_at, row.updated_at, bool(row.has_data))


class UploadSessions:
    def __init__(self, database: Database) -> None:
        self.db = database

    async def create(self, upload_id: str, repository: str) -> UploadRecord:
        now = utcnow()
        params = {"id": upload_id, "repository": repository, "now": now}
        await self.db.write(lambda conn: self.db.execute(conn, _CREATE, params))
        return UploadRecord(upload_id, repository, now, now)

    async def get(self, upload_id: str) -> UploadRecord | None:
        rows = await self.db.fetch(_GET, {"id": upload_id})
        return _upload(rows[0]) if rows else None

    async def mark_data(self, upload_id: str) -> None:
        """Before bytes are stored into a session: mark it active (so purging leaves it alone) and not empty."""
        params = {"upload_id": upload_id, "now": utcnow()}
        await self.db.write(lambda conn: self.db.execute(conn, _MARK_DATA, params))

    async def delete(self, upload_id: str) -> bool:
        return await self.db.write(lambda conn: self.db.execute(conn, _DELETE, {"id": upload_id}).rowcount > 0)

    async def count(self) -> int:
        rows = await self.db.fetch(_COUNT, {})
        return int(rows[0].n) if rows else 0

    async def stale(self, updated_before: datetime, limit: int = 1000) -> list[UploadRecord]:
        """Sessions idle since before `updated_before`, the longest idle first."""
        return [_upload(row) for row in await self.db.fetch(_STALE, {"before": updated_before, "limit": limit})]
