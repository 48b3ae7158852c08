"""The first schema: repositories, blobs and their links, manifests and their references, tags, uploads.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Digest = sa.String(200)


def sortable(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "repositories",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sortable(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_repositories_name"),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", Digest, primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "repository_blobs",
        sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", Digest, sa.ForeignKey("blobs.digest"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "digest"),
    )
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    op.create_table(
        "manifests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", Digest, nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject_digest", Digest, nullable=True),
        sa.Column("annotations", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    )
    op.create_index("ix_manifests_subject", "manifests", ["repository_id", "subject_digest"])
    op.create_table(
        "manifest_references",
        sa.Column("manifest_id", Id, sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", Digest, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("manifest_id", "digest", "kind"),
    )
    op.create_index("ix_manifest_references_digest", "manifest_references", ["digest"])
    op.create_table(
        "tags",
        sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sortable(128), nullable=False),
        sa.Column("manifest_id", Id, sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "name"),
    )
    op.create_index("ix_tags_manifest", "tags", ["manifest_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_uploads_updated_at", "uploads", ["updated_at"])


def downgrade() -> None:
    for table in (
        "uploads",
        "tags",
        "manifest_references",
        "manifests",
        "repository_blobs",
        "blobs",
        "repositories",
    ):
        op.drop_table(table)
