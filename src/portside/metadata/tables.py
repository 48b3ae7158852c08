"""The metadata schema as SQLAlchemy Core tables; migrations in `migrations/versions` create exactly this.

Names and tags sort by byte value on every backend (PostgreSQL gets the "C" collation) so catalog and tag
pages come out in the order the specs ask for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every backend, returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# An auto-incrementing 64-bit key: SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


def sortable(length: int) -> String:
    return String(length).with_variant(String(length, collation="C"), "postgresql")


DIGEST_LENGTH = 200

repositories = Table(
    "repositories",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", sortable(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Raised by triggers whenever a tag of the repository appears or goes (migration 0003).
    Column("tags_version", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("name", name="uq_repositories_name"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST_LENGTH), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), ForeignKey("blobs.digest"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # When the link was last relied on without a manifest to keep it (a blob HEAD, an upload of the same blob):
    # garbage collection keeps an unreferenced link for gc.reviewafter after this (migration 0006).
    Column("touched_at", UTCDateTime(), nullable=True),
    # A pull-through cache keeps what it fetched until then, whatever the review delay (migration 0007).
    Column("keep_until", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", String(DIGEST_LENGTH), nullable=True),
    Column("annotations", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Set for what a pull-through cache fetched: expired (deleted) once no pull moved it past now.
    Column("keep_until", UTCDateTime(), nullable=True),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
    Index("ix_manifests_keep_until", "keep_until"),
)

manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    # "blob" for config and layers, "manifest" for the children of an index.
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("manifest_id", "digest", "kind"),
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", sortable(128), nullable=False),
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    # When the tag last moved to another manifest (its creation, until then); created_at since migration 0008.
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("repository_id", "name"),
    Index("ix_tags_manifest", "manifest_id"),
    Index("ix_tags_published", "repository_id", "updated_at", "name"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Set before any byte is stored: a session without it is known to be empty without asking storage.
    Column("has_data", Boolean(), nullable=False, server_default=false()),
    Index("ix_uploads_updated_at", "updated_at"),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint", String(255), nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Index("ix_notification_outbox_pending", "endpoint", "delivered_at", "id"),
)

# One row per background job that must run in one place at a time (portside.jobs): who holds it and until
# when, and the outcome of its runs, shared by every worker and instance.
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_started_at", UTCDateTime(), nullable=True),
    Column("last_finished_at", UTCDateTime(), nullable=True),
    Column("last_success_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("runs", BigInteger, nullable=False, server_default="0"),
    Column("failures", BigInteger, nullable=False, server_default="0"),
)


# Garbage collection's review queues (metadata/gc.py): what a change may have orphaned, and when to look at it.
# Each change queues its reviews in its own transaction; collectors take due reviews and re-check everything
# before deleting. `review_after` doubles as a claim: a collector that takes a review moves it forward by a
# lease, so a collector that dies leaves it to be taken again.
gc_blob_reviews = Table(
    "gc_blob_reviews",
    metadata,
    Column("digest", String(DIGEST_LENGTH), primary_key=True),
    Column("review_after", UTCDateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("ix_gc_blob_reviews_due", "review_after"),
)

gc_link_reviews = Table(
    "gc_link_reviews",
    metadata,
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    Column("review_after", UTCDateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_gc_link_reviews_due", "review_after"),
)

gc_manifest_reviews = Table(
    "gc_manifest_reviews",
    metadata,
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    Column("review_after", UTCDateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_gc_manifest_reviews_due", "review_after"),
)

gc_repository_reviews = Table(
    "gc_repository_reviews",
    metadata,
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("review_after", UTCDateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("ix_gc_repository_reviews_due", "review_after"),
)
