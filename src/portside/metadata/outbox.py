"""The notification outbox: events written in the transaction of the change they describe, then delivered.

`record` is called by the other concerns inside their own transactions, so an event exists exactly when its
change does; `Outbox` is what the dispatchers and the `events` command use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from portside.metadata.engine import Database
from portside.metadata.records import Delivery, OutboxEntry, utcnow
from portside.metadata.tables import notification_outbox

_o = notification_outbox.c

_INSERT = notification_outbox.insert().values(
    endpoint=bindparam("endpoint"),
    event=bindparam("event"),
    created_at=bindparam("created_at"),
    next_attempt_at=bindparam("next_attempt_at"),
)
_HEADS = (
    select(_o.endpoint, func.min(_o.id).label("head")).where(_o.delivered_at.is_(None)).group_by(_o.endpoint).subquery()
)
_DUE = select(_o.endpoint, _o.next_attempt_at, _o.claimed_until).join(_HEADS, _o.id == _HEADS.c.head)
_OLDEST_PENDING = (
    select(notification_outbox)
    .where(_o.endpoint == bindparam("endpoint"), _o.delivered_at.is_(None))
    .order_by(_o.id)
    .limit(bindparam("limit"))
    .with_for_update()  # PostgreSQL: concurrent claimers queue here; SQLite holds the write lock
)
_CLAIM = (
    update(notification_outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_until=bindparam("until"))
)
_DELIVERED = (
    update(notification_outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(delivered_at=bindparam("now"), claimed_until=None, last_error=None)
)
_FAILED = (
    update(notification_outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        attempts=_o.attempts + 1,
        last_error=bindparam("error"),
        next_attempt_at=bindparam("retry_at"),
        claimed_until=None,
    )
)
_PENDING_COUNTS = select(_o.endpoint, func.count().label("n")).where(_o.delivered_at.is_(None)).group_by(_o.endpoint)
_PRUNE = delete(notification_outbox).where(_o.delivered_at < bindparam("before"))


def _listing(status: str | None, by_endpoint: bool) -> Any:
    statement = select(notification_outbox).order_by(_o.id).limit(bindparam("limit"))
    if by_endpoint:
        statement = statement.where(_o.endpoint == bindparam("endpoint"))
    if status == "delivered":
        statement = statement.where(_o.delivered_at.is_not(None))
    elif status == "pending":
        statement = statement.where(_o.delivered_at.is_(None))
    elif status == "failed":
        statement = statement.where(_o.delivered_at.is_(None), _o.attempts >= bindparam("failed_after"))
    return statement


def _replaying(by_ids: bool, by_endpoint: bool) -> Any:
    statement = update(notification_outbox).values(
        delivered_at=None, attempts=0, next_attempt_at=bindparam("now"), claimed_until=None
    )
    if by_ids:
        statement = statement.where(_o.id.in_(bindparam("ids", expanding=True)))
    else:
        statement = statement.where(_o.delivered_at.is_(None), _o.attempts >= bindparam("failed_after"))
    if by_endpoint:
        statement = statement.where(_o.endpoint == bindparam("only_endpoint"))
    return statement


# Each filter combination is its own statement, built once (the database keeps each one prepared).
_LISTINGS = {(s, e): _listing(s, e) for s in (None, "delivered", "pending", "failed") for e in (False, True)}
_REPLAYS = {(i, e): _replaying(i, e) for i in (False, True) for e in (False, True)}


def _delivery(row: Any) -> Delivery:
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


def record(db: Database, conn: Connection, entries: Sequence[OutboxEntry]) -> None:
    """Add events inside the caller's transaction."""
    if entries:
        now = utcnow()
        rows = [{"endpoint": e.endpoint, "event": e.event, "created_at": now, "next_attempt_at": now} for e in entries]
        db.execute(conn, _INSERT, rows)


class Outbox:
    def __init__(self, database: Database) -> None:
        self.db = database

    async def add(self, entries: Sequence[OutboxEntry]) -> None:
        """Record events that go with no change (pulls)."""
        if entries:
            await self.db.write(lambda conn: record(self.db, conn, entries))

    async def due_endpoints(self) -> dict[str, datetime]:
        """Endpoints with undelivered events, and when the first of them may be tried."""
        return {
            row.endpoint: max(row.next_attempt_at, row.claimed_until or row.next_attempt_at)
            for row in await self.db.fetch(_DUE, {})
        }

    async def claim(self, endpoint: str, limit: int, lease_seconds: float) -> list[Delivery]:
        """The oldest undelivered events of one endpoint, leased to the caller, when their turn has come and no
        one else holds a lease on that endpoint (so one endpoint's events go out in order)."""
        now = utcnow()

        def work(conn: Connection) -> list[Delivery]:
            rows = self.db.execute(conn, _OLDEST_PENDING, {"endpoint": endpoint, "limit": limit}).rows
            if not rows or rows[0].next_attempt_at > now:
                return []
            if any(row.claimed_until is not None and row.claimed_until > now for row in rows):
                return []
            until = now + timedelta(seconds=lease_seconds)
            self.db.execute(conn, _CLAIM, {"ids": [r.id for r in rows], "until": until})
            return [_delivery(row) for row in rows]

        return await self.db.write(work)

    async def mark_delivered(self, ids: Sequence[int]) -> None:
        params = {"ids": list(ids), "now": utcnow()}
        await self.db.write(lambda conn: self.db.execute(conn, _DELIVERED, params))

    async def mark_failed(self, ids: Sequence[int], error: str, retry_at: datetime) -> None:
        params = {"ids": list(ids), "error": error[:2000], "retry_at": retry_at}
        await self.db.write(lambda conn: self.db.execute(conn, _FAILED, params))

    async def deliveries(
        self, status: str | None = None, endpoint: str | None = None, failed_after: int = 1, limit: int = 1000
    ) -> list[Delivery]:
        """Outbox rows, oldest first; `status` is pending, failed (at least `failed_after` attempts) or delivered."""
        statement = _LISTINGS[(status, endpoint is not None)]
        params: dict[str, Any] = {"limit": limit}
        if endpoint is not None:
            params["endpoint"] = endpoint
        if status == "failed":
            params["failed_after"] = failed_after
        return [_delivery(row) for row in await self.db.fetch(statement, params)]

    async def replay(
        self, ids: Sequence[int] = (), endpoint: str | None = None, failed_after: int | None = None
    ) -> int:
        """Queue deliveries again, now: those in `ids`, or those with at least `failed_after` failed attempts."""
        if not ids and failed_after is None:
            return 0
        params: dict[str, Any] = {"now": utcnow()}
        if ids:
            params["ids"] = list(ids)
        else:
            params["failed_after"] = failed_after
        if endpoint is not None:
            params["only_endpoint"] = endpoint
        statement = _REPLAYS[(bool(ids), endpoint is not None)]
        return await self.db.write(lambda conn: self.db.execute(conn, statement, params).rowcount)

    async def pending_counts(self) -> dict[str, int]:
        return {row.endpoint: int(row.n) for row in await self.db.fetch(_PENDING_COUNTS, {})}

    async def prune_delivered(self, before: datetime) -> int:
        """Remove events delivered before `before`; returns how many."""
        return await self.db.write(lambda conn: self.db.execute(conn, _PRUNE, {"before": before}).rowcount)
