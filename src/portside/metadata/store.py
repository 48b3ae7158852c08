"""The metadata store: one database and the concerns that keep their statements in it.

- `registry`: repositories, blobs, manifests, tags (metadata/registry.py)
- `outbox`: the notification outbox (metadata/outbox.py)
- `uploads`: upload sessions (metadata/uploads.py)
- `leases`: leases and run records of background jobs (metadata/leases.py)
- `inventory`: what is stored, with sizes and times, for the management API (metadata/inventory.py)
- `gc`, `marking`: garbage collection's review queues, checks and deletes, and its reads of the whole store
  (metadata/gc.py)

Every statement is built once; reads run with `Database.fetch`, writes as one transaction with
`Database.write`, each statement inside it with `Database.execute` (engine.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, literal_column, select

from portside.metadata.engine import Database
from portside.metadata.gc import GCMetadata, Marking, Policy, Reviews
from portside.metadata.inventory import InventoryMetadata
from portside.metadata.leases import JobLeases
from portside.metadata.outbox import Outbox
from portside.metadata.registry import RegistryMetadata
from portside.metadata.tables import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from portside.metadata.uploads import UploadSessions

_PING: Select[Any] = select(literal_column("1").label("one"))
_COUNTED = (repositories, blobs, repository_blobs, manifests, manifest_references, tags, uploads)
_COUNTS = {table.name: select(func.count().label("n")).select_from(table) for table in _COUNTED}


class MetadataStore:
    """`policy` is garbage collection's; with `online`, changes queue the reviews online collection works from."""

    def __init__(self, database: Database, policy: Policy | None = None, online: bool = False) -> None:
        policy = policy or Policy()
        self.db = database
        self.locks = database.locks
        reviews = Reviews(database, policy.review_after) if online else None
        self.registry = RegistryMetadata(database, reviews, policy.review_after)
        self.gc = GCMetadata(database, policy)
        self.marking = Marking(database)
        self.outbox = Outbox(database)
        self.uploads = UploadSessions(database)
        self.leases = JobLeases(database)
        self.inventory = InventoryMetadata(database)

    async def close(self) -> None:
        await self.db.dispose()

    async def migrate(self) -> None:
        """Bring the schema up to date (Alembic is imported only here, so serving processes skip it)."""
        from portside.metadata.engine import migrate

        await migrate(self.db)

    async def ping(self) -> None:
        await self.db.fetch(_PING, {})

    async def counts(self) -> dict[str, int]:
        """Row counts per table, for tooling and tests."""
        return {name: int((await self.db.fetch(statement, {}))[0].n) for name, statement in _COUNTS.items()}
