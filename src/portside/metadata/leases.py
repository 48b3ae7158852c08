"""Job leases: which worker of which instance runs an exclusive background job now, and how its runs went.

A lease is a row with a holder and an expiry. Taking it is one write transaction (the row is locked on
PostgreSQL; SQLite serialises writers), so two claimants never both win; a holder that dies stops renewing and
its lease lapses, so a crash never blocks a job for longer than the lease.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from portside.metadata.engine import Database, dialect_insert
from portside.metadata.records import JobRecord, utcnow
from portside.metadata.tables import job_leases

_j = job_leases.c

_LOCK = select(job_leases).where(_j.name == bindparam("job")).with_for_update()
_TAKE = (
    update(job_leases)
    .where(_j.name == bindparam("job"))
    .values(holder=bindparam("owner"), lease_until=bindparam("until"), last_started_at=bindparam("now"))
)
_RENEW = (
    update(job_leases)
    .where(_j.name == bindparam("job"), _j.holder == bindparam("owner"))
    .values(lease_until=bindparam("until"))
)
_ENDING = update(job_leases).where(_j.name == bindparam("job"), _j.holder == bindparam("owner"))
_SUCCEEDED = _ENDING.values(
    holder=None,
    lease_until=None,
    last_finished_at=bindparam("now"),
    last_success_at=bindparam("now"),
    last_error=None,
    runs=_j.runs + 1,
)
_FAILED = _ENDING.values(
    holder=None,
    lease_until=None,
    last_finished_at=bindparam("now"),
    last_error=bindparam("error"),
    runs=_j.runs + 1,
    failures=_j.failures + 1,
)
_ALL = select(job_leases).order_by(_j.name)


@functools.cache
def _create(dialect: str) -> Any:
    return dialect_insert(dialect)(job_leases).values(name=bindparam("job")).on_conflict_do_nothing()


def _job(row: Any) -> JobRecord:
    return JobRecord(
        name=row.name,
        holder=row.holder,
        lease_until=row.lease_until,
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        runs=int(row.runs),
        failures=int(row.failures),
    )


class JobLeases:
    def __init__(self, database: Database) -> None:
        self.db = database
        self._create = _create(database.dialect)

    async def claim(self, name: str, holder: str, lease_seconds: float, every_seconds: float) -> bool:
        """Take the lease of job `name` unless someone holds it or the job started less than `every_seconds` ago."""

        def work(conn: Connection) -> bool:
            self.db.execute(conn, self._create, {"job": name})
            row = self.db.execute(conn, _LOCK, {"job": name}).rows[0]
            now = utcnow()
            if row.lease_until is not None and row.lease_until > now and row.holder != holder:
                return False
            if row.last_started_at is not None and now - row.last_started_at < timedelta(seconds=every_seconds):
                return False
            until = now + timedelta(seconds=lease_seconds)
            self.db.execute(conn, _TAKE, {"job": name, "owner": holder, "until": until, "now": now})
            return True

        return await self.db.write(work)

    async def renew(self, name: str, holder: str, lease_seconds: float) -> bool:
        """Extend a lease still held; False when it lapsed and was taken by someone else."""
        params = {"job": name, "owner": holder, "until": utcnow() + timedelta(seconds=lease_seconds)}
        return await self.db.write(lambda conn: self.db.execute(conn, _RENEW, params).rowcount > 0)

    async def release(self, name: str, holder: str, error: str | None) -> None:
        """End a run: its outcome is recorded and the lease freed for the next run."""
        params = {"job": name, "owner": holder, "now": utcnow()}
        statement = _SUCCEEDED
        if error is not None:
            params["error"] = error[:2000]
            statement = _FAILED
        await self.db.write(lambda conn: self.db.execute(conn, statement, params))

    async def all(self) -> list[JobRecord]:
        return [_job(row) for row in await self.db.fetch(_ALL, {})]
