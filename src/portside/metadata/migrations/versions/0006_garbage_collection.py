"""Garbage collection: review queues filled by the changes that may orphan something, and the time a link was
last relied on without a manifest (a blob HEAD or a repeated upload), which keeps it for the review delay.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Digest = sa.String(200)


def _review_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("review_after", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    ]


def _repository() -> sa.Column[object]:
    return sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("repository_blobs") as batch:
        batch.add_column(sa.Column("touched_at", sa.DateTime(), nullable=True))
    op.create_table("gc_blob_reviews", sa.Column("digest", Digest, primary_key=True), *_review_columns())
    op.create_index("ix_gc_blob_reviews_due", "gc_blob_reviews", ["review_after"])
    for name in ("gc_link_reviews", "gc_manifest_reviews"):
        op.create_table(
            name,
            _repository(),
            sa.Column("digest", Digest, nullable=False),
            *_review_columns(),
            sa.PrimaryKeyConstraint("repository_id", "digest"),
        )
        op.create_index(f"ix_{name}_due", name, ["review_after"])
    op.create_table(
        "gc_repository_reviews",
        sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
        *_review_columns(),
    )
    op.create_index("ix_gc_repository_reviews_due", "gc_repository_reviews", ["review_after"])


def downgrade() -> None:
    for name in ("gc_repository_reviews", "gc_manifest_reviews", "gc_link_reviews", "gc_blob_reviews"):
        op.drop_table(name)
    with op.batch_alter_table("repository_blobs") as batch:
        batch.drop_column("touched_at")
